// systemd integration without libsystemd: sd_notify(3) (READY, STATUS, WATCHDOG, STOPPING, the fd
// store: FDSTORE=1 + FDNAME, FDSTOREREMOVE=1) over the AF_UNIX datagram socket named by
// $NOTIFY_SOCKET, and sd_listen_fds_with_names(3) ($LISTEN_PID, $LISTEN_FDS, $LISTEN_FDNAMES).
// Written after systemd's src/libsystemd/sd-daemon/sd-daemon.c; the protocol is documented in
// sd_notify(3) and sd_listen_fds(3).
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { SysError, sysClose } from '../linux/ffi.js';
import { dgramSocket, MSG_DONTWAIT, MSG_NOSIGNAL, nonblockingPipe, sendDatagram, setCloexec, setSndBuf, SCM_MAX_FD } from '../linux/socket.js';

/** SD_LISTEN_FDS_START */
export const LISTEN_FDS_START = 3;

export interface NotifyOptions {
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

/** A valid FDNAME: at most 255 printable ASCII characters, no ':' (sd_notify(3)). */
export function validFdName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && /^[\x21-\x7e]+$/.test(name) && !name.includes(':');
}

/** One assignment of a notify message: no newline inside a value. */
function assignment(key: string, value: string): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(key)) throw new Error(`bad sd_notify key ${JSON.stringify(key)}`);
  return `${key}=${value.replace(/[\r\n]+/g, ' ')}`;
}

/**
 * The service manager's notification socket. `enabled` is false when $NOTIFY_SOCKET is unset
 * (not run by systemd, or Type=simple): every call is then a no-op returning false.
 */
export class Notifier {
  readonly socketPath: string | undefined;
  private fd = -1;
  /** Messages sent (for logging and tests). */
  sent = 0;

  constructor(opts: NotifyOptions = {}) {
    const env = opts.env ?? process.env;
    const p = env.NOTIFY_SOCKET;
    // sd-daemon accepts absolute paths and abstract names ("@..."); vsock: is not for us.
    this.socketPath = p && (p.startsWith('/') || p.startsWith('@')) ? p : undefined;
  }

  get enabled(): boolean {
    return this.socketPath !== undefined;
  }

  private socket(): number {
    if (this.fd < 0) {
      this.fd = dgramSocket(false);
      setSndBuf(this.fd, 8 * 1024 * 1024);
    }
    return this.fd;
  }

  /**
   * Sends one message (fields joined by newlines), with `fds` attached by SCM_RIGHTS. Nonblocking:
   * when the manager is slow and the socket buffer is full it retries a few times, then throws.
   */
  async notify(fields: Record<string, string | number>, fds: number[] = []): Promise<boolean> {
    if (!this.socketPath) return false;
    const text = Object.entries(fields)
      .map(([k, v]) => assignment(k, String(v)))
      .join('\n');
    const data = Buffer.from(text + '\n');
    for (let attempt = 0; ; attempt++) {
      try {
        sendDatagram(this.socket(), this.socketPath, data, fds, MSG_NOSIGNAL | MSG_DONTWAIT);
        this.sent++;
        return true;
      } catch (err) {
        if (err instanceof SysError && (err.code === 'EAGAIN' || err.code === 'ENOBUFS') && attempt < 50) {
          await new Promise((r) => setTimeout(r, Math.min(100, 2 ** attempt)));
          continue;
        }
        throw err;
      }
    }
  }

  ready(status?: string): Promise<boolean> {
    return this.notify(status ? { READY: 1, STATUS: status } : { READY: 1 });
  }

  status(status: string): Promise<boolean> {
    return this.notify({ STATUS: status });
  }

  stopping(status?: string): Promise<boolean> {
    return this.notify(status ? { STOPPING: 1, STATUS: status } : { STOPPING: 1 });
  }

  watchdog(): Promise<boolean> {
    return this.notify({ WATCHDOG: 1 });
  }

  /** Parks fds in the manager's fd store under one name (FDSTORE=1, FDNAME=name). */
  storeFds(name: string, fds: number[]): Promise<boolean> {
    if (!validFdName(name)) throw new Error(`invalid fd store name ${JSON.stringify(name)}`);
    if (fds.length === 0 || fds.length > SCM_MAX_FD) throw new Error(`fd store: 1..${SCM_MAX_FD} fds per message`);
    return this.notify({ FDSTORE: 1, FDNAME: name }, fds);
  }

