// Running simulated guests (autoConnect) and the blkback cases the Xen suite recorded with a
// real blkfront: frontend written before its backend, multi-queue rings, the "dev" node wedge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { connect } from '../../src/xenstore/client.js';
import type { XsClient, XsTransaction } from '../../src/xenstore/api.js';
import { startSimulator, type Simulator } from '../../src/sim/index.js';
import { makeLoop, waitFor } from './helpers.js';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const be = (d: number, n: number) => `/local/domain/0/backend/vbd/${d}/${n}`;
const fe = (d: number, n: number) => `/local/domain/${d}/device/vbd/${n}`;

async function withSim(
  opts: { autoConnect?: boolean; requireDevNode?: boolean },
  fn: (sim: Simulator, c: XsClient, dir: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-guest-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), domains: [{ name: 'g', domid: 4 }], ...opts });
  const c = await connect({ path: sim.socketPath });
  try {
    await fn(sim, c, dir);
  } finally {
    await c.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function frontendDir(t: XsClient | XsTransaction, d: number, n: number, withBackend = true): Promise<void> {
  await t.mkdir(fe(d, n));
  await t.setPerms(fe(d, n), [{ domid: d, perm: 'n' }, { domid: 0, perm: 'r' }]);
  await t.write(`${fe(d, n)}/state`, '1');
  if (withBackend) {
    await t.write(`${fe(d, n)}/backend`, be(d, n));
    await t.write(`${fe(d, n)}/backend-id`, '0');
  }
}

async function backendDir(t: XsClient | XsTransaction, d: number, n: number, extra: Record<string, string> = {}): Promise<void> {
  await t.mkdir(be(d, n));
  await t.setPerms(be(d, n), [{ domid: 0, perm: 'n' }, { domid: d, perm: 'r' }]);
  const nodes = { frontend: fe(d, n), 'frontend-id': String(d), online: '1', state: '1', mode: 'w', type: 'phy', ...extra };
  for (const [k, v] of Object.entries(nodes)) await t.write(`${be(d, n)}/${k}`, v);
}

test('a running guest probes a frontend written before its backend: recorded error, frontend 5, backend 5 once written', async () => {
  await withSim({ autoConnect: true }, async (sim, c) => {
    // the frontend's state first, its backend nodes only later (not one transaction)
    await frontendDir(c, 4, 51808, false);
    await sim.settle();
    assert.equal(await c.read(`/local/domain/4/error/device/vbd/51808/error`), '2 reading other end details from device/vbd/51808');
    assert.equal(await c.read(`${fe(4, 51808)}/state`), '5');
    await c.write(`${fe(4, 51808)}/backend`, be(4, 51808));
    await c.write(`${fe(4, 51808)}/backend-id`, '0');
    await backendDir(c, 4, 51808);
    await sim.settle();
    assert.equal(await c.read(`${be(4, 51808)}/state`), '5', 'blkback probes and follows the closing frontend');
    // backend-id/backend present (one transaction) but no backend dir yet
    await c.transaction((tx) => frontendDir(tx, 4, 51824));
    await sim.settle();
    assert.equal(await c.read(`/local/domain/4/error/device/vbd/51824/error`), '2 unable to read other end from device/vbd/51824.  missing or inaccessible.');
  });
});

test('a running guest connects a vbd written in one transaction (as libxl does) by itself', async () => {
  await withSim({ autoConnect: true }, async (sim, c, dir) => {
    const loop = makeLoop(dir, 'g1');
    try {
      await c.transaction(async (tx) => {
        await frontendDir(tx, 4, 51712);
        await backendDir(tx, 4, 51712, { dev: 'xvda', 'physical-device': loop.mm });
      });
      await sim.settle();
      assert.equal(await c.read(`${be(4, 51712)}/state`), '4');
      assert.equal(await c.read(`${fe(4, 51712)}/state`), '4');
      assert.equal(await c.read(`/local/domain/4/error/device/vbd/51712/error`), undefined);
      // the order a 1-vcpu Linux domU's blkfront left its nodes in (recorded)
      assert.deepEqual(await c.directory(fe(4, 51712)), ['state', 'backend', 'backend-id', 'protocol', 'ring-ref', 'event-channel', 'feature-persistent']);
    } finally {
      await c.rm(be(4, 51712));
      await sim.settle();
      loop.free();
    }
  });
});

test('multi-queue frontend: queue-N/ring-ref and event-channel; a queue without event-channel is the recorded error', async () => {
  await withSim({}, async (sim, c, dir) => {
    const loop = makeLoop(dir, 'mq');
    try {
      await c.transaction(async (tx) => {
        await frontendDir(tx, 4, 51712);
        await backendDir(tx, 4, 51712, { dev: 'xvda', 'physical-device': loop.mm });
      });
      await sim.settle();
      assert.equal(await sim.frontend(4, 51712).connect({ queues: 2 }), 4);
      assert.equal(await c.read(`${fe(4, 51712)}/multi-queue-num-queues`), '2');
      assert.deepEqual(await c.directory(`${fe(4, 51712)}/queue-1`), ['ring-ref', 'event-channel']);
      assert.equal(await c.read(`${be(4, 51712)}/state`), '4');
      // a second vbd whose queue-1 lacks its event channel
      await c.transaction(async (tx) => {
        await frontendDir(tx, 4, 51728);
        await backendDir(tx, 4, 51728, { dev: 'xvdb', 'physical-device': loop.mm });
      });
      await sim.settle();
      const f = sim.frontend(4, 51728);
      f.writeNode('multi-queue-num-queues', '2');
      f.writeNode('queue-0/ring-ref', '1');
      f.writeNode('queue-0/event-channel', '2');
      f.writeNode('queue-1/ring-ref', '3');
      f.writeNode('state', '3');
      await sim.settle();
      assert.equal(await c.read(`${be(4, 51728)}/state`), '5');
      assert.equal(await c.read('/local/domain/0/error/backend/vbd/4/51728/error'), `22 reading ${fe(4, 51728)}/queue-1/event-channel`);
    } finally {
      await c.rm('/local/domain/0/backend/vbd/4');
      await sim.settle();
      loop.free();
    }
  });
});

test('requireDevNode: connecting without "dev" gives "2 get blkback dev name"; the device and its sysfs entry are never let go (until close)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-wedge-'));
  const loop = makeLoop(dir, 'wedge');
  let sysDir = '';
  try {
    await withSim({ requireDevNode: true }, async (sim, c) => {
      await c.transaction(async (tx) => {
        await frontendDir(tx, 4, 51712);
        await backendDir(tx, 4, 51712, { 'physical-device': loop.mm });
        await frontendDir(tx, 4, 51728);
        await backendDir(tx, 4, 51728, { dev: 'xvdb', 'physical-device': loop.mm });
      });
      await sim.settle();
      assert.equal(await sim.frontend(4, 51712).connect(), 4, 'it still connects');
      assert.equal(await c.read('/local/domain/0/error/backend/vbd/4/51712/error'), '2 get blkback dev name');
      assert.equal(await sim.frontend(4, 51728).connect(), 4);
      assert.equal(await c.read('/local/domain/0/error/backend/vbd/4/51728/error'), undefined, 'with "dev": no error');
      spawnSync('losetup', ['-d', loop.dev]);
      await c.rm(be(4, 51728));
      await c.rm(be(4, 51712));
      await c.rm(fe(4, 51712));
      await c.rm(fe(4, 51728));
      await sim.settle();
      assert.deepEqual(sim.backends().map((b) => [b.devid, b.status, b.held]), [[51712, 'wedged', loop.mm]]);
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(loop.bound(), 'still held after both dirs are gone');
      // as recorded on 4.17: the wedged vbd's sysfs entry stays with physical_device and mode; the
      // unwedged one is gone
      sysDir = join(sim.sysfsDir, 'vbd-4-51712');
      assert.equal(readFileSync(join(sysDir, 'physical_device'), 'utf8'), `${loop.mm}\n`);
      assert.equal(readFileSync(join(sysDir, 'mode'), 'utf8'), 'w\n');
      assert.equal(existsSync(join(sim.sysfsDir, 'vbd-4-51728')), false);
      // a new backend of the same name is not registered (its sysfs name is taken): state stays 1
      await c.transaction(async (tx) => {
        await frontendDir(tx, 4, 51712);
        await backendDir(tx, 4, 51712, { dev: 'xvda' });
      });
      await sim.settle();
      assert.equal(await c.read(`${be(4, 51712)}/state`), '1');
      assert.deepEqual(sim.backends().map((b) => [b.devid, b.status, b.held]), [[51712, 'wedged', loop.mm]]);
      assert.equal(readFileSync(join(sysDir, 'physical_device'), 'utf8'), `${loop.mm}\n`);
      await c.rm(be(4, 51712));
      await c.rm(fe(4, 51712));
      await sim.settle();
      assert.ok(existsSync(join(sysDir, 'physical_device')), 'removing that backend again leaves the wedged entry');
    });
    assert.ok(await waitFor(() => !loop.bound()), 'close() lets go');
    assert.equal(existsSync(sysDir), false, 'close() removes the wedged sysfs entry');
  } finally {
    loop.free();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dom0 runs a blkfront too: its frontend written before the backend fails the same way', async () => {
  await withSim({ autoConnect: true }, async (sim, c) => {
    await frontendDir(c, 0, 51808, false);
    await sim.settle();
    assert.equal(await c.read('/local/domain/0/error/device/vbd/51808/error'), '2 reading other end details from device/vbd/51808');
    assert.equal(await c.read(`${fe(0, 51808)}/state`), '5');
  });
});
