// The client side of xvbd's two local protocols (the daemon's control socket, the keeper's socket): one
// JSON object per line each way, replies in the order of the requests, on a unix stream socket.
import { createConnection, type Socket } from 'node:net';

/** Longest reply line taken before the connection is dropped. */
const MAX_REPLY = 1024 * 1024;

/** How a connection to a peer ended: it closed, the socket failed, or the peer did not answer in time. */
export type ConnectionLoss = 'closed' | 'failed' | 'no-answer';

/** A request lost with its connection (as opposed to the peer's answer refusing it): worth a new connection. */
export class ConnectionLostError extends Error {
  constructor(
    message: string,
    readonly loss: ConnectionLoss,
  ) {
    super(message);
    this.name = 'ConnectionLostError';
  }
}

export class JsonLinesClient<Req extends { op: string }, Rep> {
  private buf = '';
  private readonly waiting: { resolve: (r: Rep) => void; reject: (e: Error) => void }[] = [];
  private failed: Error | undefined;

  private constructor(
    private readonly sock: Socket,
    /** Who answers, for error messages ("the keeper", "the daemon"). */
    private readonly peer: string,
  ) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.buf += chunk;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiting.shift();
        if (!w) continue;
        try {
          w.resolve(JSON.parse(line) as Rep);
        } catch {
          w.reject(new Error(`${peer} sent a reply that is not JSON`));
        }
      }
      if (this.buf.length > MAX_REPLY) sock.destroy(new Error(`${peer} sent a reply line longer than ${MAX_REPLY} bytes`));
    });
    sock.on('error', (e) => this.fail(new ConnectionLostError(`connection to ${peer} failed: ${e.message}`, 'failed')));
    sock.on('close', () => this.fail(new ConnectionLostError(`${peer} closed the connection`, 'closed')));
  }

  private closeListeners: ((e: Error) => void)[] = [];

  private fail(err: Error): void {
    const first = this.failed === undefined;
    this.failed ??= err;
    for (const w of this.waiting.splice(0)) w.reject(this.failed);
    if (first) for (const f of this.closeListeners.splice(0)) f(this.failed);
  }

  /** Resolves (never rejects) once the connection has ended or failed, with why. */
  ended(): Promise<Error> {
    if (this.failed) return Promise.resolve(this.failed);
    return new Promise((r) => this.closeListeners.push(r));
  }

  /** Connects; rejects with the socket's error (ENOENT / ECONNREFUSED when nobody listens, ETIMEDOUT). */
  static connect<Req extends { op: string }, Rep>(path: string, peer: string, timeoutMs = 2000): Promise<JsonLinesClient<Req, Rep>> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      const t = setTimeout(() => {
        s.destroy();
        reject(Object.assign(new Error(`timed out connecting to ${path}`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      const onError = (e: Error) => {
        clearTimeout(t);
        reject(e);
      };
      s.once('error', onError);
      s.once('connect', () => {
        clearTimeout(t);
        s.off('error', onError);
        resolve(new JsonLinesClient<Req, Rep>(s, peer));
      });
    });
  }

  /**
   * Sends one request and waits for its reply. A peer that does not answer within timeoutMs fails the
   * connection (a late reply would be taken for the next request's).
   */
  request(req: Req, timeoutMs = 60_000): Promise<Rep> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<Rep>((resolve, reject) => {
      const t = setTimeout(() => {
        this.fail(new ConnectionLostError(`${this.peer} did not answer "${req.op}" within ${timeoutMs} ms`, 'no-answer'));
        this.sock.destroy();
      }, timeoutMs);
      t.unref();
      this.waiting.push({
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.sock.write(JSON.stringify(req) + '\n');
    });
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}

export interface ServeOptions {
  /** Longest request line; a longer one ends the connection (after `tooLong`, if given). */
  maxLine: number;
  /** The reply to a line longer than maxLine, sent before the connection ends. */
  tooLong?: object;
  /** Handle one request at a time (default: all at once; replies still in request order). */
  sequential?: boolean;
}

/**
 * The server side of a connection: one request per line in, one reply per line out, the replies in the
 * order of the requests whatever order the handler finishes in (the client pairs them by order).
 * `handle` gets each non-empty line as it came and resolves with the reply object; it must not reject.
 */
export function serveJsonLines(sock: Socket, handle: (line: string) => Promise<object>, opts: ServeOptions): void {
  let buf = '';
  let replies: Promise<void> = Promise.resolve();
  const send = (r: object) => {
    if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n');
  };
  sock.setEncoding('utf8');
  sock.on('error', () => undefined);
  const tooLong = () => {
    buf = '';
    sock.pause();
    if (opts.tooLong) {
      const r = opts.tooLong;
      replies = replies.then(() => {
        send(r);
        sock.end();
      });
    } else sock.destroy();
  };
  sock.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      if (nl > opts.maxLine) return tooLong();
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === '') continue;
      if (opts.sequential) {
        replies = replies.then(() => handle(line)).then(send);
      } else {
        const answer = handle(line);
        replies = replies.then(() => answer).then(send);
      }
    }
    if (buf.length > opts.maxLine) tooLong();
  });
}
