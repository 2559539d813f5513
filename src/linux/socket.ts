// Unix-socket calls Node lacks, for the daemon: datagrams with SCM_RIGHTS (sd_notify, the fd store),
// SO_PEERCRED (the control socket) and fcntl(FD_CLOEXEC). Bound on ffi.ts's libc, with its SysError.
// Raw memory only (koffi.alloc + view + address), no named koffi types: type names are global in koffi.
import koffi from 'koffi';
import { E, libc, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOL_SOCKET, SysError, sysBind, sysSetsockoptInt, sysSocket } from './ffi.js';

const c_sendmsg = libc.func('intptr_t sendmsg(int fd, void *msg, int flags)');
const c_recvmsg = libc.func('intptr_t recvmsg(int fd, void *msg, int flags)');
const c_getsockopt = libc.func('int getsockopt(int fd, int level, int optname, _Out_ uint8_t *optval, _Inout_ uint32_t *optlen)');
const c_fcntl = libc.func('int fcntl(int fd, int cmd, int arg)');
const c_pipe2 = libc.func('int pipe2(_Out_ int *fds, int flags)');

export { MSG_DONTWAIT };
export const AF_UNIX = 1;
export const SO_SNDBUF = 7;
export const SO_PEERCRED = 17;
export const SCM_RIGHTS = 1;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_CTRUNC = 0x8;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
/** Linux SCM_MAX_FD: most fds one message may carry. */
export const SCM_MAX_FD = 253;

function fail(call: string, detail?: string): never {
  throw new SysError(call, koffi.errno(), detail);
}

