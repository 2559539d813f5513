// The simulator's socket side: a xenstored-compatible unix socket. Every connection acts as
// dom0 and is privileged, as on a real host. Requests are answered with the reply or the
// ERROR message C xenstored gives; an oversized frame drops the connection, as it does.
import { createServer, type Server, type Socket } from 'node:net';
import { unlinkSync, existsSync, statSync } from 'node:fs';
import { XsError } from '../xenstore/errors.js';
import { formatPerm, parsePerm } from '../xenstore/paths.js';
import { FrameDecoder, FrameTooLargeError, PAYLOAD_MAX, XS, XS_TYPE_COUNT, XS_TYPE_NAMES, encodeFrame, nulJoin, splitNul, type Frame } from '../xenstore/wire.js';
import { Store, StoreError, Transaction, WatchTable, watchKey, type Caller, type View, type Watcher } from './store.js';

export interface DomainHooks {
  introduce(domid: number): void;
  release(domid: number): boolean;
  isIntroduced(domid: number): boolean;
}

const ACK = nulJoin('OK');
/** Types whose tx_id is ignored (XS_FLAG_NOTID in xenstored). */
const NOTID = new Set<number>([
  XS.WATCH, XS.UNWATCH, XS.INTRODUCE, XS.RELEASE, XS.GET_DOMAIN_PATH, XS.IS_DOMAIN_INTRODUCED,
  XS.RESUME, XS.SET_TARGET, XS.RESET_WATCHES, XS.CONTROL,
]);

/** A request payload's NUL-terminated arguments (get_strings: bytes after the last NUL are no argument). */
function args(payload: Buffer): string[] {
  return splitNul(payload.subarray(0, payload.lastIndexOf(0) + 1));
}

/**
 * onearg: exactly one NUL, at the end. When it is not, C xenstored goes on with a NULL name and
 * answers with whatever that gives in the handler (recorded on 4.17): READ, DIRECTORY and
 * GET_PERMS say ENOENT, MKDIR and RM say ENOMEM, the others EINVAL.
 */
function onearg(payload: Buffer, errno = 'EINVAL'): string {
  if (payload.length === 0 || payload.indexOf(0) !== payload.length - 1) throw new StoreError(errno);
  return payload.toString('utf8', 0, payload.length - 1);
}

export class Connection implements Watcher {
  readonly caller: Caller;
  readonly watches = new WatchTable();
  readonly transactions = new Map<number, Transaction>();
  private readonly decoder = new FrameDecoder();
  private closed = false;
  /** Replies and events of one tick leave in one writev (socket corked until the next tick). */
  private corked = false;

  constructor(
    private readonly store: Store,
    private readonly domains: DomainHooks,
    private readonly sock: Socket,
    private readonly onClose: (c: Connection) => void,
    private readonly log?: (line: string) => void,
    private readonly id = 0,
  ) {
    this.caller = { domid: 0, privileged: true };
    store.watchers.add(this);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('error', () => this.close());
    sock.on('close', () => this.close());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.store.watchers.delete(this);
    this.transactions.clear();
    this.watches.clear();
    this.flush();
    this.sock.destroy();
    this.onClose(this);
  }

  deliver(path: string, token: string): void {
    if (this.closed) return;
    this.send(encodeFrame(XS.WATCH_EVENT, 0, 0, nulJoin(path, token)));
  }

