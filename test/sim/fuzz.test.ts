// Bad input over a raw socket: malformed frames get the ERROR reply C xenstored gives, an
// oversized frame drops only that connection, random garbage never takes the simulator down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect } from '../../src/xenstore/client.js';
import { FrameDecoder, XS, encodeFrame, nulJoin, type Frame } from '../../src/xenstore/wire.js';
import { simEnv, type SimEnv } from './helpers.js';

let E: SimEnv;
before(async () => {
  E = await simEnv();
});
after(async () => {
  await E?.close();
});

/** A raw connection: send bytes, collect frames, notice the close. */
class Raw {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly dec = new FrameDecoder(1 << 20);
  private waiters: (() => void)[] = [];
  private constructor(private readonly s: Socket) {
    s.on('data', (d: Buffer) => {
      this.frames.push(...this.dec.push(d));
      this.wake();
    });
    s.on('close', () => {
      this.closed = true;
      this.wake();
    });
    s.on('error', () => undefined);
  }
  static open(path: string): Promise<Raw> {
    return new Promise((res, rej) => {
      const s = netConnect({ path });
      s.once('connect', () => res(new Raw(s)));
      s.once('error', rej);
    });
  }
  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  send(b: Buffer) {
    this.s.write(b);
  }
  async until(cond: () => boolean, ms = 2000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!cond()) {
      const left = end - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return true;
  }
  /** Sends one request and returns its reply (type name of ERROR payloads resolved). */
  async call(type: number, payload: Buffer, reqId: number, txId = 0): Promise<{ type: number; text: string }> {
    this.send(encodeFrame(type, reqId, txId, payload));
    const ok = await this.until(() => this.frames.some((f) => f.reqId === reqId && f.type !== XS.WATCH_EVENT));
    assert.ok(ok, `no reply to request ${reqId} (type ${type})`);
    const f = this.frames.find((x) => x.reqId === reqId && x.type !== XS.WATCH_EVENT)!;
    this.frames.splice(this.frames.indexOf(f), 1);
    return { type: f.type, text: f.payload.toString('latin1') };
  }
  close() {
    this.s.destroy();
  }
}

const b = (s: string) => Buffer.from(s, 'latin1');

