// The daemon's control socket: $XVBD_RUN_DIR/control.sock (default /run/xvbd/control.sock), a unix
// stream socket, mode 0600 in a 0700 directory, peer credentials checked with SO_PEERCRED (root or
// the daemon's own uid only). Protocol: line-delimited JSON, one request object per line, one reply
// object per line, in order; several requests may share a connection. See docs/systemd.md.
//
//   request:  {"id"?: any, "op": "ping" | "status" | "reconcile" | "serve" | "release", ...}
//   reply:    {"id"?: any, "ok": true, ...} | {"id"?: any, "ok": false, "error": "one sentence"}
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { peerCred, type PeerCred } from '../linux/socket.js';
import { JsonLinesClient, serveJsonLines } from './jsonlines.js';
import { inRunDir, runDir, runDirError } from '../host/rundir.js';

/** Longest request or reply line accepted (bytes). */
export const MAX_LINE = 64 * 1024;

export { runDir };

export function controlSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(runDir(env), 'control.sock');
}

export interface ControlRequest {
  id?: unknown;
  op: string;
  [k: string]: unknown;
}

export interface ControlReply {
  id?: unknown;
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

export type ControlHandler = (req: ControlRequest, peer: PeerCred | undefined) => Promise<Record<string, unknown>>;

/** An error whose message is meant for the client (a bad request), not a daemon failure. */
export class ControlError extends Error {}

function fdOf(sock: Socket): number | undefined {
  const h = (sock as unknown as { _handle?: { fd?: number } })._handle;
  return typeof h?.fd === 'number' && h.fd >= 0 ? h.fd : undefined;
}

/** Is something accepting connections on this unix socket path? */
function probe(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(true); // it exists and does not refuse: treat as live
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

export interface ControlServerOptions {
  path?: string;
  /** uids allowed besides root; default: the daemon's own euid. */
  allowUids?: number[];
  log?: (line: string) => void;
}

export class ControlServer {
  private constructor(
    readonly path: string,
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
  ) {}

  /**
   * Listens on the control socket. A stale socket file (nobody accepting) is replaced; a live one
   * means another daemon runs: that is an error naming the path.
   */
  static async listen(handler: ControlHandler, opts: ControlServerOptions = {}): Promise<ControlServer> {
    const path = opts.path ?? controlSocketPath();
    const dir = path.slice(0, path.lastIndexOf('/')) || '/';
    inRunDir(dir, 'the run dir', () => mkdirSync(dir, { recursive: true, mode: 0o700 }));
    let st;
    try {
      st = lstatSync(path);
    } catch {
      st = undefined;
    }
    if (st) {
      if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
      if (await probe(path)) throw new Error(`another xvbd daemon already listens on ${path}`);
      unlinkSync(path);
    }
    const allowed = new Set([0, process.geteuid?.() ?? 0, ...(opts.allowUids ?? [])]);
    const log = opts.log ?? (() => undefined);
    const sockets = new Set<Socket>();
    const server = createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => undefined);
      let peer: PeerCred | undefined;
      const fd = fdOf(sock);
      if (fd !== undefined) {
        try {
          peer = peerCred(fd);
        } catch {
          peer = undefined;
        }
      }
      if (peer && !allowed.has(peer.uid)) {
        log(`control: refused a client with uid ${peer.uid} (pid ${peer.pid})`);
        sock.end(JSON.stringify({ ok: false, error: 'permission denied: the control socket is for root' }) + '\n');
        return;
      }
      serveJsonLines(sock, (line) => handleLine(line, handler, peer, log), {
        maxLine: MAX_LINE,
        tooLong: { ok: false, error: `request line longer than ${MAX_LINE} bytes` },
        sequential: true,
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(runDirError(err, path, 'the control socket')));
      // The 0700 directory already keeps others out; the chmod makes the socket itself 0600 too.
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    inRunDir(path, 'the control socket', () => chmodSync(path, 0o600));
    return new ControlServer(path, server, sockets);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

async function handleLine(line: string, handler: ControlHandler, peer: PeerCred | undefined, log: (l: string) => void): Promise<ControlReply> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, error: 'bad request: not a JSON object on one line' };
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return { ok: false, error: 'bad request: not a JSON object' };
  const r = req as ControlRequest;
  const id = r.id;
  if (typeof r.op !== 'string' || !/^[a-z][a-z-]{0,31}$/.test(r.op)) return { id, ok: false, error: 'bad request: "op" must be a command name' };
  try {
    const out = await handler(r, peer);
    return { id, ok: true, ...out };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (!(err instanceof ControlError)) log(`control: ${r.op} failed: ${msg}`);
    return { id, ok: false, error: msg };
  }
}

/** A client connection to the daemon (used by `xvbd hook`, `xvbd apply`, tests); requests are numbered. */
export class ControlClient {
  private nextId = 1;

  private constructor(private readonly c: JsonLinesClient<ControlRequest, ControlReply>) {}

  /** Connects; rejects with ENOENT / ECONNREFUSED when no daemon listens. */
  static async connect(path = controlSocketPath(), timeoutMs = 2000): Promise<ControlClient> {
    return new ControlClient(await JsonLinesClient.connect<ControlRequest, ControlReply>(path, 'the daemon', timeoutMs));
  }

  /** Sends one request and waits for its reply (bounded by timeoutMs). */
  request(req: ControlRequest, timeoutMs = 60_000): Promise<ControlReply> {
    return this.c.request({ id: this.nextId++, ...req }, timeoutMs);
  }

  close(): void {
    this.c.close();
  }
}

/**
 * One request to the daemon if one listens: resolves with its reply, or with undefined when no
 * daemon listens (no socket file, or nobody accepting), so callers fall back to doing the work.
 */
export async function askDaemon(req: ControlRequest, opts: { path?: string; timeoutMs?: number } = {}): Promise<ControlReply | undefined> {
  let c: ControlClient;
  try {
    c = await ControlClient.connect(opts.path ?? controlSocketPath(), 2000);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return undefined;
    throw err;
  }
  try {
    return await c.request(req, opts.timeoutMs ?? 60_000);
  } finally {
    c.close();
  }
}