  /**
   * sd_notify_barrier(3): resolves once the manager has processed every message sent before it (it
   * closes the pipe's write end we pass with BARRIER=1; a manager that does not know BARRIER closes the
   * unexpected fd all the same). Rejects after timeoutMs: then nothing sent before is known to be in.
   */
  async barrier(timeoutMs = 5000): Promise<boolean> {
    if (!this.socketPath) return false;
    const [r, w] = nonblockingPipe();
    let sent = false;
    try {
      sent = await this.notify({ BARRIER: 1 }, [w]);
    } catch (err) {
      sysClose(r);
      throw err;
    } finally {
      sysClose(w);
    }
    const pipe = new Socket({ fd: r, readable: true, writable: false });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        pipe.destroy();
        reject(new Error(`the service manager did not answer BARRIER=1 within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        pipe.destroy();
        resolve();
      };
      pipe.on('end', done).on('close', done).on('error', done);
      pipe.on('data', () => undefined);
    });
    return sent;
  }

  /** Drops every fd stored under `name` from the manager's fd store (FDSTOREREMOVE=1). */
  removeFds(name: string): Promise<boolean> {
    if (!validFdName(name)) throw new Error(`invalid fd store name ${JSON.stringify(name)}`);
    return this.notify({ FDSTOREREMOVE: 1, FDNAME: name });
  }

  close(): void {
    if (this.fd >= 0) {
      sysClose(this.fd);
      this.fd = -1;
    }
  }
}

/**
 * The watchdog interval the manager asked for ($WATCHDOG_USEC, for this pid if $WATCHDOG_PID is set),
 * in ms; undefined when there is none. Ping at half of it, as sd_watchdog_enabled(3) advises.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (!usec || !/^[0-9]{1,19}$/.test(usec)) return undefined;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && wpid !== String(pid)) return undefined;
  const ms = Number(BigInt(usec) / 1000n);
  return ms > 0 ? ms : undefined;
}

export interface ListenFd {
  fd: number;
  /** From $LISTEN_FDNAMES; "unknown" when the manager gave none (as sd_listen_fds_with_names). */
  name: string;
}

export interface ListenFdsResult {
  fds: ListenFd[];
  /** Why nothing was taken, when nothing was (for the log): no LISTEN_FDS, pid mismatch, bad value. */
  reason?: string;
}

/**
 * sd_listen_fds_with_names(unset_environment=true): the fds passed by the manager at 3..3+N-1, for
 * this pid only. Marks them close-on-exec (so a child we spawn does not inherit them) and removes
 * LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES from `env` so nothing downstream takes them twice.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ListenFdsResult {
  const pidStr = env.LISTEN_PID;
  const nStr = env.LISTEN_FDS;
  const namesStr = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pidStr === undefined || nStr === undefined) return { fds: [], reason: 'no LISTEN_FDS' };
  if (!/^[0-9]{1,10}$/.test(pidStr) || Number(pidStr) !== pid) {
    return { fds: [], reason: `LISTEN_PID=${pidStr.slice(0, 20)} is not this process (${pid})` };
  }
  if (!/^[0-9]{1,6}$/.test(nStr)) return { fds: [], reason: `bad LISTEN_FDS=${nStr.slice(0, 20)}` };
  const n = Number(nStr);
  if (n === 0) return { fds: [], reason: 'LISTEN_FDS=0' };
  let names: string[] = namesStr !== undefined && namesStr !== '' ? namesStr.split(':') : [];
  if (names.length !== n) names = Array.from({ length: n }, (_, i) => names[i] ?? 'unknown');
  const fds: ListenFd[] = [];
  for (let i = 0; i < n; i++) {
    const fd = LISTEN_FDS_START + i;
    try {
      fstatSync(fd); // throws EBADF if the manager lied
      setCloexec(fd, true);
      fds.push({ fd, name: names[i] || 'unknown' });
    } catch {
      // not open: skip
    }
  }
  return { fds };
}
