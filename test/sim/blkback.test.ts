// The simulated blkback against real loop devices, checked against what real blkback did in
// the xenlab (Xen 4.17, Linux 6.1 dom0; /work/shared/xenlab/README.md and recorded runs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { connect } from '../../src/xenstore/client.js';
import type { XsClient } from '../../src/xenstore/api.js';
import { XsError } from '../../src/xenstore/errors.js';
import { startSimulator } from '../../src/sim/index.js';
import { simEnv, makeLoop, waitFor, type SimEnv, type TestLoop } from './helpers.js';

let E: SimEnv;
let c: XsClient;
before(async () => {
  E = await simEnv();
  c = await connect({ path: E.sim.socketPath });
});
after(async () => {
  await c?.close();
  await E?.close();
});

const be = (d: number, n: number) => `/local/domain/0/backend/vbd/${d}/${n}`;
const fe = (d: number, n: number) => `/local/domain/${d}/device/vbd/${n}`;

/** Writes a vbd as libxl does (frontend + backend, one transaction, libxl's permissions). */
async function writeVbd(
  d: number,
  n: number,
  o: { frontend?: boolean; mode?: string; pd?: string; online?: string; state?: string } = {},
): Promise<void> {
  await c.transaction(async (tx) => {
    // as libxl__device_generic_add: mknod the dirs with their perms, then the nodes inherit them
    if (o.frontend !== false) {
      await tx.mkdir(fe(d, n));
      await tx.setPerms(fe(d, n), [{ domid: d, perm: 'n' }, { domid: 0, perm: 'r' }]);
      await tx.write(`${fe(d, n)}/backend`, be(d, n));
      await tx.write(`${fe(d, n)}/backend-id`, '0');
      await tx.write(`${fe(d, n)}/state`, '1');
      await tx.write(`${fe(d, n)}/virtual-device`, String(n));
      await tx.write(`${fe(d, n)}/device-type`, 'disk');
    }
    await tx.mkdir(be(d, n));
    await tx.setPerms(be(d, n), [{ domid: 0, perm: 'n' }, { domid: d, perm: 'r' }]);
    await tx.write(`${be(d, n)}/frontend`, fe(d, n));
    await tx.write(`${be(d, n)}/frontend-id`, String(d));
    await tx.write(`${be(d, n)}/online`, o.online ?? '1');
    await tx.write(`${be(d, n)}/state`, o.state ?? '1');
    if (o.mode !== '') await tx.write(`${be(d, n)}/mode`, o.mode ?? 'w');
    await tx.write(`${be(d, n)}/type`, 'phy');
    await tx.write(`${be(d, n)}/device-type`, 'disk');
    if (o.pd !== undefined) await tx.write(`${be(d, n)}/physical-device`, o.pd);
  });
  await E.sim.settle();
}

const st = async (p: string) => c.read(`${p}/state`);
const errNode = (d: number, n: number) => c.read(`/local/domain/0/error/backend/vbd/${d}/${n}/error`);
const sysfs = (d: number, n: number, f = '') => join(E.sim.sysfsDir, `vbd-${d}-${n}`, f);

async function cleanup(d: number, loops: TestLoop[]): Promise<void> {
  await c.rm(`/local/domain/0/backend/vbd/${d}`);
  await c.rm(`/local/domain/${d}/device/vbd`);
  await c.rm('/local/domain/0/error');
  await E.sim.settle();
  for (const l of loops) l.free();
}