  /** Queues one frame; everything queued within this tick is written together, in order. */
  private send(frame: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      this.sock.cork();
      process.nextTick(() => this.flush());
    }
    this.sock.write(frame);
  }

  private flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.sock.uncork();
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      if (err instanceof FrameTooLargeError) {
        this.close(); // xenstored: "Client tried to feed us ..." -> ignore_connection
        return;
      }
      throw err;
    }
    for (const f of frames) {
      if (this.closed) return;
      this.process(f);
    }
  }

  private reply(f: Frame, payload: Buffer): void {
    if (this.closed) return;
    this.send(encodeFrame(f.type, f.reqId, f.txId, payload));
  }

  private error(f: Frame, errno: string): void {
    if (this.closed) return;
    this.send(encodeFrame(XS.ERROR, f.reqId, f.txId, nulJoin(errno)));
  }

  private process(f: Frame): void {
    let result = 'OK';
    try {
      const out = this.handle(f);
      if (out !== null) this.reply(f, out);
    } catch (err) {
      result = err instanceof StoreError || err instanceof XsError ? err.errno : 'EIO';
      this.error(f, result);
    }
    if (this.log) {
      const arg = f.payload.toString('utf8', 0, Math.min(f.payload.length, 120)).replace(/\0/g, ' ').replace(/[^\x20-\x7e]/g, '?').trim();
      this.log(`conn${this.id} ${XS_TYPE_NAMES[f.type] ?? `type${f.type}`}${f.txId ? ` tx${f.txId}` : ''} ${arg} -> ${result}`);
    }
  }

  private view(f: Frame): View {
    if (f.txId === 0) return this.store.main;
    const tx = this.transactions.get(f.txId);
    if (!tx) throw new StoreError('ENOENT');
    return tx;
  }

  // Long: one case per xenstore wire message type, as xenstored's own dispatch table; each case is a few lines.
  private handle(f: Frame): Buffer | null {
    const s = this.store;
    const c = this.caller;
    if (f.type >= XS_TYPE_COUNT) throw new StoreError('ENOSYS');
    const v = NOTID.has(f.type) ? s.main : this.view(f);
    switch (f.type) {
      case XS.READ:
        return s.read(v, c, onearg(f.payload, 'ENOENT'));
      case XS.DIRECTORY: {
        const names = s.directory(v, c, onearg(f.payload, 'ENOENT'));
        const out = nulJoin(...names);
        if (out.length > PAYLOAD_MAX) throw new StoreError('E2BIG');
        return out;
      }
      case XS.DIRECTORY_PART: {
        const a = args(f.payload);
        if (a.length !== 2) throw new StoreError('EINVAL');
        return s.directoryPart(v, c, a[0]!, Number.parseInt(a[1]!, 10) || 0);
      }
      case XS.WRITE: {
        const nul = f.payload.indexOf(0);
        if (nul < 0) throw new StoreError('EINVAL');
        s.write(v, c, f.payload.toString('utf8', 0, nul), f.payload.subarray(nul + 1));
        return ACK;
      }
      case XS.MKDIR:
        s.mkdir(v, c, onearg(f.payload, 'ENOMEM'));
        return ACK;
      case XS.RM:
        s.rm(v, c, onearg(f.payload, 'ENOMEM'));
        return ACK;
      case XS.GET_PERMS: {
        const perms = s.getPerms(v, c, onearg(f.payload, 'ENOENT'));
        return nulJoin(...perms.map(formatPerm));
      }
      case XS.SET_PERMS: {
        const a = args(f.payload);
        if (a.length < 2) throw new StoreError('EINVAL');
        s.setPerms(v, c, a[0]!, a.slice(1).map(parsePerm));
        return ACK;
      }
      case XS.WATCH: {
        const a = args(f.payload);
        if (a.length !== 2) throw new StoreError('EINVAL');
        const [path, token] = a as [string, string];
        const relative = !path.startsWith('/') && !path.startsWith('@');
        const node = s.canonical(c, path, true);
        const key = watchKey(node, token);
        if (this.watches.has(key)) throw new StoreError('EEXIST');
        this.watches.set(key, { node, token, relativeTo: relative ? `/local/domain/${c.domid}` : undefined });
        this.reply(f, ACK);
        this.deliver(path, token); // "We fire once up front: simplifies clients and restart."
        return null;
      }
      case XS.UNWATCH: {
        const a = args(f.payload);
        if (a.length !== 2) throw new StoreError('EINVAL');
        const node = s.canonical(c, a[0]!, true);
        if (!this.watches.delete(watchKey(node, a[1]!))) throw new StoreError('ENOENT');
        return ACK;
      }
      case XS.TRANSACTION_START: {
        if (f.txId !== 0) throw new StoreError('EBUSY');
        onearg(f.payload.length === 0 ? Buffer.from([0]) : f.payload);
        const tx = s.begin();
        this.transactions.set(tx.id, tx);
        return nulJoin(String(tx.id));
      }
      case XS.TRANSACTION_END: {
        const arg = onearg(f.payload);
        if (arg !== 'T' && arg !== 'F') throw new StoreError('EINVAL');
        const tx = this.transactions.get(f.txId);
        if (!tx) throw new StoreError('ENOENT');
        this.transactions.delete(f.txId);
        if (arg === 'T') tx.commit();
        return ACK;
      }
      case XS.GET_DOMAIN_PATH: {
        const d = Number.parseInt(onearg(f.payload), 10);
        return nulJoin(`/local/domain/${Number.isFinite(d) ? d >>> 0 : 0}`);
      }
      case XS.INTRODUCE: {
        const a = args(f.payload);
        if (a.length < 3) throw new StoreError('EINVAL');
        const d = Number.parseInt(a[0]!, 10);
        if (!Number.isInteger(d) || d <= 0 || d > 0x7fef) throw new StoreError('EINVAL');
        this.domains.introduce(d);
        return ACK;
      }
      case XS.RELEASE: {
        const d = Number.parseInt(onearg(f.payload), 10);
        if (!Number.isInteger(d) || d <= 0) throw new StoreError('EINVAL');
        if (!this.domains.release(d)) throw new StoreError('ENOENT');
        return ACK;
      }
      case XS.IS_DOMAIN_INTRODUCED: {
        const d = Number.parseInt(onearg(f.payload), 10);
        return nulJoin(Number.isInteger(d) && this.domains.isIntroduced(d) ? 'T' : 'F');
      }
      case XS.RESUME: {
        const d = Number.parseInt(onearg(f.payload), 10);
        if (!this.domains.isIntroduced(d)) throw new StoreError('ENOENT');
        return ACK;
      }
      case XS.SET_TARGET: {
        const a = args(f.payload);
        if (a.length !== 2) throw new StoreError('EINVAL');
        return ACK;
      }
      case XS.RESET_WATCHES:
        this.watches.clear();
        this.transactions.clear();
        return ACK;
      case XS.CONTROL:
        throw new StoreError('EINVAL');
      default:
        throw new StoreError('ENOSYS');
    }
  }
}

/** Serves the store on a unix socket; resolves once listening. */
export async function serveSocket(
  store: Store,
  domains: DomainHooks,
  socketPath: string,
  log?: (line: string) => void,
): Promise<{ server: Server; connections: Set<Connection>; close(): Promise<void> }> {
  if (existsSync(socketPath)) {
    if (statSync(socketPath).isSocket()) unlinkSync(socketPath);
    else throw new Error(`${socketPath} exists and is not a socket`);
  }
  const connections = new Set<Connection>();
  let seq = 0;
  const server = createServer((sock) => {
    const conn = new Connection(store, domains, sock, (c) => connections.delete(c), log, ++seq);
    connections.add(conn);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    connections,
    close: async () => {
      for (const c of [...connections]) c.close();
      await new Promise<void>((r) => server.close(() => r()));
      try {
        unlinkSync(socketPath);
      } catch {
        // already gone
      }
    },
  };
}
