// The xenstore client: speaks the wire protocol over xenstored's unix socket or the xenbus
// device, as libxenstore does (tools/libs/store/xs.c): $XENSTORED_PATH (a socket, or else a
// device file), then $XENSTORED_RUNDIR/socket (default /run/xenstored/socket,
// /var/run/xenstored/socket), then /dev/xen/xenbus, /proc/xen/xenbus.
// Requests are pipelined over a socket (matched by req_id) and sent one at a time over the
// xenbus device (which cannot pipeline); watch events are delivered on events().
import { connect as netConnect, type Socket } from 'node:net';
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { XsClient, XsPerms, XsTransaction, XsWatchEvent } from './api.js';
import { XsError, describeXsFailure, isXsError } from './errors.js';
import { checkPath, formatPerm, parsePerm } from './paths.js';
import { FrameDecoder, HEADER_LEN, PAYLOAD_MAX, XS, XS_TYPE_NAMES, encodeFrame, nulJoin, splitNul } from './wire.js';
import { defaultPaths } from '../host/env.js';

export { XsError } from './errors.js';
export { parsePerms, formatPerms } from './paths.js';

export interface ConnectOptions {
  /** Socket or device path; default: chosen as libxenstore does (src/host/env.ts defaultPaths). */
  path?: string;
  /** The paths to try in order when `path` is not given (a HostConfig's xenstorePaths). */
  paths?: string[];
}

interface Transport {
  /** Sends one whole message; a failure of that one write rejects only its request. */
  write(buf: Buffer): Promise<void> | void;
  close(): void;
  readonly description: string;
}

interface Pending {
  type: number;
  path: string | undefined;
  resolve(payload: Buffer): void;
  reject(err: Error): void;
}

