// Consecutive attaches share one transaction (execute.ts attachBatch): one commit for the lot, each disk
// still all or nothing, no disk failing another, and a transaction refused as a whole falls back to one
// transaction per disk. Real loop devices, the real keeper, the simulator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BATCH_MAX, execute, type StepEvent } from '../../src/apply/execute.js';
import { KeeperHolder } from '../../src/hold/holder.js';
import { RegistryDevices } from '../../src/apply/linux-devices.js';
import { diskseqOf } from '../../src/demo/example-host.js';
import { devidToVdev } from '../../src/config/index.js';
import { LoopRegistry } from '../../src/linux/index.js';
import { DEFAULT_POLICY, type DiskSpec } from '../../src/model/desired.js';
import type { Action, Plan } from '../../src/model/plan.js';
import type { XsClient } from '../../src/xenstore/api.js';
import { XsError } from '../../src/xenstore/errors.js';
import { disk } from '../plan/fixtures.js';
import { startBench, type Bench } from './helpers.js';

const devid = (i: number) => (1 << 28) | ((i + 32) << 8); // xvdag.. (clear of the example host's disks)
const backend = (i: number) => `/local/domain/0/backend/vbd/1/${devid(i)}`;
const frontend = (i: number) => `/local/domain/1/device/vbd/${devid(i)}`;

function attaches(b: Bench, n: number, missing = new Set<number>(), from = 0): { p: Plan; files: string[] } {
  const files: string[] = [];
  const actions: Action[] = [];
  for (let i = from; i < from + n; i++) {
    const f = join(b.host.imagesDir, `batch-${i}.img`);
    if (!missing.has(i)) {
      writeFileSync(f, '');
      truncateSync(f, 1 << 20);
    }
    files.push(f);
    const spec: DiskSpec = { ...disk('xvda', f, 'rw'), vdev: devidToVdev(devid(i)), devid: devid(i) };
    actions.push({ kind: 'attach', domain: 'web1', domid: 1, disk: spec });
  }
  return { p: { actions, findings: [], disks: [] }, files };
}

/** The client, counting transactions begun and failing the commits `failCommit` says to fail. */
function counting(xs: XsClient, failCommit: (n: number) => boolean = () => false) {
  const count = { starts: 0, commits: 0 };
  const start = xs.transactionStart.bind(xs);
  const end = xs.transactionEnd.bind(xs);
  const proxy: XsClient = Object.create(xs) as XsClient;
  proxy.transactionStart = () => {
    count.starts++;
    return start();
  };
  proxy.transactionEnd = async (tx, commit) => {
    if (commit && failCommit(++count.commits)) {
      await end(tx, false);
      throw new XsError('ENOSPC', 'test: transaction refused as a whole');
    }
    return end(tx, commit);
  };
  return { proxy, count };
}

test('consecutive attaches: one transaction; each disk as when alone (layout, inherited permissions, diskseq); events in order', async () => {
  const b = await startBench({ withBlockDevice: false });
  const keeper = new KeeperHolder(b.runDir, { graceMs: 30_000 });
  const registry = new LoopRegistry();
  try {
    // disk 2's image does not exist: its device cannot be made; the others go on without it
    const { p, files } = attaches(b, 5, new Set([2]));
    const { proxy, count } = counting(b.xs);
    const events: StepEvent[] = [];
    const r = await execute(p, { xs: proxy, devices: new RegistryDevices(registry), policy: DEFAULT_POLICY, holder: keeper, onEvent: (e) => events.push(e) });
    assert.deepEqual(r.steps.map((s) => s.ok), [true, true, false, true, true], JSON.stringify(r.steps));
    assert.match(r.steps[2]!.error!, /batch-2\.img/);
    assert.equal(count.starts, 1, 'one transaction for the four disks');
    for (const i of [0, 1, 3, 4]) {
      assert.match(r.steps[i]!.detail!, /one transaction with 3 more/);
      const dev = await b.xs.read(`${backend(i)}/physical-device-path`);
      assert.ok(dev, `backend ${i}`);
      assert.equal(await b.xs.read(`${backend(i)}/diskseq`), diskseqOf(dev));
      assert.equal(b.loops().get(dev.replace('/dev/', '')), files[i]);
      // the frontend's nodes inherit the dir's permissions (set once, on the dir): the guest owns them
      assert.deepEqual(await b.xs.getPerms(`${frontend(i)}/state`), await b.xs.getPerms(frontend(i)));
      assert.deepEqual(await b.xs.getPerms(frontend(i)), [{ domid: 1, perm: 'n' }, { domid: 0, perm: 'r' }]);
      assert.deepEqual(await b.xs.getPerms(`${backend(i)}/params`), [{ domid: 0, perm: 'n' }, { domid: 1, perm: 'r' }]);
    }
    assert.equal(await b.xs.read(backend(2)), undefined);
    assert.equal(await b.xs.read(frontend(2)), undefined);
    // start, progress, done per step, in plan order
    const order = events.map((e) => `${e.index}:${e.type}`);
    assert.deepEqual(order.filter((x) => !x.endsWith('progress')), [
      '0:step-start', '0:step-done', '1:step-start', '1:step-done', '2:step-start', '2:step-failed',
      '3:step-start', '3:step-done', '4:step-start', '4:step-done',
    ]);
    // and the simulated blkback holds each device; a frontend connects
    await b.sim.settle();
    const held = b.sim.backends().filter((h) => h.domid === 1 && [0, 1, 3, 4].map(devid).includes(h.devid));
    assert.equal(held.length, 4);
    assert.ok(held.every((h) => h.held !== undefined), JSON.stringify(held));
    for (const h of held) assert.equal(await b.sim.frontend(h.domid, h.devid).connect(), 4);
  } finally {
    keeper.close();
    registry.closeAll();
    await b.cleanup();
  }
});

