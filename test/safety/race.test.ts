// Prune never destroys data, even when the file goes between the plan and its step: the executor puts
// the planner's rule (letGoVerdict) to a fresh look at the device right before a detach or a free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOnce } from '../../src/wire/session.js';
import { execute } from '../../src/apply/execute.js';
import { KeeperHolder } from '../../src/hold/holder.js';
import { RegistryDevices } from '../../src/apply/linux-devices.js';
import { LoopRegistry } from '../../src/linux/index.js';
import { startBench } from '../apply/helpers.js';

test('an image deleted after the plan: its detach is refused at the step, the device and backend stay', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    assert.ok((await applyOnce({ configDir: b.host.configDir })).result?.ok);
    const be = '/local/domain/0/backend/vbd/1/51728'; // web1 xvdb: web1-private.img, read-write
    const dev = b.sim.read(`${be}/physical-device-path`)!;
    const diskseq = b.sim.read(`${be}/diskseq`);
    // web1 no longer wants xvdb: the plan (with prune) detaches it while its file is still there
    const web = join(b.host.configDir, 'web.yaml');
    const text = readFileSync(web, 'utf8');
    const without = text.replace(/\n  - vdev: xvdb\n    file: \S*web1-private\.img[^\n]*\n/, '\n');
    assert.notEqual(without, text, 'the test edits web1 xvdb out of the config');
    writeFileSync(web, without);
    const planned = await applyOnce({ configDir: b.host.configDir, prune: true, dryRun: true });
    assert.ok(planned.plan.actions.some((a) => a.kind === 'detach' && a.backend.path === be), JSON.stringify(planned.plan.actions));
    // ... and then the image is deleted, before the step runs: the device holds the only copy now
    rmSync(join(b.host.imagesDir, 'web1-private.img'));
    const registry = new LoopRegistry({ allowedRoots: planned.policy.allowedRoots });
    const holder = new KeeperHolder(b.runDir);
    try {
      const r = await execute(planned.plan, { xs: b.xs, devices: new RegistryDevices(registry), policy: planned.policy, holder });
      const step = r.steps.find((s) => s.action.kind === 'detach' && s.action.backend.path === be)!;
      assert.equal(step.ok, false);
      assert.match(step.error!, /^refused: the backing file of \/dev\/loop\d+ \(.*web1-private\.img\) was deleted: the loop device holds the only copy of its data; copy the data out first \(dd if=\/dev\/loop\d+ /);
    } finally {
      holder.close();
      registry.closeAll();
    }
    assert.equal(b.sim.read(`${be}/physical-device-path`), dev, 'the backend still names the device');
    assert.equal(b.sim.read(`${be}/diskseq`), diskseq);
    assert.equal(b.sim.read(`${be}/online`), '1', 'not even closed');
    assert.match(readFileSync(`/sys/block/${dev.slice(5)}/loop/backing_file`, 'utf8'), /web1-private\.img \(deleted\)/);
  } finally {
    await b.cleanup();
  }
});