/** Native memory that outlives a call (pointers inside a msghdr must stay valid). */
class Mem {
  readonly ptr: unknown;
  readonly buf: Buffer;
  readonly addr: bigint;
  constructor(readonly size: number) {
    this.ptr = koffi.alloc('uint8_t', Math.max(1, size));
    this.buf = Buffer.from(koffi.view(this.ptr, Math.max(1, size)));
    this.buf.fill(0);
    this.addr = koffi.address(this.ptr);
  }
  free(): void {
    koffi.free(this.ptr);
  }
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** sockaddr_un for a path or an abstract name ("@name" as systemd spells it). */
export function sockaddrUn(path: string): Buffer {
  const abstract = path.startsWith('@');
  const name = Buffer.from(abstract ? path.slice(1) : path);
  // sun_path is 108 bytes: the path and its NUL, or the leading NUL and the abstract name.
  if (name.length + 1 > 108) throw new Error(`socket path too long: ${path}`);
  const len = 2 + (abstract ? 1 + name.length : name.length + 1);
  const sa = Buffer.alloc(len);
  sa.writeUInt16LE(AF_UNIX, 0);
  name.copy(sa, abstract ? 3 : 2);
  return sa;
}

export function dgramSocket(nonblock = false): number {
  return sysSocket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
}

export function bindUnix(fd: number, path: string): void {
  sysBind(fd, sockaddrUn(path), path);
}

export function setSndBuf(fd: number, bytes: number): void {
  sysSetsockoptInt(fd, SOL_SOCKET, SO_SNDBUF, bytes); // best effort, as sd_notify's fd_inc_sndbuf
}

/**
 * sendmsg(2) of one datagram to `dest` (a unix socket path or "@abstract"), optionally carrying fds
 * with SCM_RIGHTS. Returns the number of bytes sent; throws SysError (EAGAIN with MSG_DONTWAIT...).
 */
export function sendDatagram(fd: number, dest: string, data: Buffer, fds: number[] = [], flags = MSG_NOSIGNAL): number {
  if (fds.length > SCM_MAX_FD) throw new Error(`too many fds in one message (${fds.length} > ${SCM_MAX_FD})`);
  const sa = sockaddrUn(dest);
  const ctlLen = fds.length > 0 ? 16 + align8(4 * fds.length) : 0;
  // layout: [msghdr 56][iovec 16][sockaddr][data][cmsg]
  const offIov = 56;
  const offSa = offIov + 16;
  const offData = align8(offSa + sa.length);
  const offCtl = align8(offData + data.length);
  const mem = new Mem(offCtl + ctlLen);
  try {
    const b = mem.buf;
    sa.copy(b, offSa);
    data.copy(b, offData);
    b.writeBigUInt64LE(mem.addr + BigInt(offSa), 0); // msg_name
    b.writeUInt32LE(sa.length, 8); // msg_namelen
    b.writeBigUInt64LE(mem.addr + BigInt(offIov), 16); // msg_iov
    b.writeBigUInt64LE(1n, 24); // msg_iovlen
    if (ctlLen > 0) {
      b.writeBigUInt64LE(mem.addr + BigInt(offCtl), 32); // msg_control
      b.writeBigUInt64LE(BigInt(ctlLen), 40); // msg_controllen
      b.writeBigUInt64LE(BigInt(16 + 4 * fds.length), offCtl); // cmsg_len = CMSG_LEN(n*4)
      b.writeInt32LE(SOL_SOCKET, offCtl + 8);
      b.writeInt32LE(SCM_RIGHTS, offCtl + 12);
      fds.forEach((f, i) => b.writeInt32LE(f, offCtl + 16 + 4 * i));
    }
    b.writeBigUInt64LE(mem.addr + BigInt(offData), offIov); // iov_base
    b.writeBigUInt64LE(BigInt(data.length), offIov + 8); // iov_len
    const n = Number(c_sendmsg(fd, mem.ptr, flags));
    if (n < 0) fail('sendmsg', dest);
    return n;
  } finally {
    mem.free();
  }
}

export interface ReceivedDatagram {
  data: Buffer;
  fds: number[];
  truncated: boolean;
}

/**
 * recvmsg(2) of one datagram with any SCM_RIGHTS fds it carries (received fds are CLOEXEC
 * unless `cloexec` is false). Returns undefined when nothing is queued (EAGAIN on a nonblocking socket).
 */
export function recvDatagram(fd: number, maxData = 65536, maxFds = SCM_MAX_FD, cloexec = true): ReceivedDatagram | undefined {
  const ctlLen = 16 + align8(4 * maxFds);
  const offIov = 56;
  const offData = 72;
  const offCtl = align8(offData + maxData);
  const mem = new Mem(offCtl + ctlLen);
  try {
    const b = mem.buf;
    b.writeBigUInt64LE(mem.addr + BigInt(offIov), 16);
    b.writeBigUInt64LE(1n, 24);
    b.writeBigUInt64LE(mem.addr + BigInt(offCtl), 32);
    b.writeBigUInt64LE(BigInt(ctlLen), 40);
    b.writeBigUInt64LE(mem.addr + BigInt(offData), offIov);
    b.writeBigUInt64LE(BigInt(maxData), offIov + 8);
    const MSG_CMSG_CLOEXEC = 0x40000000;
    const n = Number(c_recvmsg(fd, mem.ptr, MSG_DONTWAIT | (cloexec ? MSG_CMSG_CLOEXEC : 0)));
    if (n < 0) {
      const e = koffi.errno();
      if (e === E.EAGAIN || e === E.EWOULDBLOCK) return undefined;
      throw new SysError('recvmsg', e);
    }
    const flags = b.readInt32LE(48);
    const controllen = Number(b.readBigUInt64LE(40));
    const fds: number[] = [];
    let off = 0;
    while (off + 16 <= controllen) {
      const cmsgLen = Number(b.readBigUInt64LE(offCtl + off));
      if (cmsgLen < 16) break;
      const level = b.readInt32LE(offCtl + off + 8);
      const type = b.readInt32LE(offCtl + off + 12);
      if (level === SOL_SOCKET && type === SCM_RIGHTS) {
        for (let p = 16; p + 4 <= cmsgLen; p += 4) fds.push(b.readInt32LE(offCtl + off + p));
      }
      off += align8(cmsgLen);
    }
    return { data: Buffer.from(b.subarray(offData, offData + n)), fds, truncated: (flags & MSG_CTRUNC) !== 0 };
  } finally {
    mem.free();
  }
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** SO_PEERCRED of a connected unix stream socket. */
export function peerCred(fd: number): PeerCred {
  const out = Buffer.alloc(12);
  const len = [12];
  if ((c_getsockopt(fd, SOL_SOCKET, SO_PEERCRED, out, len) as number) < 0) fail('getsockopt(SO_PEERCRED)');
  return { pid: out.readInt32LE(0), uid: out.readUInt32LE(4), gid: out.readUInt32LE(8) };
}

export function setCloexec(fd: number, on: boolean): void {
  const flags = c_fcntl(fd, F_GETFD, 0) as number;
  if (flags < 0) fail('fcntl(F_GETFD)', `fd ${fd}`);
  const next = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  if ((c_fcntl(fd, F_SETFD, next) as number) < 0) fail('fcntl(F_SETFD)', `fd ${fd}`);
}

/** pipe2(O_CLOEXEC | O_NONBLOCK): [read end, write end]. */
export function nonblockingPipe(): [number, number] {
  const fds = [0, 0];
  if ((c_pipe2(fds, 0o2000000 | 0o4000) as number) < 0) throw new SysError('pipe2', koffi.errno());
  return [fds[0]!, fds[1]!];
}