test('a backend whose frontend dir does not exist is left alone; probed once it exists and the backend changes', async () => {
  const d = E.sim.addDomain('bb-a');
  try {
    await writeVbd(d, 51712, { frontend: false });
    assert.equal(await st(be(d, 51712)), '1', 'state stays 1');
    assert.equal(existsSync(sysfs(d, 51712)), false, 'no sysfs entry');
    assert.equal(await c.read(`${be(d, 51712)}/feature-max-indirect-segments`), undefined);
    assert.equal(await errNode(d, 51712), undefined, 'no error');
    await c.write(`${fe(d, 51712)}/state`, '1');
    await E.sim.settle();
    assert.equal(await st(be(d, 51712)), '1', 'a frontend write alone does not wake the backend');
    await c.write(`${be(d, 51712)}/params`, 'x');
    await E.sim.settle();
    assert.equal(await st(be(d, 51712)), '2', 'probed on the next backend change');
    assert.equal(await c.read(`${be(d, 51712)}/feature-max-indirect-segments`), '256');
    assert.equal(await c.read(`${be(d, 51712)}/multi-queue-max-queues`), '2');
    assert.equal(await c.read(`${be(d, 51712)}/max-ring-page-order`), '4');
    assert.ok(existsSync(sysfs(d, 51712)), 'sysfs entry once probed');
    assert.equal(existsSync(sysfs(d, 51712, 'physical_device')), false, 'no physical_device before physical-device');
  } finally {
    await cleanup(d, []);
    E.sim.removeDomain(d);
  }
});

test('a backend written node by node is probed once its own state is 1', async () => {
  const d = E.sim.addDomain('bb-b');
  try {
    await c.write(`${fe(d, 51712)}/state`, '1');
    await c.write(`${be(d, 51712)}/frontend`, fe(d, 51712));
    await c.write(`${be(d, 51712)}/frontend-id`, String(d));
    await c.write(`${be(d, 51712)}/mode`, 'w');
    await E.sim.settle();
    assert.equal(await st(be(d, 51712)), undefined);
    await c.write(`${be(d, 51712)}/state`, '1');
    await E.sim.settle();
    assert.equal(await st(be(d, 51712)), '2');
  } finally {
    await cleanup(d, []);
    E.sim.removeDomain(d);
  }
});

test('physical-device: the device is opened for real; losetup -d only sets autoclear; removing the backend frees it', async () => {
  const d = E.sim.addDomain('bb-c');
  const loop = makeLoop(E.dir, 'c');
  try {
    await writeVbd(d, 51712);
    assert.equal(await st(be(d, 51712)), '2');
    await c.write(`${be(d, 51712)}/physical-device`, loop.mm);
    await E.sim.settle();
    assert.equal(readFileSync(sysfs(d, 51712, 'physical_device'), 'utf8').trim(), loop.mm);
    assert.equal(readFileSync(sysfs(d, 51712, 'mode'), 'utf8').trim(), 'w');
    assert.equal(await st(be(d, 51712)), '2', 'state stays 2 until the frontend connects');
    assert.deepEqual(
      E.sim.backends().find((b) => b.domid === d),
      { domid: d, devid: 51712, status: 'probed', held: loop.mm, mode: 'w', connected: false },
    );
    const r = spawnSync('losetup', ['-d', loop.dev]);
    assert.equal(r.status, 0, 'losetup -d returns 0');
    assert.ok(loop.bound(), 'still bound: blkback holds it');
    assert.ok(loop.autoclear(), 'autoclear set');
    await c.rm(be(d, 51712));
    await E.sim.settle();
    assert.ok(await waitFor(() => !loop.bound()), 'freed once blkback let go');
    assert.equal(existsSync(sysfs(d, 51712)), false, 'sysfs entry gone');
    assert.equal(E.sim.backends().length, 0);
  } finally {
    await cleanup(d, [loop]);
    E.sim.removeDomain(d);
  }
});

