// The hook decides as the planner decides: for backends in every state the hook can meet, the decision
// taken on the hook's own observation (observeForHook: the asked backend, the whole host only when another
// backend could matter) equals the one taken on the full observation `xvbd plan` uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadDesired } from '../../src/config/index.js';
import { hookDecision } from '../../src/hook/hook.js';
import { observeForHook, targetOf } from '../../src/hook/hook-serve.js';
import { listLoops, mountedDevices } from '../../src/linux/index.js';
import { observeFor } from '../../src/wire/snapshot.js';
import { plan } from '../../src/plan/plan.js';
import { startBench } from '../apply/helpers.js';
import { libxlDiskAdd } from './libxl.js';
import { HOOK_DOMAINS, hookEnv, runNative, stopHookServer } from './helpers.js';

test('hook decision on its own observation == decision on the full observation, for every kind of backend', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  try {
    const img = (n: string) => join(b.host.imagesDir, n);
    const add = (fe: number, devid: number, vdev: string, file: string, mode: 'r' | 'w', script = 'xvbd') =>
      libxlDiskAdd(b.xs, { frontendDomid: fe, devid, vdev, target: img(file), mode, script });
    // served already (a loop of its file bound: the whole-host path), and the read-only template shared
    await add(1, 51712, 'xvda', 'debian-12-template.img', 'r');
    await add(1, 51728, 'xvdb', 'web1-private.img', 'w');
    for (const devid of [51712, 51728]) assert.equal((await runNative(['add'], hookEnv(b, 1, devid))).code, 0);
    await add(2, 51712, 'xvda', 'debian-12-template.img', 'r'); // pending, would share web1's template loop
    await add(2, 51728, 'xvdb', 'web2-private.img', 'w'); // pending, nothing shared
    await add(2, 51744, 'xvdc', 'web2-scratch.img', 'r'); // mode mismatch
    await add(3, 51712, 'xvda', 'web1-scratch.img', 'w'); // not the desired source
    await add(9, 51712, 'xvda', 'web1-scratch.img', 'w'); // a domain the config does not name
    await add(1, 51808, 'xvdg', 'web1-scratch.img', 'w'); // a vdev web1 does not have
    await add(4, 51712, 'xvda', 'db-data.img', 'w', '/etc/xen/scripts/block'); // another tool's
    const targets = [
      'backend/vbd/1/51712',
      'backend/vbd/1/51728',
      'backend/vbd/2/51712',
      'backend/vbd/2/51728',
      'backend/vbd/2/51744',
      'backend/vbd/3/51712',
      'backend/vbd/9/51712',
      'backend/vbd/1/51808',
      'backend/vbd/4/51712',
      'backend/vbd/4/51999', // no such backend
    ].map(targetOf);
    const desired = await loadDesired(b.host.configDir);
    const loops = () => {
      const mounts = mountedDevices();
      return { loops: listLoops({ mounts }), mountedDevs: mounts.devs };
    };
    const kinds = new Set<string>();
    for (const t of targets) {
      const own = await observeForHook(b.xs, desired, [t], { loops });
      const full = await observeFor(b.xs, desired);
      const mine = hookDecision(desired, own, plan(desired, own, desired.policy), t);
      const theirs = hookDecision(desired, full, plan(desired, full, desired.policy), t);
      assert.deepEqual(mine, theirs, t.path);
      kinds.add(mine.kind);
    }
    assert.deepEqual([...kinds].sort(), ['execute', 'refuse', 'served'], 'every kind of decision was compared');
    // and together, as a burst's batch observes them
    const own = await observeForHook(b.xs, desired, targets, { loops });
    const full = await observeFor(b.xs, desired);
    for (const t of targets) {
      assert.deepEqual(hookDecision(desired, own, plan(desired, own, desired.policy), t), hookDecision(desired, full, plan(desired, full, desired.policy), t), `${t.path} in a batch`);
    }
  } finally {
    await stopHookServer(b);
    await b.cleanup();
  }
});