test('malformed requests get the errors xenstored gives (table)', async () => {
  const r = await Raw.open(E.sim.socketPath);
  try {
    // [what, type, payload, txId, expected reply type, expected payload]
    const table: [string, number, Buffer, number, number, string][] = [
      ['unknown type 99', 99, nulJoin('/x'), 0, XS.ERROR, 'ENOSYS\0'],
      ['type 20 (removed XS_RESTRICT)', 20, nulJoin('/x'), 0, XS.ERROR, 'ENOSYS\0'],
      ['a client sending WATCH_EVENT', XS.WATCH_EVENT, nulJoin('/x', 't'), 0, XS.ERROR, 'ENOSYS\0'],
      ['a client sending ERROR', XS.ERROR, nulJoin('EINVAL'), 0, XS.ERROR, 'ENOSYS\0'],
      // NUL-less arguments: the answers recorded from xenstored 4.17
      ['READ without NUL (existing node)', XS.READ, b('/local'), 0, XS.ERROR, 'ENOENT\0'],
      ['READ with two strings', XS.READ, nulJoin('/local', 'x'), 0, XS.ERROR, 'ENOENT\0'],
      ['READ empty payload', XS.READ, Buffer.alloc(0), 0, XS.ERROR, 'ENOENT\0'],
      ['DIRECTORY without NUL', XS.DIRECTORY, b('/local'), 0, XS.ERROR, 'ENOENT\0'],
      ['GET_PERMS without NUL', XS.GET_PERMS, b('/local'), 0, XS.ERROR, 'ENOENT\0'],
      ['MKDIR without NUL', XS.MKDIR, b('/nonul'), 0, XS.ERROR, 'ENOMEM\0'],
      ['RM without NUL', XS.RM, b('/nonul'), 0, XS.ERROR, 'ENOMEM\0'],
      ['GET_DOMAIN_PATH without NUL', XS.GET_DOMAIN_PATH, b('0'), 0, XS.ERROR, 'EINVAL\0'],
      ['WATCH token without NUL', XS.WATCH, b('/local\0tok'), 0, XS.ERROR, 'EINVAL\0'],
      ['SET_PERMS last perm without NUL', XS.SET_PERMS, b('/local\0n0'), 0, XS.ERROR, 'EINVAL\0'],
      ['TRANSACTION_START with an empty payload', XS.TRANSACTION_START, Buffer.alloc(0), 0, XS.TRANSACTION_START, '$TX'],
      ['READ empty path', XS.READ, nulJoin(''), 0, XS.ERROR, 'EINVAL\0'],
      ['READ bad chars', XS.READ, nulJoin('/a b'), 0, XS.ERROR, 'EINVAL\0'],
      ['READ binary path', XS.READ, Buffer.from([0x2f, 0xff, 0xfe, 0]), 0, XS.ERROR, 'EINVAL\0'],
      ['READ in unknown transaction', XS.READ, nulJoin('/local'), 4242, XS.ERROR, 'ENOENT\0'],
      ['READ of a directory', XS.READ, nulJoin('/local'), 0, XS.READ, ''],
      ['WRITE without NUL', XS.WRITE, b('/x'), 0, XS.ERROR, 'EINVAL\0'],
      ['WRITE to @special', XS.WRITE, nulJoin('@x', 'v'), 0, XS.ERROR, 'EINVAL\0'],
      ['RM /', XS.RM, nulJoin('/'), 0, XS.ERROR, 'EINVAL\0'],
      ['WATCH with one string', XS.WATCH, nulJoin('/x'), 0, XS.ERROR, 'EINVAL\0'],
      ['UNWATCH of nothing', XS.UNWATCH, nulJoin('/x', 'tok'), 0, XS.ERROR, 'ENOENT\0'],
      ['WATCH', XS.WATCH, nulJoin('/w', 'tok'), 0, XS.WATCH, 'OK\0'],
      ['the same WATCH again', XS.WATCH, nulJoin('/w', 'tok'), 0, XS.ERROR, 'EEXIST\0'],
      ['UNWATCH', XS.UNWATCH, nulJoin('/w', 'tok'), 0, XS.UNWATCH, 'OK\0'],
      ['SET_PERMS bad perm', XS.SET_PERMS, nulJoin('/local', 'x5'), 0, XS.ERROR, 'EINVAL\0'],
      ['SET_PERMS domid out of range', XS.SET_PERMS, nulJoin('/local', 'r99999'), 0, XS.ERROR, 'EINVAL\0'],
      ['SET_PERMS no perms', XS.SET_PERMS, nulJoin('/local'), 0, XS.ERROR, 'EINVAL\0'],
      ['GET_PERMS of @introduceDomain', XS.GET_PERMS, nulJoin('@introduceDomain'), 0, XS.ERROR, 'EINVAL\0'],
      ['GET_PERMS of @releaseDomain', XS.GET_PERMS, nulJoin('@releaseDomain'), 0, XS.ERROR, 'EINVAL\0'],
      ['SET_PERMS of @releaseDomain', XS.SET_PERMS, nulJoin('@releaseDomain', 'n0'), 0, XS.SET_PERMS, 'OK\0'],
      ['DIRECTORY_PART offset past the end', XS.DIRECTORY_PART, nulJoin('/', '9999'), 0, XS.ERROR, 'EINVAL\0'],
      ['DIRECTORY_PART one arg', XS.DIRECTORY_PART, nulJoin('/'), 0, XS.ERROR, 'EINVAL\0'],
      ['TRANSACTION_END not T/F', XS.TRANSACTION_END, nulJoin('X'), 0, XS.ERROR, 'EINVAL\0'],
      ['TRANSACTION_END without transaction', XS.TRANSACTION_END, nulJoin('T'), 0, XS.ERROR, 'ENOENT\0'],
      ['TRANSACTION_END unknown transaction', XS.TRANSACTION_END, nulJoin('T'), 777, XS.ERROR, 'ENOENT\0'],
      ['GET_DOMAIN_PATH', XS.GET_DOMAIN_PATH, nulJoin('12'), 0, XS.GET_DOMAIN_PATH, '/local/domain/12\0'],
      ['IS_DOMAIN_INTRODUCED dom0', XS.IS_DOMAIN_INTRODUCED, nulJoin('0'), 0, XS.IS_DOMAIN_INTRODUCED, 'T\0'],
      ['IS_DOMAIN_INTRODUCED unknown', XS.IS_DOMAIN_INTRODUCED, nulJoin('555'), 0, XS.IS_DOMAIN_INTRODUCED, 'F\0'],
      ['RELEASE unknown domain', XS.RELEASE, nulJoin('555'), 0, XS.ERROR, 'ENOENT\0'],
      ['RESET_WATCHES', XS.RESET_WATCHES, nulJoin(''), 0, XS.RESET_WATCHES, 'OK\0'],
    ];
    let id = 1;
    for (const [what, type, payload, tx, wantType, want] of table) {
      const rep = await r.call(type, payload, id++, tx);
      assert.equal(rep.type, wantType, `${what}: reply type`);
      if (want === '$TX') assert.match(rep.text, /^\d+\0$/, `${what}: payload`);
      else assert.equal(rep.text, want, `${what}: payload`);
    }
    assert.equal(r.closed, false, 'still connected after all of them');
  } finally {
    r.close();
  }
});

