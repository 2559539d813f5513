// Runs the client conformance suite against the simulator, plus what only a simulator can
// show (connection loss, reconnecting, how the socket is chosen).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../src/xenstore/client.js';
import { defaultPaths } from '../../src/host/env.js';
import { isXsConnectionLost, XsError } from '../../src/xenstore/errors.js';
import { parsePerms, formatPerms, checkPath } from '../../src/xenstore/paths.js';
import { FrameDecoder, XS, encodeFrame, nulJoin, type Frame } from '../../src/xenstore/wire.js';
import type { XsClient } from '../../src/xenstore/api.js';
import { startSimulator, type Simulator } from '../../src/sim/index.js';
import { conformanceCases } from './conformance.js';

let dir: string;
let sim: Simulator;
let c: XsClient;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xvbd-xs-'));
  sim = await startSimulator({ socketPath: join(dir, 'xs.sock') });
  c = await connect({ path: sim.socketPath });
});

after(async () => {
  await c?.close();
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
for (const k of conformanceCases()) {
  test(`conformance: ${k.name}`, async () => {
    const base = `/test/xvbd-conf-${++n}`;
    await k.run(c, { base });
    assert.equal(await c.read(base), undefined, 'the case cleaned up after itself');
  });
}

test('connection loss rejects pending calls and ends events(); connecting again works', async () => {
  const sock = join(dir, 'loss.sock');
  const s2 = await startSimulator({ socketPath: sock, sysfsDir: join(dir, 'loss.sysfs') });
  const cl = await connect({ path: sock });
  await cl.write('/x', '1');
  const it = cl.events()[Symbol.asyncIterator]();
  const ended = it.next();
  const pending = Promise.all(Array.from({ length: 50 }, () => cl.read('/x')));
  await s2.close(); // drops every connection
  await assert.rejects(pending, (e: unknown) => e instanceof XsError && e.errno === 'EIO');
  assert.deepEqual(await ended, { value: undefined, done: true });
  await assert.rejects(cl.read('/x'), (e: unknown) => e instanceof XsError && e.errno === 'EIO' && /closed|lost/.test(e.message));
  // the daemon resets its client on this, by type: a refusal by xenstored is no lost connection
  await assert.rejects(cl.read('/x'), (e: unknown) => isXsConnectionLost(e));
  await assert.rejects(c.setPerms('/xvbd-no-such-node', [{ domid: 0, perm: 'n' }]), (e: unknown) => e instanceof XsError && !isXsConnectionLost(e));
  const s3 = await startSimulator({ socketPath: sock, sysfsDir: join(dir, 'loss.sysfs') });
  try {
    const again = await connect({ path: sock });
    assert.equal(await again.read('/local/domain/0/name'), 'Domain-0');
    await again.close();
  } finally {
    await s3.close();
  }
});

test('over a socket the payload may be exactly 4096 bytes', async () => {
  const path = '/limit/x';
  await c.write(path, 'v'.repeat(4096 - path.length - 1));
  assert.equal((await c.read(path))?.length, 4096 - path.length - 1);
  await assert.rejects(c.write(path, 'v'.repeat(4096 - path.length)), (e: unknown) => e instanceof XsError && e.errno === 'E2BIG' && /4097 > 4096/.test(e.message));
  await c.rm('/limit');
});

test('connect fails clearly when nothing listens', async () => {
  await assert.rejects(connect({ path: join(dir, 'nothing.sock') }), (e: unknown) => e instanceof XsError && /nothing\.sock/.test(e.message));
});

test('socket choice follows libxenstore: XENSTORED_PATH, XENSTORED_RUNDIR, then the xenbus device', () => {
  const table: [NodeJS.ProcessEnv, string[]][] = [
    [{ XENSTORED_PATH: '/tmp/s' }, ['/tmp/s']],
    [{ XENSTORED_RUNDIR: '/r' }, ['/r/socket', '/dev/xen/xenbus', '/proc/xen/xenbus']],
    [{}, ['/run/xenstored/socket', '/var/run/xenstored/socket', '/dev/xen/xenbus', '/proc/xen/xenbus']],
  ];
  for (const [env, want] of table) assert.deepEqual(defaultPaths(env), want, JSON.stringify(env));
});

test('connect() without a path uses XENSTORED_PATH', async () => {
  const old = process.env.XENSTORED_PATH;
  process.env.XENSTORED_PATH = sim.socketPath;
  try {
    const cl = await connect();
    assert.equal(await cl.read('/local/domain/0/domid'), '0');
    await cl.close();
  } finally {
    if (old === undefined) delete process.env.XENSTORED_PATH;
    else process.env.XENSTORED_PATH = old;
  }
});

test('parsePerms / formatPerms', () => {
  const table: [string, string][] = [
    ['n0', 'n0'],
    ['n0,r5', 'n0,r5'],
    ['b3 w4 r0', 'b3,w4,r0'],
  ];
  for (const [input, out] of table) assert.equal(formatPerms(parsePerms(input)), out);
  for (const bad of ['', 'x0', 'n', 'r-1', 'n99999', 'n0,', 'rr1']) {
    if (bad === 'n0,') {
      assert.deepEqual(parsePerms(bad), [{ domid: 0, perm: 'n' }]);
      continue;
    }
    assert.throws(() => parsePerms(bad), (e: unknown) => e instanceof XsError && e.errno === 'EINVAL', bad);
  }
});

test('path rules (table)', () => {
  const good = ['/', '/a', '/local/domain/0/backend/vbd/1/51712', 'relative/x', 'a-b_c@d', `/local/domain/5/${'a'.repeat(2048)}`];
  const bad = ['', '//', '/a/', '/a//b', '/a b', '/ä', '@x', `/${'a'.repeat(2049)}`, `/local/domain/5/${'a'.repeat(2049)}`, 'a'.repeat(2049)];
  for (const p of good) assert.doesNotThrow(() => checkPath(p), p.slice(0, 30));
  for (const p of bad) assert.throws(() => checkPath(p), (e: unknown) => e instanceof XsError && e.errno === 'EINVAL', p.slice(0, 30));
  assert.doesNotThrow(() => checkPath('@introduceDomain', { allowSpecial: true }));
});

/** A fake xenstored whose replies a test scripts: handler(frame, socket). */
async function fakeServer(path: string, handler: (f: Frame, s: Socket) => void): Promise<Server> {
  const srv = createServer((s) => {
    const dec = new FrameDecoder();
    s.on('data', (d: Buffer) => {
      for (const f of dec.push(d)) handler(f, s);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(path, () => r()));
  return srv;
}

test('replies are matched by req_id, not by order (a server answering backwards)', async () => {
  const path = join(dir, 'backwards.sock');
  const held: { f: Frame; s: Socket }[] = [];
  const srv = await fakeServer(path, (f, s) => {
    held.push({ f, s });
    if (held.length === 3) {
      for (const h of held.reverse()) {
        const p = h.f.payload.toString('utf8', 0, h.f.payload.length - 1);
        h.s.write(encodeFrame(XS.READ, h.f.reqId, 0, Buffer.from(`value of ${p}`)));
      }
    }
  });
  const cl = await connect({ path });
  try {
    assert.deepEqual(await Promise.all([cl.read('/a'), cl.read('/b'), cl.read('/c')]), ['value of /a', 'value of /b', 'value of /c']);
  } finally {
    await cl.close();
    srv.close();
  }
});

test('a reply of the wrong type is an EIO error; an oversized frame fails the connection', async () => {
  const path = join(dir, 'liar.sock');
  const srv = await fakeServer(path, (f, s) => {
    const p = f.payload.toString('utf8', 0, f.payload.length - 1);
    if (p === '/wrong') s.write(encodeFrame(XS.WRITE, f.reqId, 0, nulJoin('OK')));
    else if (p === '/error') s.write(encodeFrame(XS.ERROR, f.reqId, 0, nulJoin('EACCES')));
    else {
      const hdr = Buffer.alloc(16);
      hdr.writeUInt32LE(XS.READ, 0);
      hdr.writeUInt32LE(f.reqId, 4);
      hdr.writeUInt32LE(0x7fffffff, 12);
      s.write(hdr);
    }
  });
  const cl = await connect({ path });
  try {
    await assert.rejects(cl.read('/wrong'), (e: unknown) => e instanceof XsError && e.errno === 'EIO' && /WRITE to READ/.test(e.message));
    await assert.rejects(cl.read('/error'), (e: unknown) => e instanceof XsError && e.errno === 'EACCES' && e.path === '/error');
    await assert.rejects(cl.read('/huge'), (e: unknown) => e instanceof XsError && e.errno === 'EIO' && /protocol error/.test(e.message));
    await assert.rejects(cl.read('/after'), (e: unknown) => e instanceof XsError && e.errno === 'EIO');
  } finally {
    await cl.close();
    srv.close();
  }
});

test('events(): every open iterator sees every event; events before the first iterator are kept', async () => {
  const cl = await connect({ path: sim.socketPath });
  try {
    await cl.watch('/ev-test', 'tk');
    await cl.write('/ev-test', '1'); // initial + change arrive before anyone iterates
    const a = cl.events()[Symbol.asyncIterator]();
    assert.equal((await a.next()).value?.path, '/ev-test');
    assert.equal((await a.next()).value?.path, '/ev-test');
    const b = cl.events()[Symbol.asyncIterator]();
    await cl.write('/ev-test/x', '2');
    assert.equal((await a.next()).value?.path, '/ev-test/x');
    assert.equal((await b.next()).value?.path, '/ev-test/x');
    await b.return!();
    await cl.write('/ev-test/y', '3');
    assert.equal((await a.next()).value?.path, '/ev-test/y');
    await cl.rm('/ev-test');
  } finally {
    await cl.close();
  }
});

test('DIRECTORY_PART: E2BIG from DIRECTORY switches to parts; a generation change restarts the listing', async () => {
  const path = join(dir, 'parts.sock');
  const names = (gen: number) => Array.from({ length: 300 }, (_, i) => `g${gen}-child-${String(i).padStart(4, '0')}`);
  let calls = 0;
  let gen = 1;
  const srv = await fakeServer(path, (f, s) => {
    if (f.type === XS.DIRECTORY) {
      s.write(encodeFrame(XS.ERROR, f.reqId, 0, nulJoin('E2BIG')));
      return;
    }
    const [, offStr] = f.payload.toString('utf8').split('\0');
    const off = Number(offStr);
    calls++;
    if (calls === 2) gen = 2; // the directory changes between the first and second part
    const all = Buffer.from(names(gen).map((x) => x + '\0').join(''));
    const head = Buffer.from(`${gen.toString(16)}\0`);
    const room = 4096 - head.length - 1;
    let end = Math.min(all.length, off + room);
    if (end < all.length) end = all.lastIndexOf(0, end - 1) + 1;
    const parts = [head, all.subarray(off, end)];
    if (end === all.length) parts.push(Buffer.from([0]));
    s.write(encodeFrame(XS.DIRECTORY_PART, f.reqId, 0, Buffer.concat(parts)));
  });
  const cl = await connect({ path });
  try {
    assert.deepEqual(await cl.directory('/big'), names(2));
    assert.ok(calls >= 4, `restarted (${calls} DIRECTORY_PART calls)`);
  } finally {
    await cl.close();
    srv.close();
  }
});

test('device transport (as /dev/xen/xenbus): one write per message, replies read back; close() unblocks the reader', async () => {
  // A FIFO opened read-write is a loopback "device": every request comes back as its own reply,
  // which exercises the device path (open, serialized whole-message writes, blocking reads).
  const fifo = join(dir, 'xenbus.fifo');
  execFileSync('mkfifo', [fifo]);
  const cl = await connect({ path: fifo });
  assert.equal(await cl.getDomainPath(5), '5', 'echoed GET_DOMAIN_PATH payload');
  await assert.rejects(cl.write('/x', 'v'.repeat(4080)), (e: unknown) => e instanceof XsError && e.errno === 'E2BIG' && /> 4080/.test(e.message), 'device limit: header + payload in 4096');
  const many = await Promise.all(Array.from({ length: 100 }, (_, i) => cl.readStrict(`/n${i}`)));
  assert.deepEqual(many, Array.from({ length: 100 }, (_, i) => `/n${i}\0`));
  const fdsOpen = () => readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === fifo;
    } catch {
      return false;
    }
  }).length;
  assert.equal(fdsOpen(), 1);
  await cl.close();
  const end = Date.now() + 2000;
  while (fdsOpen() > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.equal(fdsOpen(), 0, 'the device file is closed after close()');
  await assert.rejects(cl.read('/x'), (e: unknown) => e instanceof XsError && e.errno === 'EIO');
});