test('frontend connects -> 4; frontend closes with online=1 -> 6, device still held; reconnect -> 2 -> 4; online=0 -> released', async () => {
  const d = E.sim.addDomain('bb-d');
  const loop = makeLoop(E.dir, 'd', 8);
  try {
    await writeVbd(d, 51712, { pd: loop.mm });
    const f = E.sim.frontend(d, 51712);
    assert.equal(await f.connect(), 4, 'frontend Connected');
    assert.equal(await st(be(d, 51712)), '4', 'backend Connected');
    assert.equal(await c.read(`${be(d, 51712)}/sectors`), String(8 * 2048));
    assert.equal(await c.read(`${be(d, 51712)}/info`), '0');
    assert.equal(await c.read(`${be(d, 51712)}/sector-size`), '512');
    assert.equal(await c.read(`${be(d, 51712)}/feature-flush-cache`), '1');
    assert.equal(await c.read(`${fe(d, 51712)}/ring-ref`) !== undefined, true);
    assert.deepEqual(await c.getPerms(`${fe(d, 51712)}/ring-ref`), [{ domid: d, perm: 'n' }, { domid: 0, perm: 'r' }], 'guest-created node: inherited perms, guest owner');
    await f.close();
    assert.equal(await st(be(d, 51712)), '6');
    assert.ok(existsSync(sysfs(d, 51712, 'physical_device')), 'physical_device still there (recorded)');
    spawnSync('losetup', ['-d', loop.dev]);
    assert.ok(loop.bound() && loop.autoclear(), 'held across the frontend close (online=1)');
    assert.equal(await f.reconnect(), 4, 'reconnected');
    assert.equal(await st(be(d, 51712)), '4');
    assert.ok(loop.bound(), 'still held');
    await c.write(`${be(d, 51712)}/online`, '0');
    await f.close();
    assert.equal(await st(be(d, 51712)), '6');
    assert.ok(await waitFor(() => !loop.bound()), 'released (autoclear) after close with online=0');
    assert.equal(existsSync(sysfs(d, 51712)), false, 'unregistered');
    await c.write(`${be(d, 51712)}/foo`, '1');
    await E.sim.settle();
    assert.equal(await st(be(d, 51712)), '6', 'not probed again (its state is not 1)');
  } finally {
    await cleanup(d, [loop]);
    E.sim.removeDomain(d);
  }
});

test('libxl-style removal: toolstack writes online=0 + state=5, the connected guest closes, the device is released', async () => {
  const d = E.sim.addDomain('bb-e');
  const loop = makeLoop(E.dir, 'e');
  try {
    await writeVbd(d, 51728, { pd: loop.mm });
    assert.equal(await E.sim.frontend(d, 51728).connect(), 4);
    spawnSync('losetup', ['-d', loop.dev]); // autoclear: freed as soon as blkback lets go
    await c.transaction(async (tx) => {
      await tx.write(`${be(d, 51728)}/online`, '0');
      await tx.write(`${be(d, 51728)}/state`, '5');
    });
    await E.sim.frontend(d, 51728).settle();
    assert.equal(await st(fe(d, 51728)), '6', 'frontend followed to Closed');
    assert.equal(await st(be(d, 51728)), '6', 'backend Closed');
    assert.ok(await waitFor(() => !loop.bound()), 'released');
  } finally {
    await cleanup(d, [loop]);
    E.sim.removeDomain(d);
  }
});

test('frontend at 3 without ring-ref/event-channel: backend 5 and the recorded error node', async () => {
  const d = E.sim.addDomain('bb-f');
  const loop = makeLoop(E.dir, 'f');
  try {
    await writeVbd(d, 51712, { pd: loop.mm });
    await E.sim.frontend(d, 51712).connectWithoutRing();
    assert.equal(await st(be(d, 51712)), '5');
    assert.equal(await errNode(d, 51712), `22 reading ${fe(d, 51712)}/event-channel`);
    await E.sim.frontend(d, 51712).close();
    assert.equal(await st(be(d, 51712)), '6', 'frontend 6 -> backend 6');
  } finally {
    await cleanup(d, [loop]);
    E.sim.removeDomain(d);
  }
});

