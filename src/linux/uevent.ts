// Kernel uevents (NETLINK_KOBJECT_UEVENT, group 1) for loop devices: which devices changed since we
// last looked. The loop driver announces every bind and unbind (LOOP_CONFIGURE, LOOP_SET_FD, clear,
// LOOP_CHANGE_FD) with a "change" uevent from inside the ioctl, so once an attach has returned, its
// event is already queued here. Used only as an invalidation hint: a lost event (buffer overrun) is
// reported and the caller rescans everything.
import {
  AF_NETLINK,
  E,
  MSG_DONTWAIT,
  NETLINK_KOBJECT_UEVENT,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SysError,
  sysBind,
  sysClose,
  sysRecvErr,
  sysSetsockoptInt,
  sysSocket,
} from './ffi.js';

export interface LoopChanges {
  /** Loop device names ("loop3") with an event since the last drain, and the DISKSEQ of the last one. */
  names: Map<string, string | undefined>;
  /** Events were lost (ENOBUFS): everything may have changed. */
  overrun: boolean;
}

export class LoopUevents {
  private fd: number;
  private readonly buf = Buffer.alloc(16384);

  /** Throws SysError if uevents are not available (no netlink in this namespace, seccomp...). */
  constructor() {
    this.fd = sysSocket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    try {
      // struct sockaddr_nl { sa_family_t nl_family; unsigned short nl_pad; u32 nl_pid; u32 nl_groups; }
      const addr = Buffer.alloc(12);
      addr.writeUInt16LE(AF_NETLINK, 0);
      addr.writeUInt32LE(0, 4); // let the kernel pick our port id
      addr.writeUInt32LE(1, 8); // group 1: the kernel's own uevents (not udev's re-broadcast)
      sysBind(this.fd, addr);
      // A big queue: other tools' churn between two looks must not overrun it.
      if (!sysSetsockoptInt(this.fd, SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)) sysSetsockoptInt(this.fd, SOL_SOCKET, SO_RCVBUF, 8 << 20);
    } catch (e) {
      sysClose(this.fd);
      throw e;
    }
  }

  /** Everything queued since the last call; never blocks. */
  drain(): LoopChanges {
    const out: LoopChanges = { names: new Map(), overrun: false };
    if (this.fd < 0) return { names: out.names, overrun: true };
    for (;;) {
      const n = sysRecvErr(this.fd, this.buf, MSG_DONTWAIT);
      if (n === -E.EAGAIN || n === -E.EWOULDBLOCK) break;
      if (n === -E.EINTR) continue;
      if (n === -E.ENOBUFS) {
        out.overrun = true;
        continue;
      }
      if (n < 0) throw new SysError('recv', -n, 'uevent socket');
      const text = this.buf.toString('latin1', 0, n); // decoded once for both parsers
      const name = loopNameOf(text);
      if (name) out.names.set(name, diskseqOf(text));
    }
    return out;
  }

  close(): void {
    sysClose(this.fd);
    this.fd = -1;
  }
}

/** "change@/devices/virtual/block/loop3\0ACTION=change\0...DEVNAME=loop3\0..." -> "loop3" (whole disks only). */
export function loopNameOf(msg: Buffer | string): string | undefined {
  const text = typeof msg === 'string' ? msg : msg.toString('latin1');
  const at = text.indexOf('@');
  const nul = text.indexOf('\0');
  if (at < 0 || nul < at) return undefined;
  const devpath = text.slice(at + 1, nul);
  const m = /\/block\/(loop\d+)$/.exec(devpath);
  return m ? m[1] : undefined;
}

/** The DISKSEQ=<n> field of a uevent, if present. */
export function diskseqOf(msg: Buffer | string): string | undefined {
  const text = typeof msg === 'string' ? msg : msg.toString('latin1');
  const at = text.indexOf('\0DISKSEQ=');
  if (at < 0) return undefined;
  const end = text.indexOf('\0', at + 9);
  const v = text.slice(at + 9, end < 0 ? undefined : end);
  return /^\d{1,20}$/.test(v) ? v : undefined;
}
