// libc bindings (koffi) for what Node lacks: ioctl, flock, open/openat/openat2 with raw flags, close,
// plus raw read/getdents64/access for sysfs hot loops and a netlink socket for kernel uevents.
// Wrappers throw SysError (with the errno's name) on failure, or return -errno where the name says Err;
// nothing here retries. Constants: Node's own open flags where it has them, else x86_64/aarch64 values
// (linux/loop.h, linux/fs.h, linux/openat2.h).
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';
import { constants as fsConstants } from 'node:fs';

// ---- open(2) flags: the platform's own values from Node where it has them (they differ on arm64) ----
export const O_RDONLY = fsConstants.O_RDONLY;
export const O_WRONLY = fsConstants.O_WRONLY;
export const O_RDWR = fsConstants.O_RDWR;
export const O_ACCMODE = 0o3;
export const O_EXCL = fsConstants.O_EXCL;
export const O_NOCTTY = fsConstants.O_NOCTTY;
export const O_NONBLOCK = fsConstants.O_NONBLOCK;
export const O_DIRECTORY = fsConstants.O_DIRECTORY;
export const O_NOFOLLOW = fsConstants.O_NOFOLLOW;
export const O_DIRECT = fsConstants.O_DIRECT;
/** Not in Node's table; the same on x86_64 and aarch64. */
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
export const AT_FDCWD = -100;

// openat2(2) resolve flags (linux/openat2.h)
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const SYS_openat2 = 437; // same number on every architecture (added after the syscall table unification)

// flock(2)
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

// ---- linux/loop.h ----
export const LOOP_SET_FD = 0x4c00;
export const LOOP_CLR_FD = 0x4c01;
export const LOOP_SET_STATUS64 = 0x4c04;
export const LOOP_GET_STATUS64 = 0x4c05;
export const LOOP_SET_DIRECT_IO = 0x4c08;
export const LOOP_SET_BLOCK_SIZE = 0x4c09;
export const LOOP_CONFIGURE = 0x4c0a;
export const LOOP_CTL_ADD = 0x4c80;
export const LOOP_CTL_REMOVE = 0x4c81;
export const LOOP_CTL_GET_FREE = 0x4c82;

export const LO_FLAGS_READ_ONLY = 1;
export const LO_FLAGS_AUTOCLEAR = 4;
export const LO_FLAGS_PARTSCAN = 8;
export const LO_FLAGS_DIRECT_IO = 16;
export const LO_NAME_SIZE = 64;
/** The loop block major (Documentation/admin-guide/devices.txt). */
export const LOOP_MAJOR = 7;

// ---- linux/fs.h block ioctls: _IO(0x12, n) / _IOR(0x12, n, u64) ----
export const BLKROGET = 0x125e;
export const BLKSSZGET = 0x1268;
export const BLKFLSBUF = 0x1261;
export const BLKGETSIZE64 = 0x80081272;
export const BLKGETDISKSEQ = 0x80081280;

if (process.arch !== 'x64' && process.arch !== 'arm64') {
  // O_CLOEXEC/O_PATH and the ioctl encodings above are the x86_64/aarch64 ones (mips, sparc, ppc differ).
  throw new Error(`src/linux: unsupported architecture ${process.arch}`);
}

