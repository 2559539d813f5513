// The executor pipelines consecutive attaches (the next step's device is made and handed to the holder
// while the current step's transaction runs). Checked here with real loop devices, the real keeper and
// the simulator: every commit still comes after its own hold, a failing step releases what it took,
// stopOnError releases the device made ahead for the step that will not run, events stay in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execute, type StepEvent } from '../../src/apply/execute.js';
import type { FdHolder } from '../../src/hold/holder.js';
import { KeeperHolder } from '../../src/hold/holder.js';
import { RegistryDevices } from '../../src/apply/linux-devices.js';
import { diskseqOf } from '../../src/demo/example-host.js';
import { devidToVdev } from '../../src/config/index.js';
import { LoopRegistry } from '../../src/linux/index.js';
import { DEFAULT_POLICY, type DiskSpec } from '../../src/model/desired.js';
import type { Action, Plan } from '../../src/model/plan.js';
import { keeperLists } from '../../src/hold/keeper-client.js';
import { disk } from '../plan/fixtures.js';
import { startBench, waitUntil, type Bench } from './helpers.js';

const devid = (i: number) => (202 << 8) | ((i + 8) << 4); // xvdi.. (the example host uses xvda..xvdd)
const backend = (i: number) => `/local/domain/0/backend/vbd/1/${devid(i)}`;

function plan(b: Bench, n: number): { p: Plan; files: string[] } {
  const files: string[] = [];
  const actions: Action[] = [];
  for (let i = 0; i < n; i++) {
    const f = join(b.host.imagesDir, `pipe-${i}.img`);
    writeFileSync(f, '');
    truncateSync(f, 4 << 20);
    files.push(f);
    const spec: DiskSpec = { ...disk('xvda', f, 'rw'), vdev: devidToVdev(devid(i)), devid: devid(i) };
    actions.push({ kind: 'attach', domain: 'web1', domid: 1, disk: spec });
  }
  return { p: { actions, findings: [], disks: [] }, files };
}

/** The keeper as holder, recording each hold and abort, whether the backend existed when the hold returned, and failing holds on demand. */
function recordingHolder(b: Bench, inner: FdHolder, failFor = new Set<string>()) {
  const log: { op: 'hold' | 'abort'; backend: string; backendExisted?: boolean }[] = [];
  const holder: FdHolder = {
    releaseAfterCommit: inner.releaseAfterCommit,
    async hold(dev, be) {
      // slow enough that the transaction would have committed long before, were it not waiting
      await new Promise((r) => setTimeout(r, 60));
      if (failFor.has(be)) {
        log.push({ op: 'hold', backend: be });
        throw new Error(`test: refusing to hold for ${be}`);
      }
      await inner.hold(dev, be);
      log.push({ op: 'hold', backend: be, backendExisted: (await b.xs.read(be)) !== undefined });
    },
    async abort(dev, be) {
      log.push({ op: 'abort', backend: be });
      await inner.abort(dev, be);
    },
  };
  return { holder, log };
}

/** What keeper a holds (keeper b holds the same: every hold waits for both). */
async function keeperHolds(runDir: string): Promise<string[]> {
  const k = (await keeperLists(runDir)).find((x) => x.slot === 'a');
  return (k?.held ?? []).map((h) => h.backend).sort();
}

function checkEventOrder(events: StepEvent[], steps: number): void {
  let cur = -1;
  let open = false;
  for (const e of events) {
    if (e.type === 'step-start') {
      assert.equal(open, false, 'a step started before the previous one ended');
      assert.equal(e.index, cur + 1);
      cur = e.index;
      open = true;
    } else {
      assert.equal(e.index, cur, `${e.type} of step ${e.index} while step ${cur} runs`);
      if (e.type !== 'step-progress') open = false;
    }
  }
  assert.equal(cur, steps - 1);
  assert.equal(open, false);
}