test('failures give the recorded error nodes (table)', async () => {
  const d = E.sim.addDomain('bb-g');
  const loop = makeLoop(E.dir, 'g');
  const ro = makeLoop(E.dir, 'g-ro', 4, true);
  // [what, vbd options, then, expected backend state, expected error node]
  const cases: [string, Parameters<typeof writeVbd>[2], (() => Promise<void>) | undefined, string, string | undefined][] = [
    ['device that cannot be opened', { pd: 'fd:fff0' }, undefined, '5', '2 creating vbd structure'],
    ['mode missing', { pd: loop.mm, mode: '' }, undefined, '5', '2 reading mode'],
    ['physical-device not hex (ignored, like -ERANGE)', { pd: 'zz' }, undefined, '2', undefined],
    ['physical-device with one number', { pd: '7' }, undefined, '5', '-1 reading physical-device'],
    ['frontend in state 2', { pd: loop.mm }, async () => E.sim.write(`${fe(d, 51712)}/state`, '2', d), '5', '22 saw state 2 at frontend'],
    ['unknown protocol', { pd: loop.mm }, async () => {
      E.sim.frontend(d, 51712).writeNode('protocol', 'pdp11');
      await E.sim.frontend(d, 51712).connect().catch(() => undefined);
    }, '5', '38 unknown fe protocol x86_64-abi'],
  ];
  try {
    for (const [what, o, then, state, error] of cases) {
      await writeVbd(d, 51712, o);
      if (then) await then();
      await E.sim.settle();
      if (what === 'unknown protocol') {
        // connect() rewrote protocol to x86_64-abi before state 3: it must connect fine
        assert.equal(await st(be(d, 51712)), '4', what);
      } else {
        assert.equal(await st(be(d, 51712)), state, what);
        assert.equal(await errNode(d, 51712), error, what);
      }
      await cleanup(d, []);
    }
    // a genuinely unknown protocol (a frontend without a driver following the backend)
    await writeVbd(d, 51760, { pd: loop.mm });
    const f = E.sim.frontend(d, 51760);
    for (const [k, v] of [['ring-ref', '8'], ['event-channel', '9'], ['protocol', 'pdp11-abi']]) f.writeNode(k!, v!);
    f.writeNode('state', '3');
    await E.sim.settle();
    assert.equal(await st(be(d, 51760)), '5');
    assert.equal(await errNode(d, 51760), '38 unknown fe protocol pdp11-abi');
  } finally {
    await cleanup(d, [loop, ro]);
    E.sim.removeDomain(d);
  }
});

test('read-only: mode r opens O_RDONLY (a read-only loop device works) and info says read-only', async () => {
  const d = E.sim.addDomain('bb-h');
  const ro = makeLoop(E.dir, 'h', 4, true);
  try {
    await writeVbd(d, 51712, { pd: ro.mm, mode: 'r' });
    assert.equal(E.sim.backends()[0]?.mode, 'r');
    assert.equal(await E.sim.frontend(d, 51712).connect(), 4);
    assert.equal(await c.read(`${be(d, 51712)}/info`), '4');
  } finally {
    await cleanup(d, [ro]);
    E.sim.removeDomain(d);
  }
});

test('the guest writes as itself: a frontend dir it does not own is EACCES', async () => {
  const d = E.sim.addDomain('bb-i');
  try {
    await c.write(`${fe(d, 51712)}/state`, '1'); // dom0-owned (inherits n0,r<d> from device/)
    assert.throws(() => E.sim.frontend(d, 51712).writeNode('state', '3'), (e: unknown) => (e as { errno?: string }).errno === 'EACCES');
    assert.throws(() => E.sim.write('/local/domain/0/name', 'x', d), (e: unknown) => (e as { errno?: string }).errno === 'EACCES');
    assert.equal(E.sim.read(`/local/domain/${d}/name`), 'bb-i');
  } finally {
    await cleanup(d, []);
    E.sim.removeDomain(d);
  }
});

