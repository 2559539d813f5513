// Plays systemd's side of sd_notify and the fd store for tests: a real AF_UNIX datagram socket that
// receives the daemon's messages and the SCM_RIGHTS fds (recvmsg via koffi: node cannot receive
// fds on datagram sockets), keeps FDSTORE=1 fds by FDNAME, drops them on FDSTOREREMOVE=1, and
// starts a service the way systemd does: NOTIFY_SOCKET set, stored fds inherited at 3.. with
// LISTEN_FDS / LISTEN_FDNAMES, and LISTEN_PID equal to the service's own pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sysClose } from '../../src/linux/ffi.js';
import { bindUnix, dgramSocket, recvDatagram } from '../../src/linux/socket.js';

export interface NotifyMessage {
  fields: Record<string, string>;
  fds: number[];
  at: number;
}

export interface StoredFd {
  name: string;
  fd: number;
}

export class FakeSystemd {
  readonly dir: string;
  readonly socketPath: string;
  readonly messages: NotifyMessage[] = [];
  /** The fd store, in the order fds were stored (systemd passes them back in that order). */
  store: StoredFd[] = [];
  private readonly fd: number;
  private timer: NodeJS.Timeout;
  private closed = false;
  /** Every fd received and then closed because the message was not FDSTORE=1 (systemd does the same). */
  closedUnstored = 0;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'xvbd-fake-systemd-'));
    this.socketPath = join(this.dir, 'notify');
    this.fd = dgramSocket(true);
    bindUnix(this.fd, this.socketPath);
    this.timer = setInterval(() => this.drain(), 5);
  }

  /** Reads every queued datagram. */
  drain(): void {
    for (;;) {
      const d = recvDatagram(this.fd, 16384);
      if (!d) return;
      const fields: Record<string, string> = {};
      for (const line of d.data.toString('utf8').split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
      }
      this.messages.push({ fields, fds: d.fds, at: Date.now() });
      if (fields.FDSTORE === '1') {
        const name = fields.FDNAME ?? 'stored';
        for (const fd of d.fds) this.store.push({ name, fd });
      } else {
        for (const fd of d.fds) {
          sysClose(fd);
          this.closedUnstored++;
        }
      }
      if (fields.FDSTOREREMOVE === '1' && fields.FDNAME) {
        const keep: StoredFd[] = [];
        for (const s of this.store) {
          if (s.name === fields.FDNAME) sysClose(s.fd);
          else keep.push(s);
        }
        this.store = keep;
      }
    }
  }

  /** Messages having this field (optionally with this value). */
  having(key: string, value?: string): NotifyMessage[] {
    this.drain();
    return this.messages.filter((m) => key in m.fields && (value === undefined || m.fields[key] === value));
  }

  async waitFor<T>(what: string, pred: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      this.drain();
      const v = pred();
      if (v) return v;
      if (Date.now() > until) throw new Error(`fake systemd: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Starts a service as systemd would: the stored fds at 3.. (LISTEN_FDS, LISTEN_FDNAMES) and
   * LISTEN_PID = the service's pid (set by the shell that then execs the command, keeping its pid).
   */
  spawnService(cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: { passStore?: boolean; listenPid?: string } = {}): ChildProcess {
    const passed = opts.passStore === false ? [] : this.store;
    const fullEnv: NodeJS.ProcessEnv = { ...env, NOTIFY_SOCKET: this.socketPath };
    delete fullEnv.LISTEN_PID;
    delete fullEnv.LISTEN_FDS;
    delete fullEnv.LISTEN_FDNAMES;
    if (passed.length > 0) {
      fullEnv.LISTEN_FDS = String(passed.length);
      fullEnv.LISTEN_FDNAMES = passed.map((s) => s.name).join(':');
    }
    const pidExpr = opts.listenPid ?? '$$';
    const script = passed.length > 0 ? `export LISTEN_PID=${pidExpr}; exec "$@"` : 'exec "$@"';
    return spawn('/bin/sh', ['-c', script, 'sh', cmd, ...args], {
      env: fullEnv,
      stdio: ['ignore', 'pipe', 'pipe', ...passed.map((s) => s.fd)],
    });
  }

  /** Closes every stored fd and the socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.drain();
    for (const s of this.store) {
      try {
        sysClose(s.fd);
      } catch {
        // already closed
      }
    }
    this.store = [];
    sysClose(this.fd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