test('a transaction refused as a whole: each disk is then attached alone; nothing is left half-written', async () => {
  const b = await startBench({ withBlockDevice: false });
  const keeper = new KeeperHolder(b.runDir, { graceMs: 30_000 });
  const registry = new LoopRegistry();
  try {
    const { p } = attaches(b, 3);
    // the batch's commit is refused (as a xenstored quota on a transaction's size would), and so is the
    // second disk's own: disks 0 and 2 attach, disk 1 fails, its device is let go
    const { proxy, count } = counting(b.xs, (n) => n === 1 || n === 3);
    const r = await execute(p, { xs: proxy, devices: new RegistryDevices(registry), policy: DEFAULT_POLICY, holder: keeper });
    assert.deepEqual(r.steps.map((s) => s.ok), [true, false, true], JSON.stringify(r.steps));
    assert.match(r.steps[1]!.error!, /refused as a whole/);
    assert.equal(count.starts, 4, 'the batch, then one per disk');
    assert.doesNotMatch(r.steps[0]!.detail!, /more\)/);
    for (const i of [0, 2]) assert.ok(await b.xs.read(`${backend(i)}/physical-device`));
    assert.equal(await b.xs.read(backend(1)), undefined);
    assert.equal(await b.xs.read(frontend(1)), undefined);
    assert.equal(registry.heldDiskseqs().size, 0, 'the registry let go of everything (the keeper holds the committed ones)');
  } finally {
    keeper.close();
    registry.closeAll();
    await b.cleanup();
  }
});

test(`at most ${BATCH_MAX} disks share a transaction; stopOnError runs them one by one`, async () => {
  const b = await startBench({ withBlockDevice: false });
  const keeper = new KeeperHolder(b.runDir, { graceMs: 30_000 });
  const registry = new LoopRegistry();
  try {
    const { p } = attaches(b, BATCH_MAX + 2);
    const { proxy, count } = counting(b.xs);
    const r = await execute(p, { xs: proxy, devices: new RegistryDevices(registry), policy: DEFAULT_POLICY, holder: keeper });
    assert.ok(r.ok, JSON.stringify(r.steps.find((s) => !s.ok)));
    assert.equal(count.starts, 2);
    assert.match(r.steps[BATCH_MAX]!.detail!, /one transaction with 1 more/);

    // stopOnError: one transaction per disk, and none after the first failure (a foreign backend)
    const from = BATCH_MAX + 2;
    await b.xs.write(`${backend(from + 1)}/params`, '/somewhere/else.img');
    const again = counting(b.xs);
    const more = attaches(b, 3, new Set(), from);
    const r2 = await execute(more.p, { xs: again.proxy, devices: new RegistryDevices(registry), policy: DEFAULT_POLICY, holder: keeper, stopOnError: true });
    assert.deepEqual(r2.steps.map((s) => s.ok), [true, false]);
    assert.doesNotMatch(r2.steps[0]!.detail!, /more\)/);
    assert.equal(again.count.starts, 2);
    assert.equal(await b.xs.read(backend(from + 2)), undefined);
  } finally {
    keeper.close();
    registry.closeAll();
    await b.cleanup();
  }
});