test('an oversized frame drops that connection only; the others go on', async () => {
  const bad = await Raw.open(E.sim.socketPath);
  const good = await Raw.open(E.sim.socketPath);
  try {
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(XS.READ, 0);
    hdr.writeUInt32LE(1, 4);
    hdr.writeUInt32LE(4097, 12);
    bad.send(hdr);
    assert.ok(await bad.until(() => bad.closed), 'dropped');
    const rep = await good.call(XS.READ, nulJoin('/local/domain/0/name'), 9);
    assert.deepEqual(rep, { type: XS.READ, text: 'Domain-0' });
  } finally {
    bad.close();
    good.close();
  }
});

test('frames split byte by byte and many frames in one write are both handled, replies in order', async () => {
  const r = await Raw.open(E.sim.socketPath);
  try {
    const f = encodeFrame(XS.READ, 77, 0, nulJoin('/local/domain/0/domid'));
    for (const byte of f) {
      r.send(Buffer.from([byte]));
      await new Promise((res) => setImmediate(res));
    }
    assert.deepEqual(await r.call(XS.READ, nulJoin('/local/domain/0/name'), 78), { type: XS.READ, text: 'Domain-0' });
    assert.ok(await r.until(() => r.frames.length === 1));
    assert.equal(r.frames[0]!.reqId, 77);
    r.frames.length = 0;
    const many = Buffer.concat(Array.from({ length: 200 }, (_, i) => encodeFrame(XS.GET_DOMAIN_PATH, 1000 + i, 0, nulJoin(String(i)))));
    r.send(many);
    assert.ok(await r.until(() => r.frames.length === 200));
    assert.deepEqual(r.frames.map((x) => x.reqId), Array.from({ length: 200 }, (_, i) => 1000 + i), 'in order');
    assert.equal(r.frames[150]!.payload.toString(), '/local/domain/150\0');
  } finally {
    r.close();
  }
});

test('random garbage from many connections: every request answered well-formed, the simulator stays up', async () => {
  let seed = Number(process.env.XVBD_FUZZ_SEED ?? Date.now() % 1e9);
  const first = seed;
  const rnd = () => {
    // xorshift32
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const conns = await Promise.all(Array.from({ length: 8 }, () => Raw.open(E.sim.socketPath)));
  const sent = new Map<Raw, Map<number, number>>();
  try {
    for (let i = 0; i < 2000; i++) {
      const r = conns[Math.floor(rnd() * conns.length)]!;
      const type = Math.floor(rnd() * 26);
      const len = rnd() < 0.1 ? Math.floor(rnd() * 16) : Math.floor(rnd() * 4096);
      const payload = Buffer.alloc(len);
      for (let j = 0; j < len; j++) payload[j] = Math.floor(rnd() * 256);
      if (rnd() < 0.3 && len > 0) payload[len - 1] = 0;
      const tx = rnd() < 0.2 ? Math.floor(rnd() * 4) : 0;
      let m = sent.get(r);
      if (!m) sent.set(r, (m = new Map()));
      m.set(i + 1, type);
      r.send(encodeFrame(type, i + 1, tx, payload));
    }
    for (const [r, m] of sent) {
      assert.ok(await r.until(() => r.frames.filter((f) => f.type !== XS.WATCH_EVENT).length >= m.size, 5000), `replies missing (seed ${first})`);
      for (const f of r.frames) {
        if (f.type === XS.WATCH_EVENT) continue;
        const want = m.get(f.reqId);
        assert.notEqual(want, undefined, `reply to an unknown req_id ${f.reqId} (seed ${first})`);
        assert.ok(f.type === XS.ERROR || f.type === want, `reply type ${f.type} to ${want} (seed ${first})`);
        if (f.type === XS.ERROR) assert.match(f.payload.toString(), /^E[A-Z0-9]+\0$/, `error payload (seed ${first})`);
      }
    }
  } finally {
    for (const r of conns) r.close();
  }
  const c = await connect({ path: E.sim.socketPath });
  assert.equal(await c.read('/local/domain/0/name'), 'Domain-0', `alive (seed ${first})`);
  await c.close();
});
