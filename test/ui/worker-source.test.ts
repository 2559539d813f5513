// WorkerSource: load() in a worker thread gives what XenSource gives on the UI thread; errors come
// back as errors; close() ends the thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator } from '../../src/sim/index.js';
import { WorkerSource } from '../../src/ui/worker-source.js';
import { XenSource } from '../../src/ui/xen-source.js';

test('worker and UI-thread sources observe the same; errors cross; close ends the thread', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-tui-worker-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: [{ name: 'web', domid: 3 }] });
  const cfg = join(dir, 'config');
  mkdirSync(cfg);
  writeFileSync(join(dir, 'a.img'), '');
  writeFileSync(join(cfg, 'web.yaml'), `apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: xvdb\n    file: ${join(dir, 'a.img')}\n`);
  // no daemon listens on this control socket
  const opts = { configDir: cfg, socket: sim.socketPath, xenBackendSysfs: sim.sysfsDir, controlSocket: join(dir, 'control.sock') };
  const w = new WorkerSource(opts);
  const x = new XenSource(opts);
  const bad = new WorkerSource({ ...opts, socket: join(dir, 'nope.sock') });
  try {
    const [a, b] = await Promise.all([w.load(), x.load()]);
    assert.deepEqual(a.plan.actions, b.plan.actions);
    assert.deepEqual(a.plan.disks, b.plan.disks);
    assert.deepEqual(a.desired, b.desired);
    assert.equal(a.plan.actions.length, 1);
    assert.equal(a.plan.actions[0]!.kind, 'attach');
    assert.ok(a.observedAt > 0 && a.observeMs >= 0);
    // the plan with prune (p) and the daemon (the header) cross the thread too
    assert.deepEqual(a.prunePlan?.actions, b.prunePlan?.actions);
    assert.deepEqual(a.prunePlan?.actions.map((x) => x.kind), ['attach']);
    assert.deepEqual([a.daemon, b.daemon], [{ state: 'absent' }, { state: 'absent' }]);
    const quiet = new XenSource({ ...opts, controlSocket: false });
    try {
      assert.equal((await quiet.load()).daemon, undefined, 'controlSocket false: the daemon is not asked');
    } finally {
      await quiet.close();
    }
    // the config changes: a plain load sees it (signature), force re-reads anyway
    writeFileSync(join(cfg, 'web.yaml'), `apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks: []\n`);
    assert.equal((await w.load()).plan.actions.length, 0);
    assert.equal((await w.load({ force: true })).plan.actions.length, 0);
    await assert.rejects(bad.load(), /cannot connect to xenstore/);
    await assert.rejects(bad.load(), /cannot connect to xenstore/, 'still answers after an error');
  } finally {
    await Promise.all([w.close(), x.close(), bad.close()]);
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await assert.rejects(w.load(), /observer thread exited/);
});

test('in a fleet directory, the sources show the host they are given (the worker thread too)', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-tui-fleet-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: [{ name: 'web', domid: 3 }, { name: 'db', domid: 4 }] });
  const cfg = join(dir, 'config');
  mkdirSync(cfg);
  writeFileSync(join(dir, 'a.img'), '');
  writeFileSync(join(dir, 'b.img'), '');
  writeFileSync(join(cfg, 'hosts.yaml'), 'apiVersion: xvbd/v1\nkind: Host\nname: tui-a\n---\napiVersion: xvbd/v1\nkind: Host\nname: tui-b\n');
  const dom = (name: string, host: string, img: string) => `apiVersion: xvbd/v1\nkind: Domain\nname: ${name}\nhosts:\n  names: [${host}]\ndisks:\n  - vdev: xvdb\n    file: ${join(dir, img)}\n`;
  writeFileSync(join(cfg, 'web.yaml'), `${dom('web', 'tui-a', 'a.img')}---\n${dom('db', 'tui-b', 'b.img')}`);
  const opts = { configDir: cfg, socket: sim.socketPath, xenBackendSysfs: sim.sysfsDir };
  const w = new WorkerSource({ ...opts, host: 'tui-b' });
  const x = new XenSource({ ...opts, host: 'tui-a' });
  try {
    const [b, a] = await Promise.all([w.load(), x.load()]);
    assert.deepEqual(b.desired.domains.map((d) => d.name), ['db']);
    assert.deepEqual(a.desired.domains.map((d) => d.name), ['web']);
    assert.deepEqual(b.plan.actions.map((p) => (p.kind === 'attach' ? p.domain : p.kind)), ['db']);
  } finally {
    await Promise.all([w.close(), x.close()]);
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