test('pipelined attaches: each commit after its own hold, a failing step releases its device, the others attach', async () => {
  const b = await startBench({ withBlockDevice: false });
  const keeper = new KeeperHolder(b.runDir, { graceMs: 30_000 });
  const registry = new LoopRegistry();
  try {
    const { p, files } = plan(b, 5);
    // step 1: a backend the toolstack owns is there already; step 3: the holder refuses
    await b.xs.write(`${backend(1)}/params`, '/somewhere/else.img');
    const { holder, log } = recordingHolder(b, keeper, new Set([backend(3)]));
    const events: StepEvent[] = [];
    const r = await execute(p, { xs: b.xs, devices: new RegistryDevices(registry), policy: DEFAULT_POLICY, holder, onEvent: (e) => events.push(e) });
    assert.deepEqual(r.steps.map((s) => s.ok), [true, false, true, false, true], JSON.stringify(r.steps));
    assert.match(r.steps[1]!.error!, /already exists \(not ours\)/);
    assert.match(r.steps[3]!.error!, /test: refusing to hold/);
    checkEventOrder(events, 5);

    // every hold of a committed step returned before its backend existed
    for (const i of [0, 2, 4]) {
      const h = log.find((x) => x.op === 'hold' && x.backend === backend(i));
      assert.ok(h, `hold for ${i}`);
      assert.equal(h.backendExisted, false, `backend ${i} existed before its fd was held`);
      // and the backend names the device we made, by diskseq
      const dev = await b.xs.read(`${backend(i)}/physical-device-path`);
      assert.ok(dev);
      assert.equal(await b.xs.read(`${backend(i)}/diskseq`), diskseqOf(dev));
      assert.equal(b.loops().get(dev.replace('/dev/', '')), files[i]);
    }
    // the refused step wrote nothing; the foreign backend is untouched; the held-then-failed step was aborted
    assert.equal(await b.xs.read(backend(3)), undefined);
    assert.equal(await b.xs.read(`/local/domain/1/device/vbd/${devid(3)}`), undefined);
    assert.equal(await b.xs.read(`${backend(1)}/params`), '/somewhere/else.img');
    assert.ok(log.some((x) => x.op === 'abort' && x.backend === backend(1)));
    assert.ok(!log.some((x) => x.op === 'abort' && x.backend === backend(3)), 'a hold that failed is not aborted');
    // their devices are gone (nobody holds them), the keeper holds exactly the three committed ones
    await waitUntil('the failed steps’ devices to be freed', () => ![...b.loops().values()].some((f) => f === files[1] || f === files[3]));
    assert.deepEqual(await keeperHolds(b.runDir), [backend(0), backend(2), backend(4)].sort());
  } finally {
    keeper.close();
    registry.closeAll();
    await b.cleanup();
  }
});

test('stopOnError: the device made ahead for the next step is released, nothing of it is written or held', async () => {
  const b = await startBench({ withBlockDevice: false });
  const keeper = new KeeperHolder(b.runDir, { graceMs: 30_000 });
  const registry = new LoopRegistry();
  try {
    const { p, files } = plan(b, 3);
    await b.xs.write(`${backend(1)}/params`, '/somewhere/else.img');
    const { holder, log } = recordingHolder(b, keeper);
    const r = await execute(p, { xs: b.xs, devices: new RegistryDevices(registry), policy: DEFAULT_POLICY, holder, stopOnError: true });
    assert.equal(r.ok, false);
    assert.deepEqual(r.steps.map((s) => s.ok), [true, false]);
    // step 2's device was made and handed over while step 1 ran (that is the pipelining), then given back
    assert.ok(log.some((x) => x.op === 'hold' && x.backend === backend(2)), JSON.stringify(log));
    assert.ok(log.some((x) => x.op === 'abort' && x.backend === backend(2)), JSON.stringify(log));
    assert.equal(await b.xs.read(backend(2)), undefined);
    await waitUntil('the devices made for steps 1 and 2 to be freed', () => ![...b.loops().values()].some((f) => f === files[1] || f === files[2]));
    assert.deepEqual(await keeperHolds(b.runDir), [backend(0)]);
    assert.equal(registry.heldDiskseqs().size, 0, 'the registry let go of everything');
  } finally {
    keeper.close();
    registry.closeAll();
    await b.cleanup();
  }
});