// ---- errno ----
const errnoNames = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.errno)) {
  if (!errnoNames.has(num)) errnoNames.set(num, name);
}
export const E = osConstants.errno;

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** A failed system call: `code` is the errno's name (EBUSY, ENXIO...). */
export class SysError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail?: string) {
    const code = errnoName(errno);
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${code}`);
    this.name = 'SysError';
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

export function isSysError(e: unknown, ...codes: string[]): e is SysError {
  return e instanceof SysError && (codes.length === 0 || codes.includes(e.code));
}

// ---- the bindings ----
/** libc, loaded once; sibling modules of src/linux bind their own calls on it (socket.ts). */
export const libc = koffi.load('libc.so.6');
// ioctl and open are variadic in C; on x86_64 and aarch64 Linux, integer and pointer arguments are passed
// the same way to variadic and fixed-argument functions, so fixed prototypes per use are sound (and much
// faster in koffi than variadic calls).
const c_ioctl_ptr = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']);
const c_ioctl_int = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']);
const c_open = libc.func('open', 'int', ['str', 'int', 'uint32']);
const c_openat = libc.func('openat', 'int', ['int', 'str', 'int', 'uint32']);
const c_close = libc.func('close', 'int', ['int']);
const c_read = libc.func('read', 'long', ['int', 'void *', 'size_t']);
const c_access = libc.func('access', 'int', ['str', 'int']);
const c_syscall_getdents64 = libc.func('syscall', 'long', ['long', 'int', 'void *', 'size_t']);
const SYS_getdents64 = process.arch === 'arm64' ? 61 : 217;
const c_flock = libc.func('flock', 'int', ['int', 'int']);
const c_getrlimit = libc.func('getrlimit', 'int', ['int', 'void *']);
const c_setrlimit = libc.func('setrlimit', 'int', ['int', 'void *']);
const c_mknod = libc.func('mknod', 'int', ['str', 'uint32', 'uint64']);
const c_syscall_openat2 = libc.func('syscall', 'long', ['long', 'int', 'str', 'void *', 'size_t']);
const c_socket = libc.func('socket', 'int', ['int', 'int', 'int']);
const c_bind = libc.func('bind', 'int', ['int', 'void *', 'uint32']);
const c_setsockopt = libc.func('setsockopt', 'int', ['int', 'int', 'int', 'void *', 'uint32']);
const c_recv = libc.func('recv', 'long', ['int', 'void *', 'size_t', 'int']);

function errno(): number {
  return koffi.errno();
}

export function ioctlPtr(fd: number, req: number, buf: Buffer, what = ''): number {
  const r = c_ioctl_ptr(fd, req, buf) as number;
  if (r < 0) throw new SysError(`ioctl(${ioctlName(req)})`, errno(), what);
  return r;
}

export function ioctlInt(fd: number, req: number, arg: number | bigint, what = ''): number {
  const r = c_ioctl_int(fd, req, arg) as number;
  if (r < 0) throw new SysError(`ioctl(${ioctlName(req)})`, errno(), what);
  return r;
}

/** ioctl returning -errno instead of throwing (hot paths that expect failures, e.g. ENXIO on unbound devices). */
export function ioctlPtrErr(fd: number, req: number, buf: Buffer): number {
  const r = c_ioctl_ptr(fd, req, buf) as number;
  return r < 0 ? -errno() : r;
}

export function sysOpen(path: string, flags: number, mode = 0): number {
  const fd = c_open(path, flags, mode) as number;
  if (fd < 0) throw new SysError('open', errno(), path);
  return fd;
}

/** open(2) returning -errno instead of throwing. */
export function sysOpenErr(path: string, flags: number): number {
  const fd = c_open(path, flags, 0) as number;
  return fd < 0 ? -errno() : fd;
}

export function sysOpenat(dirfd: number, path: string, flags: number, mode = 0): number {
  const fd = c_openat(dirfd, path, flags, mode) as number;
  if (fd < 0) throw new SysError('openat', errno(), path);
  return fd;
}

/** openat2(2): struct open_how { u64 flags; u64 mode; u64 resolve; } (24 bytes). */
export function sysOpenat2(dirfd: number, path: string, flags: number, resolve: number): number {
  const how = Buffer.alloc(24);
  how.writeBigUInt64LE(BigInt(flags), 0);
  how.writeBigUInt64LE(0n, 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  const fd = Number(c_syscall_openat2(SYS_openat2, dirfd, path, how, 24));
  if (fd < 0) throw new SysError('openat2', errno(), path);
  return fd;
}

/**
 * Read a small file (sysfs, procfs) in one open/read/close, without Node's fs layer (hot loops).
 * Returns undefined if it cannot be opened or read.
 */
export function readSmallFile(path: string, buf: Buffer): string | undefined {
  const fd = c_open(path, O_RDONLY | O_CLOEXEC, 0) as number;
  if (fd < 0) return undefined;
  try {
    let len = 0;
    for (;;) {
      const n = Number(c_read(fd, len === 0 ? buf : buf.subarray(len), buf.length - len));
      if (n < 0) {
        if (errno() === E.EINTR) continue;
        return undefined;
      }
      if (n === 0 || len + n >= buf.length) {
        len += n;
        break;
      }
      len += n;
    }
    return buf.toString('utf8', 0, len);
  } finally {
    c_close(fd);
  }
}

/**
 * Names in a directory (without "." and ".."), via getdents64 into `buf`: one open, one or two
 * getdents64, one close. Returns undefined if the directory cannot be opened.
 * struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
 */
export function readDirNames(path: string, buf: Buffer): string[] | undefined {
  const fd = c_open(path, O_RDONLY | O_CLOEXEC | O_DIRECTORY, 0) as number;
  if (fd < 0) return undefined;
  const out: string[] = [];
  try {
    for (;;) {
      const n = Number(c_syscall_getdents64(SYS_getdents64, fd, buf, buf.length));
      if (n < 0) {
        if (errno() === E.EINTR) continue;
        return undefined;
      }
      if (n === 0) break;
      for (let off = 0; off < n; ) {
        const reclen = buf.readUInt16LE(off + 16);
        if (reclen === 0) break;
        const start = off + 19;
        const end = buf.indexOf(0, start);
        const name = buf.toString('utf8', start, end < 0 || end > off + reclen ? off + reclen : end);
        if (name !== '.' && name !== '..') out.push(name);
        off += reclen;
      }
    }
    return out;
  } finally {
    c_close(fd);
  }
}

/** access(path, F_OK): one syscall, no exception. */
export function exists(path: string): boolean {
  return (c_access(path, 0) as number) === 0;
}

export function sysClose(fd: number): void {
  if (fd < 0) return;
  // close(2) always releases the fd on Linux, even on EINTR: never retry.
  c_close(fd);
}

export const S_IFBLK = 0o060000;

/** mknod(2) of a block device node (glibc's makedev encoding of major:minor), mode 0600. */
export function sysMknodBlock(path: string, major: number, minor: number): void {
  const dev = (BigInt(major & 0xfff) << 8n) | (BigInt(major & ~0xfff) << 32n) | BigInt(minor & 0xff) | (BigInt(minor & ~0xff) << 12n);
  if ((c_mknod(path, S_IFBLK | 0o600, dev) as number) < 0) throw new SysError('mknod', errno(), path);
}

export function sysFlock(fd: number, op: number): void {
  if ((c_flock(fd, op) as number) < 0) throw new SysError('flock', errno());
}

/** flock returning false on EWOULDBLOCK (only meaningful with LOCK_NB). */
export function sysTryFlock(fd: number, op: number): boolean {
  if ((c_flock(fd, op | LOCK_NB) as number) < 0) {
    const e = errno();
    if (e === E.EWOULDBLOCK || e === E.EAGAIN) return false;
    throw new SysError('flock', e);
  }
  return true;
}

// ---- resource limits ----
const RLIMIT_NOFILE = 7;

/**
 * Raises the soft limit on open files to the hard limit (as systemd does for its services), so that a
 * holder started from a shell with a low `ulimit -n` can still hold an fd per served disk. Returns the
 * limits now in force.
 */
export function raiseNofileLimit(): { soft: bigint; hard: bigint } {
  const buf = Buffer.alloc(16); // struct rlimit { rlim_t rlim_cur, rlim_max } (64-bit)
  if ((c_getrlimit(RLIMIT_NOFILE, buf) as number) < 0) throw new SysError('getrlimit', errno());
  const hard = buf.readBigUInt64LE(8);
  if (buf.readBigUInt64LE(0) < hard) {
    buf.writeBigUInt64LE(hard, 0);
    if ((c_setrlimit(RLIMIT_NOFILE, buf) as number) < 0) throw new SysError('setrlimit', errno());
  }
  return { soft: buf.readBigUInt64LE(0), hard };
}

// ---- netlink (kernel uevents) ----
export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_KOBJECT_UEVENT = 15;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_RCVBUFFORCE = 33;
export const MSG_DONTWAIT = 0x40;

export function sysSocket(domain: number, type: number, protocol: number): number {
  const fd = c_socket(domain, type, protocol) as number;
  if (fd < 0) throw new SysError('socket', errno());
  return fd;
}

export function sysBind(fd: number, addr: Buffer, what = ''): void {
  if ((c_bind(fd, addr, addr.length) as number) < 0) throw new SysError('bind', errno(), what);
}

export function sysSetsockoptInt(fd: number, level: number, name: number, value: number): boolean {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  return (c_setsockopt(fd, level, name, b, 4) as number) >= 0;
}

/** recv(2) with flags; returns the length, or -errno. */
export function sysRecvErr(fd: number, buf: Buffer, flags: number): number {
  const n = Number(c_recv(fd, buf, buf.length, flags));
  return n < 0 ? -errno() : n;
}

const IOCTL_NAMES: Record<number, string> = {
  [LOOP_SET_FD]: 'LOOP_SET_FD',
  [LOOP_CLR_FD]: 'LOOP_CLR_FD',
  [LOOP_SET_STATUS64]: 'LOOP_SET_STATUS64',
  [LOOP_GET_STATUS64]: 'LOOP_GET_STATUS64',
  [LOOP_SET_DIRECT_IO]: 'LOOP_SET_DIRECT_IO',
  [LOOP_SET_BLOCK_SIZE]: 'LOOP_SET_BLOCK_SIZE',
  [LOOP_CONFIGURE]: 'LOOP_CONFIGURE',
  [LOOP_CTL_ADD]: 'LOOP_CTL_ADD',
  [LOOP_CTL_REMOVE]: 'LOOP_CTL_REMOVE',
  [LOOP_CTL_GET_FREE]: 'LOOP_CTL_GET_FREE',
  [BLKROGET]: 'BLKROGET',
  [BLKSSZGET]: 'BLKSSZGET',
  [BLKFLSBUF]: 'BLKFLSBUF',
  [BLKGETSIZE64]: 'BLKGETSIZE64',
  [BLKGETDISKSEQ]: 'BLKGETDISKSEQ',
};

function ioctlName(req: number): string {
  return IOCTL_NAMES[req] ?? `0x${req.toString(16)}`;
}
