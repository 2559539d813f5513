// snapshot(): config + xenstore (the simulator over its socket) + observe + plan, as every command uses it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/xenstore/client.js';
import { snapshot, resolveConfigDir } from '../../src/wire/snapshot.js';
import { setup } from '../observe/helpers.js';

test('snapshot: loads the config, observes through the socket, plans; errors and overrides', async () => {
  const e = await setup('snap', [{ name: 'web', domid: 3 }]);
  try {
    const img = e.image('web.img');
    const cfg = join(e.dir, 'cfg');
    mkdirSync(cfg);
    writeFileSync(join(cfg, 'web.yaml'), `apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: xvda\n    file: ${img}\n`);
    // allowedRoots keep other tests' loop devices (host-wide) out of this plan.
    writeFileSync(join(cfg, 'policy.yaml'), `apiVersion: xvbd/v1\nkind: Policy\nallowedRoots:\n  - ${e.dir}\n`);
    const old = e.image('old.img');
    const l = await e.loop(old, false);
    const ino = e.inode(old);
    // An undesired backend of ours on xvdb: a finding without prune, a detach with the override.
    await e.vbd(3, 51728, { params: old, mode: 'w', 'physical-device': l.hex, diskseq: l.diskseq, xvbd: '1', 'xvbd-inode': `${ino.dev}:${ino.ino}`, 'hotplug-status': 'connected' });
    await e.sim.settle();

    const s = await snapshot({ configDir: cfg, xenstorePath: e.sim.socketPath, xenBackendSysfs: e.sim.sysfsDir });
    assert.deepEqual(s.errors, []);
    assert.deepEqual(s.files, [join(cfg, 'policy.yaml'), join(cfg, 'web.yaml')]);
    assert.equal(s.desired!.domains[0]!.name, 'web');
    assert.equal(s.observed!.backends.length, 1);
    assert.deepEqual(s.observed!.sources[img]!.inode, e.inode(img));
    assert.deepEqual(s.plan!.actions.map((a) => a.kind), ['attach'], JSON.stringify([s.plan!.findings, s.plan!.disks], null, 1));
    assert.ok(s.plan!.findings.some((f) => f.kind === 'unexpected-backend' && f.vdev === 'xvdb'));
    assert.equal(s.policy!.prune, false);
    assert.ok(s.timings.observeMs > 0);

    const pruned = await snapshot({ configDir: cfg, xenstorePath: e.sim.socketPath, xenBackendSysfs: e.sim.sysfsDir, policy: { prune: true } });
    assert.deepEqual(pruned.plan!.actions.map((a) => a.kind), ['attach', 'detach']);

    // A reused client stays open; a given desired state skips the config.
    const xs = await connect({ path: e.sim.socketPath });
    try {
      const s2 = await snapshot({ xs, desired: s.desired!, xenBackendSysfs: e.sim.sysfsDir });
      assert.deepEqual(s2.files, []);
      assert.deepEqual(s2.plan!.actions.map((a) => a.kind), ['attach']);
      assert.equal(await xs.read('/local/domain/3/name'), 'web', 'the client is still usable');
    } finally {
      await xs.close();
    }

    // Invalid config: errors, nothing observed (unless asked for).
    writeFileSync(join(cfg, 'web.yaml'), 'apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks: 7\n');
    const bad = await snapshot({ configDir: cfg, xenstorePath: e.sim.socketPath });
    assert.ok(bad.errors.length > 0);
    assert.equal(bad.desired, undefined);
    assert.equal(bad.observed, undefined);
    assert.equal(bad.plan, undefined);
    const anyway = await snapshot({ configDir: cfg, xenstorePath: e.sim.socketPath, xenBackendSysfs: e.sim.sysfsDir, observeOnConfigError: true });
    assert.equal(anyway.observed!.backends.length, 1);
    assert.equal(anyway.plan, undefined);
  } finally {
    await e.close();
  }
});

test('resolveConfigDir: --config, else XVBD_CONFIG, else /etc/xvbd', () => {
  assert.equal(resolveConfigDir('/a', { XVBD_CONFIG: '/b' }), '/a');
  assert.equal(resolveConfigDir(undefined, { XVBD_CONFIG: '/b' }), '/b');
  assert.equal(resolveConfigDir(undefined, {}), '/etc/xvbd');
  assert.equal(resolveConfigDir(undefined, { XVBD_CONFIG: '' }), '/etc/xvbd');
});
