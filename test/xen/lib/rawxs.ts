// A deliberately raw xenstore wire client for differential tests: it sends exactly the bytes it is
// told to (xs_wire.h: 16-byte little-endian header {type, req_id, tx_id, len} + payload) and records
// every message the server sends back, replies and watch events, in arrival order. It interprets
// nothing, so the same sequence can be replayed against the real xenstored and the simulator and the
// raw replies compared. Independent of src/xenstore on purpose.
import { connect, type Socket } from 'node:net';

export const XS_TYPES: Record<string, number> = {
  CONTROL: 0, DIRECTORY: 1, READ: 2, GET_PERMS: 3, WATCH: 4, UNWATCH: 5, TRANSACTION_START: 6,
  TRANSACTION_END: 7, INTRODUCE: 8, RELEASE: 9, GET_DOMAIN_PATH: 10, WRITE: 11, MKDIR: 12, RM: 13,
  SET_PERMS: 14, WATCH_EVENT: 15, ERROR: 16, IS_DOMAIN_INTRODUCED: 17, RESUME: 18, SET_TARGET: 19,
  RESET_WATCHES: 21, DIRECTORY_PART: 22,
};
const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(XS_TYPES).map(([k, v]) => [v, k]));
export const typeName = (t: number): string => TYPE_NAMES[t] ?? `TYPE_${t}`;

export interface RawMsg {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

export class RawXs {
  /** every message received, in order */
  readonly inbox: RawMsg[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private nextReq = 1;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 16) {
        const len = this.buf.readUInt32LE(12);
        if (this.buf.length < 16 + len) break;
        this.inbox.push({
          type: this.buf.readUInt32LE(0),
          reqId: this.buf.readUInt32LE(4),
          txId: this.buf.readUInt32LE(8),
          payload: Buffer.from(this.buf.subarray(16, 16 + len)),
        });
        this.buf = this.buf.subarray(16 + len);
      }
      this.wake();
    });
    const onEnd = () => {
      this.closed = true;
      this.wake();
    };
    sock.on('close', onEnd);
    sock.on('end', onEnd);
    sock.on('error', onEnd);
  }

  static open(path: string): Promise<RawXs> {
    return new Promise((res, rej) => {
      const s = connect(path);
      s.once('connect', () => res(new RawXs(s)));
      s.once('error', rej);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Sends one message; returns its req_id. */
  send(type: number, txId: number, payload: Buffer, reqId?: number): number {
    const id = reqId ?? this.nextReq++;
    const h = Buffer.alloc(16);
    h.writeUInt32LE(type, 0);
    h.writeUInt32LE(id, 4);
    h.writeUInt32LE(txId >>> 0, 8);
    h.writeUInt32LE(payload.length, 12);
    this.sock.write(Buffer.concat([h, payload]));
    return id;
  }

  /** Waits until pred(inbox) or the connection closes or timeoutMs passes; true if pred held. */
  async waitFor(pred: (inbox: RawMsg[]) => boolean, timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!pred(this.inbox)) {
      if (this.closed) return pred(this.inbox);
      const left = end - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
    return true;
  }

  /** Waits until no message has arrived for quietMs (watch events are asynchronous). */
  async quiet(quietMs: number): Promise<void> {
    for (;;) {
      const n = this.inbox.length;
      await new Promise((r) => setTimeout(r, quietMs));
      if (this.inbox.length === n || this.closed) return;
    }
  }

  /** Sends one request and resolves to its reply (an ERROR reply too); throws on no reply. */
  async call(type: number, payload: Buffer, txId = 0, timeoutMs = 10_000): Promise<RawMsg> {
    const from = this.inbox.length;
    const id = this.send(type, txId, payload);
    const isReply = (m: RawMsg) => m.reqId === id && m.type !== XS_TYPES.WATCH_EVENT;
    await this.waitFor((ib) => ib.slice(from).some(isReply), timeoutMs);
    const r = this.inbox.slice(from).find(isReply);
    if (!r) throw new Error(`xenstore: no reply to ${typeName(type)} ${JSON.stringify(payload.toString('utf8'))}${this.closed ? ' (connection closed)' : ''}`);
    return r;
  }

  /** call() that throws on an ERROR reply; returns the reply payload as text. */
  async ok(type: number, payload: Buffer, txId = 0): Promise<string> {
    const r = await this.call(type, payload, txId);
    if (r.type === XS_TYPES.ERROR) throw new Error(`xenstore ${typeName(type)} ${JSON.stringify(payload.toString('utf8'))}: ${r.payload.toString('utf8').replace(/\0$/, '')}`);
    return r.payload.toString('utf8');
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Payload helpers: "a\0b\0" style. */
export const z = (...parts: string[]): Buffer => Buffer.from(parts.map((p) => `${p}\0`).join(''), 'utf8');
/** WRITE: path\0value (the value has no terminator). */
export const pv = (path: string, value: string): Buffer => Buffer.from(`${path}\0${value}`, 'utf8');
