// The xenstore wire protocol (xen/include/public/io/xs_wire.h): a 16-byte little-endian header
// { type, req_id, tx_id, len } followed by `len` bytes of payload, len <= XENSTORE_PAYLOAD_MAX.

export const XS = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  // 20 was XS_RESTRICT (removed)
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
} as const;
export const XS_TYPE_COUNT = 23;

export const XS_TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(XS).map(([k, v]) => [v, k]),
);

export const HEADER_LEN = 16;
/** XENSTORE_PAYLOAD_MAX */
export const PAYLOAD_MAX = 4096;
/** XENSTORE_ABS_PATH_MAX */
export const ABS_PATH_MAX = 3072;
/** XENSTORE_REL_PATH_MAX */
export const REL_PATH_MAX = 2048;

export interface Frame {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

export function encodeFrame(type: number, reqId: number, txId: number, payload: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_LEN + payload.length);
  buf.writeUInt32LE(type >>> 0, 0);
  buf.writeUInt32LE(reqId >>> 0, 4);
  buf.writeUInt32LE(txId >>> 0, 8);
  buf.writeUInt32LE(payload.length, 12);
  payload.copy(buf, HEADER_LEN);
  return buf;
}

/** Joins strings each followed by a NUL (the wire's argument form). */
export function nulJoin(...parts: (string | Buffer)[]): Buffer {
  let len = parts.length;
  for (const p of parts) len += typeof p === 'string' ? Buffer.byteLength(p, 'utf8') : p.length;
  const buf = Buffer.allocUnsafe(len);
  let off = 0;
  for (const p of parts) {
    off += typeof p === 'string' ? buf.write(p, off, 'utf8') : p.copy(buf, off);
    buf[off++] = 0;
  }
  return buf;
}

/** Splits a payload on NULs; a trailing NUL does not yield an empty last element. */
export function splitNul(buf: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < buf.length; i++) {
    if (buf[i] === 0) {
      out.push(buf.toString('utf8', start, i));
      start = i + 1;
    }
  }
  if (start < buf.length) out.push(buf.toString('utf8', start));
  return out;
}

/**
 * Incremental frame decoder. `push` returns complete frames; an announced payload longer than
 * `maxPayload` makes it throw FrameTooLargeError (xenstored drops such a connection).
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly maxPayload = PAYLOAD_MAX) {}

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    while (this.buf.length >= HEADER_LEN) {
      const len = this.buf.readUInt32LE(12);
      if (len > this.maxPayload) throw new FrameTooLargeError(len);
      if (this.buf.length < HEADER_LEN + len) break;
      out.push({
        type: this.buf.readUInt32LE(0),
        reqId: this.buf.readUInt32LE(4),
        txId: this.buf.readUInt32LE(8),
        payload: Buffer.from(this.buf.subarray(HEADER_LEN, HEADER_LEN + len)),
      });
      this.buf = this.buf.subarray(HEADER_LEN + len);
    }
    return out;
  }
}

export class FrameTooLargeError extends Error {
  constructor(readonly len: number) {
    super(`xenstore frame announces ${len} bytes of payload (max ${PAYLOAD_MAX})`);
    this.name = 'FrameTooLargeError';
  }
}