test('autoConnect: simulated guests connect by themselves once the backend is ready', async () => {
  const sock = join(E.dir, 'auto.sock');
  const sim = await startSimulator({ socketPath: sock, sysfsDir: join(E.dir, 'auto.sysfs'), autoConnect: true, domains: [{ name: 'g', domid: 3 }] });
  const cl = await connect({ path: sock });
  const loop = makeLoop(E.dir, 'auto');
  try {
    await cl.transaction(async (tx) => {
      await tx.mkdir(fe(3, 51712));
      await tx.setPerms(fe(3, 51712), [{ domid: 3, perm: 'n' }, { domid: 0, perm: 'r' }]);
      await tx.write(`${fe(3, 51712)}/state`, '1');
      await tx.write(`${fe(3, 51712)}/backend`, be(3, 51712));
      await tx.write(`${fe(3, 51712)}/backend-id`, '0');
      await tx.mkdir(be(3, 51712));
      await tx.setPerms(be(3, 51712), [{ domid: 0, perm: 'n' }, { domid: 3, perm: 'r' }]);
      await tx.write(`${be(3, 51712)}/frontend`, fe(3, 51712));
      await tx.write(`${be(3, 51712)}/frontend-id`, '3');
      await tx.write(`${be(3, 51712)}/online`, '1');
      await tx.write(`${be(3, 51712)}/state`, '1');
      await tx.write(`${be(3, 51712)}/mode`, 'w');
      await tx.write(`${be(3, 51712)}/physical-device`, loop.mm);
    });
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      await sim.settle();
      ok = (await cl.read(`${be(3, 51712)}/state`)) === '4' && (await cl.read(`${fe(3, 51712)}/state`)) === '4';
      if (!ok) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(ok, 'both ends Connected');
  } finally {
    await cl.close();
    await sim.close();
    loop.free();
  }
  assert.ok(await waitFor(() => !loop.bound()));
});

test('closing the simulator releases every device it holds', async () => {
  const sock = join(E.dir, 'close.sock');
  const sim = await startSimulator({ socketPath: sock, sysfsDir: join(E.dir, 'close.sysfs'), domains: [{ name: 'g' }] });
  const cl = await connect({ path: sock });
  const loop = makeLoop(E.dir, 'close');
  try {
    await cl.write(`${fe(1, 51712)}/state`, '1');
    await cl.transaction(async (tx) => {
      for (const [k, v] of [['frontend', fe(1, 51712)], ['frontend-id', '1'], ['online', '1'], ['state', '1'], ['mode', 'w'], ['physical-device', loop.mm]])
        await tx.write(`${be(1, 51712)}/${k}`, v!);
    });
    await sim.settle();
    assert.equal(sim.backends()[0]?.held, loop.mm);
    spawnSync('losetup', ['-d', loop.dev]);
    assert.ok(loop.bound());
  } finally {
    await cl.close().catch(() => undefined);
    await sim.close();
    loop.free();
  }
  assert.ok(await waitFor(() => !loop.bound()), 'freed by close()');
  void XsError;
});

test('destroying the guest (its frontend state node goes: Unknown) makes blkback let go although the backend dir stays', async () => {
  const d = E.sim.addDomain('bb-j');
  const loop = makeLoop(E.dir, 'j');
  try {
    await writeVbd(d, 51712, { pd: loop.mm });
    assert.equal(await E.sim.frontend(d, 51712).connect(), 4);
    spawnSync('losetup', ['-d', loop.dev]);
    assert.ok(loop.bound(), 'held');
    E.sim.removeDomain(d); // this backend is not listed under /libxl/<domid>: it stays
    await E.sim.settle();
    assert.equal(await st(be(d, 51712)), '4', 'backend dir untouched (recorded: state left as it was)');
    assert.ok(await waitFor(() => !loop.bound()), 'released');
    assert.equal(existsSync(sysfs(d, 51712)), false);
  } finally {
    await cleanup(d, [loop]);
  }
});