/** Connects to xenstored (or the simulator) and returns a client. */
export async function connect(opts: ConnectOptions = {}): Promise<XsClient> {
  const paths = opts.path !== undefined ? [opts.path] : (opts.paths ?? defaultPaths());
  const errors: string[] = [];
  for (const p of paths) {
    try {
      const st = await stat(p);
      const client = new XsConnection();
      if (st.isSocket()) await client.attachSocket(p);
      // a character device (/dev/xen/xenbus), or a FIFO (the tests' loopback "device")
      else if (st.isCharacterDevice() || st.isFIFO()) await client.attachDevice(p);
      // a regular file would be read as a stream of xenstore frames: "frame announces 761620321 bytes"
      else throw new Error(`it is ${st.isFile() ? 'a regular file' : st.isDirectory() ? 'a directory' : 'not a socket'}, not xenstored's socket nor the xenbus device (/dev/xen/xenbus)`);
      return client;
    } catch (err) {
      errors.push(`${p}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new XsError('ENOENT', `cannot connect to xenstore (${errors.join('; ')})`);
}

class XsConnection implements XsClient {
  private transport: Transport | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextReqId = 1;
  private closedError: XsError | undefined;
  private readonly decoder = new FrameDecoder(PAYLOAD_MAX * 16);
  private readonly backlog: XsWatchEvent[] = [];
  private readonly subscribers = new Set<Subscriber>();
  /**
   * Watches registered on this connection. xenstored answers a duplicate with EEXIST and an
   * unknown unwatch with ENOENT, but the Linux xenbus device registers duplicates and acks any
   * unwatch: tracking them here gives the same answers on both transports.
   */
  private readonly watchSet = new Set<string>();
  /**
   * The Linux xenbus device cannot pipeline: it queues a request with its body still in the
   * file's one message buffer, so the next write() can overwrite it before it reaches the ring
   * (seen in the xenlab: lost writes, replies with other requests' values). Over the device,
   * requests go one at a time; over a socket they are pipelined.
   */
  private oneAtATime = false;
  private inFlight: number | undefined;
  private readonly waiting: { reqId: number; frame: Buffer; path: string | undefined }[] = [];
  private readonly base: Ops;
  /** Largest payload this transport takes: the xenbus device holds header + payload in 4096 bytes. */
  private maxPayload = PAYLOAD_MAX;

  constructor() {
    this.base = new Ops(this, 0);
  }

  // ---- transports -------------------------------------------------------------------------
  attachSocket(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock: Socket = netConnect({ path });
      const onError = (err: Error) => reject(err);
      sock.once('error', onError);
      sock.once('connect', () => {
        sock.off('error', onError);
        sock.setNoDelay?.(true);
        // Requests issued together (a transaction's writes, observe's reads) leave in one writev when
        // the current JS turn ends, not one write(2) each: xenstored then reads them as one batch
        // instead of waking up, answering and going back to sleep once per frame.
        let corked = false;
        const uncork = () => {
          corked = false;
          sock.uncork();
        };
        this.transport = {
          write: (buf) => {
            if (!corked) {
              corked = true;
              sock.cork();
              process.nextTick(uncork);
            }
            sock.write(buf);
          },
          close: () => sock.destroy(),
          description: path,
        };
        sock.on('data', (chunk: Buffer) => this.onData(chunk));
        sock.on('error', (err) => this.fail(`xenstore connection to ${path} lost: ${err.message}`));
        sock.on('close', () => this.fail(`xenstore connection to ${path} closed`));
        resolve();
      });
    });
  }

  async attachDevice(path: string): Promise<void> {
    const fh: FileHandle = await open(path, 'r+');
    let closed = false;
    let writing: Promise<unknown> = Promise.resolve();
    // Linux xenbus_file_write buffers header + payload in XENSTORE_PAYLOAD_MAX bytes (EINVAL beyond).
    this.maxPayload = PAYLOAD_MAX - HEADER_LEN;
    this.oneAtATime = true;
    this.transport = {
      // The xenbus device wants one whole message per write(): serialize them.
      write: (buf) => {
        const w = writing.then(async () => {
          await fh.write(buf);
        });
        writing = w.catch(() => undefined);
        return w;
      },
      close: () => {
        if (closed) return;
        closed = true;
        // The reader blocks in read(2) on a thread of the pool: a reply makes it return and the
        // loop below closes the file. If no request is in flight, a last harmless one does it
        // (never while one is in flight: it would overwrite that request's body in the kernel).
        if (this.inFlight !== undefined) return;
        writing = writing
          .then(() => fh.write(encodeFrame(XS.GET_DOMAIN_PATH, 0, 0, nulJoin('0'))))
          .catch(() => fh.close().catch(() => undefined));
      },
      description: path,
    };
    void (async () => {
      const buf = Buffer.allocUnsafe(PAYLOAD_MAX * 2);
      while (!closed) {
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, 0, buf.length, null));
        } catch (err) {
          if (!closed) this.fail(`read from ${path}: ${(err as Error).message}`);
          break;
        }
        if (n === 0) {
          this.fail(`${path}: end of file`);
          break;
        }
        if (!closed) this.onData(Buffer.from(buf.subarray(0, n)));
      }
      await fh.close().catch(() => undefined);
    })();
  }

  // ---- framing ----------------------------------------------------------------------------
  private onData(chunk: Buffer): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.fail(`xenstore protocol error: ${(err as Error).message}`);
      return;
    }
    for (const f of frames) {
      if (f.type === XS.WATCH_EVENT) {
        const [path, token] = splitNul(f.payload);
        if (path !== undefined) this.deliver({ path, token: token ?? '' });
        continue;
      }
      if (this.oneAtATime && f.reqId === this.inFlight) {
        this.inFlight = undefined;
        this.pump();
      }
      const p = this.pending.get(f.reqId);
      if (!p) continue; // a reply nobody waits for (e.g. after a timeout): ignore
      this.pending.delete(f.reqId);
      if (f.type === XS.ERROR) {
        const errno = splitNul(f.payload)[0] || 'EIO';
        const what = XS_TYPE_NAMES[p.type] ?? String(p.type);
        p.reject(new XsError(errno, describeXsFailure(errno, what, p.path), p.path));
      } else if (f.type !== p.type) {
        p.reject(new XsError('EIO', `xenstore replied ${XS_TYPE_NAMES[f.type] ?? f.type} to ${XS_TYPE_NAMES[p.type]}`, p.path));
      } else {
        p.resolve(f.payload);
      }
    }
  }

  private fail(message: string): void {
    if (this.closedError) return;
    this.closedError = new XsError('EIO', message, undefined, { connectionLost: true });
    this.transport?.close();
    for (const p of this.pending.values()) p.reject(new XsError('EIO', `${message} (request on ${p.path ?? '-'} lost)`, p.path, { connectionLost: true }));
    this.pending.clear();
    this.waiting.length = 0;
    for (const s of this.subscribers) s.end();
    this.subscribers.clear();
  }

  /** Sends one request; resolves with the reply payload. */
  request(type: number, txId: number, payload: Buffer, path?: string): Promise<Buffer> {
    if (this.closedError) return Promise.reject(new XsError('EIO', this.closedError.message, path, { connectionLost: true }));
    if (payload.length > this.maxPayload) {
      return Promise.reject(
        new XsError('E2BIG', `xenstore request too big (${payload.length} > ${this.maxPayload} bytes)${path ? ` for ${path}` : ''}`, path),
      );
    }
    const reqId = this.nextReqId;
    this.nextReqId = this.nextReqId >= 0xfffffffe ? 1 : this.nextReqId + 1;
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(reqId, { type, path, resolve, reject });
      const frame = encodeFrame(type, reqId, txId, payload);
      if (this.oneAtATime && this.inFlight !== undefined) this.waiting.push({ reqId, frame, path });
      else this.send(reqId, frame, path);
    });
  }

  private send(reqId: number, frame: Buffer, path: string | undefined): void {
    if (this.oneAtATime) this.inFlight = reqId;
    const w = this.transport!.write(frame);
    w?.catch((err: NodeJS.ErrnoException) => {
      if (this.inFlight === reqId) {
        this.inFlight = undefined;
        this.pump();
      }
      const p = this.pending.get(reqId);
      if (!p) return;
      this.pending.delete(reqId);
      p.reject(new XsError(err.code ?? 'EIO', `write to ${this.transport?.description}: ${err.message}${path ? ` (${path})` : ''}`, path, { connectionLost: true }));
    });
  }

  /** Device only: sends the next queued request once the previous one is answered. */
  private pump(): void {
    while (this.inFlight === undefined && this.waiting.length > 0 && !this.closedError) {
      const next = this.waiting.shift()!;
      if (this.pending.has(next.reqId)) this.send(next.reqId, next.frame, next.path);
    }
  }

  // ---- watch events -----------------------------------------------------------------------
  private deliver(ev: XsWatchEvent): void {
    if (this.subscribers.size === 0) this.backlog.push(ev);
    else for (const s of this.subscribers) s.push(ev);
  }

  events(): AsyncIterable<XsWatchEvent> {
    return {
      [Symbol.asyncIterator]: () => {
        const sub = new Subscriber(this.backlog.splice(0), () => this.subscribers.delete(sub));
        if (this.closedError) sub.end();
        else this.subscribers.add(sub);
        return sub;
      },
    };
  }

  // ---- XsOps (outside transactions) -------------------------------------------------------
  read(path: string) { return this.base.read(path); }
  readStrict(path: string) { return this.base.readStrict(path); }
  write(path: string, value: string) { return this.base.write(path, value); }
  mkdir(path: string) { return this.base.mkdir(path); }
  rm(path: string) { return this.base.rm(path); }
  directory(path: string) { return this.base.directory(path); }
  getPerms(path: string) { return this.base.getPerms(path); }
  setPerms(path: string, perms: XsPerms) { return this.base.setPerms(path, perms); }

  async getDomainPath(domid: number): Promise<string> {
    if (!Number.isInteger(domid) || domid < 0 || domid > 0xffff) throw new XsError('EINVAL', `invalid domid ${domid}`);
    const r = await this.request(XS.GET_DOMAIN_PATH, 0, nulJoin(String(domid)));
    return stripNul(r);
  }

  async watch(path: string, token: string): Promise<void> {
    checkPath(path, { allowSpecial: true });
    checkToken(token);
    const key = `${path}\0${token}`;
    if (this.watchSet.has(key)) throw new XsError('EEXIST', `EEXIST: already watching ${path} with token ${token}`, path);
    this.watchSet.add(key);
    try {
      await this.request(XS.WATCH, 0, nulJoin(path, token), path);
    } catch (err) {
      this.watchSet.delete(key);
      throw err;
    }
  }

  async unwatch(path: string, token: string): Promise<void> {
    checkPath(path, { allowSpecial: true });
    checkToken(token);
    const key = `${path}\0${token}`;
    if (!this.watchSet.has(key)) throw new XsError('ENOENT', `ENOENT: no watch on ${path} with token ${token}`, path);
    await this.request(XS.UNWATCH, 0, nulJoin(path, token), path);
    this.watchSet.delete(key);
  }

  async transactionStart(): Promise<XsTransaction> {
    const r = await this.request(XS.TRANSACTION_START, 0, nulJoin(''));
    const id = Number(stripNul(r));
    if (!Number.isInteger(id) || id <= 0) throw new XsError('EIO', `bad transaction id "${stripNul(r)}" from xenstore`);
    return new Ops(this, id);
  }

  async transactionEnd(tx: XsTransaction, commit: boolean): Promise<void> {
    await this.request(XS.TRANSACTION_END, tx.id, nulJoin(commit ? 'T' : 'F'));
  }

  async transaction<T>(fn: (tx: XsTransaction) => Promise<T>, opts: { maxAttempts?: number } = {}): Promise<T> {
    const max = Math.max(1, opts.maxAttempts ?? 16);
    for (let attempt = 1; ; attempt++) {
      const tx = await this.transactionStart();
      let result: T;
      try {
        result = await fn(tx);
      } catch (err) {
        await this.transactionEnd(tx, false).catch(() => undefined);
        if (isXsError(err, 'EAGAIN') && attempt < max) {
          await backoff(attempt);
          continue;
        }
        throw err;
      }
      try {
        await this.transactionEnd(tx, true);
        return result;
      } catch (err) {
        if (isXsError(err, 'EAGAIN')) {
          if (attempt < max) {
            await backoff(attempt);
            continue;
          }
          throw new XsError('EAGAIN', `xenstore transaction still conflicting after ${max} attempts`);
        }
        throw err;
      }
    }
  }

  async close(): Promise<void> {
    if (this.closedError) return;
    this.fail('xenstore client closed');
  }
}

function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(100, 2 ** attempt);
  return new Promise((r) => setTimeout(r, Math.random() * ceiling));
}

function stripNul(b: Buffer): string {
  const end = b.length > 0 && b[b.length - 1] === 0 ? b.length - 1 : b.length;
  return b.toString('utf8', 0, end);
}

function checkToken(token: string): void {
  if (typeof token !== 'string' || token.includes('\0')) throw new XsError('EINVAL', 'invalid watch token (must be a string without NUL)');
}

function checkValue(path: string, value: string): void {
  if (typeof value !== 'string') throw new XsError('EINVAL', `value for ${path} is not a string`, path);
}

/** The operations, bound to a transaction id (0 = none). */
class Ops implements XsTransaction {
  constructor(
    private readonly c: XsConnection,
    readonly id: number,
  ) {}

  async read(path: string): Promise<string | undefined> {
    try {
      return await this.readStrict(path);
    } catch (err) {
      if (isXsError(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async readStrict(path: string): Promise<string> {
    checkPath(path);
    const r = await this.c.request(XS.READ, this.id, nulJoin(path), path);
    return r.toString('utf8');
  }

  async write(path: string, value: string): Promise<void> {
    checkPath(path);
    checkValue(path, value);
    const payload = Buffer.concat([nulJoin(path), Buffer.from(value, 'utf8')]);
    await this.c.request(XS.WRITE, this.id, payload, path);
  }

  async mkdir(path: string): Promise<void> {
    checkPath(path);
    await this.c.request(XS.MKDIR, this.id, nulJoin(path), path);
  }

  async rm(path: string): Promise<void> {
    checkPath(path);
    try {
      await this.c.request(XS.RM, this.id, nulJoin(path), path);
    } catch (err) {
      if (isXsError(err, 'ENOENT')) return;
      throw err;
    }
  }

  async directory(path: string): Promise<string[]> {
    checkPath(path);
    try {
      const r = await this.c.request(XS.DIRECTORY, this.id, nulJoin(path), path);
      return splitNul(r);
    } catch (err) {
      if (isXsError(err, 'ENOENT')) return [];
      if (isXsError(err, 'E2BIG')) return this.directoryPart(path);
      throw err;
    }
  }

  /** DIRECTORY_PART loop as libxenstore's xs_directory_part: restart when the generation changes. */
  private async directoryPart(path: string): Promise<string[]> {
    for (let restarts = 0; restarts < 64; restarts++) {
      let gen: string | undefined;
      let strings = Buffer.alloc(0);
      let restart = false;
      for (;;) {
        let r: Buffer;
        try {
          r = await this.c.request(XS.DIRECTORY_PART, this.id, nulJoin(path, String(strings.length)), path);
        } catch (err) {
          if (isXsError(err, 'ENOENT')) return [];
          if (isXsError(err, 'ENOSYS')) throw new XsError('E2BIG', `directory of ${path} too big and DIRECTORY_PART unsupported`, path);
          throw err;
        }
        const nul = r.indexOf(0);
        if (nul < 0) throw new XsError('EIO', `bad DIRECTORY_PART reply for ${path}`, path);
        const g = r.toString('utf8', 0, nul);
        if (gen === undefined) gen = g;
        else if (g !== gen) {
          restart = true;
          break;
        }
        const part = r.subarray(nul + 1);
        strings = Buffer.concat([strings, part]);
        const off = strings.length;
        if (part.length === 0 || off <= 1 || strings[off - 2] === 0) break;
      }
      if (restart) continue;
      // The list ends with an empty string (an extra NUL).
      const names = splitNul(strings).filter((n) => n.length > 0);
      return names;
    }
    throw new XsError('EAGAIN', `directory of ${path} kept changing while read in parts`, path);
  }

  async getPerms(path: string): Promise<XsPerms> {
    checkPath(path, { allowSpecial: true });
    const r = await this.c.request(XS.GET_PERMS, this.id, nulJoin(path), path);
    return splitNul(r).map(parsePerm);
  }

  async setPerms(path: string, perms: XsPerms): Promise<void> {
    checkPath(path, { allowSpecial: true });
    if (perms.length === 0) throw new XsError('EINVAL', `empty permission list for ${path}`, path);
    const strs = perms.map((p) => {
      const s = formatPerm(p);
      parsePerm(s); // validates
      return s;
    });
    await this.c.request(XS.SET_PERMS, this.id, nulJoin(path, ...strs), path);
  }
}

class Subscriber implements AsyncIterator<XsWatchEvent> {
  private waiter: ((r: IteratorResult<XsWatchEvent>) => void) | undefined;
  private ended = false;

  constructor(
    private readonly queue: XsWatchEvent[],
    private readonly onReturn: () => void,
  ) {}

  push(ev: XsWatchEvent): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: ev, done: false });
    } else this.queue.push(ev);
  }

  end(): void {
    this.ended = true;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<XsWatchEvent>> {
    const ev = this.queue.shift();
    if (ev) return Promise.resolve({ value: ev, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((r) => (this.waiter = r));
  }

  return(): Promise<IteratorResult<XsWatchEvent>> {
    this.onReturn();
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }
}
