// The hook with the daemon (`xvbd reconcile --watch`, policy serve: hook) listening: the C hook has the
// daemon serve (its registry holds the device), the same refusals as without it, a burst of
// one domain, remove, and hooks started while the daemon restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { askDaemon } from '../../src/ipc/control.js';
import { keeperLists } from '../../src/hold/keeper-client.js';
import { runCli, startBench, type Bench } from '../apply/helpers.js';
import { libxlDiskAdd, libxlDiskRemove } from './libxl.js';
import { HOOK_DOMAINS, hookEnv, manyDisksConfig, runNative, setServe, startDaemon, stopHookServer } from './helpers.js';
import { checkRefusals } from './refusals.js';

async function daemonHolds(b: Bench): Promise<string[]> {
  const rep = await askDaemon({ op: 'status' }, { path: join(b.runDir, 'control.sock') });
  return ((rep?.held ?? []) as { users: string[] }[]).flatMap((h) => h.users);
}

test('with the daemon: it serves and holds the device; remove has it let go; every refusal as without it', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  setServe(b, 'hook'); // the daemon's own passes create nothing: only what the toolstack made is served
  const d = await startDaemon(b);
  try {
    const p = await libxlDiskAdd(b.xs, { frontendDomid: 1, devid: 51728, vdev: 'xvdb', target: join(b.host.imagesDir, 'web1-private.img'), mode: 'w', script: 'xvbd' });
    const env = hookEnv(b, 1, 51728);
    const r = await runNative(['add'], env);
    assert.equal(r.code, 0, r.out + d.log());
    assert.match(r.out, /served by the daemon/);
    assert.match(b.sim.read(`${p.backend}/physical-device-path`)!, /^\/dev\/loop\d+$/);
    assert.equal(b.sim.read(`${p.backend}/hotplug-status`), 'connected');
    assert.deepEqual(await daemonHolds(b), [p.backend]);
    assert.equal(existsSync(join(b.runDir, 'hook.sock')), false, 'no hook server was started');
    // Level-triggered: the pass the new backend dir wakes may serve it before the hook asks (a loaded
    // machine); then the hook's batch finds it served. Either way it is served once, by the daemon.
    const byBatch = /hook: batch of 1: 1 step,/.test(d.log());
    const byPass = /\+serve web1 xvdb .* ok/.test(d.log());
    assert.ok(byBatch !== byPass, `served once, by a hook batch or by a pass:\n${d.log()}`);
    if (byPass) assert.match(d.log(), /hook: .*51728: already served/);

    const rm = await runNative(['remove'], env);
    assert.equal(rm.code, 0, rm.out);
    assert.match(rm.out, /released by the daemon/);
    assert.deepEqual(await daemonHolds(b), []);
    await libxlDiskRemove(b.xs, p);

    await checkRefusals(b, 'hook', (e) => runNative(['add'], e));
    assert.equal(existsSync(join(b.runDir, 'hook.sock')), false, 'the daemon answered every refusal');
  } finally {
    await d.stop();
    await stopHookServer(b);
    await b.cleanup();
  }
});

test('with the daemon: a domain started with 8 disks at once, all served and held by the daemon; xvbd plan agrees', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  setServe(b, 'hook');
  const disks = manyDisksConfig(b, 8);
  const d = await startDaemon(b);
  try {
    const paths: Awaited<ReturnType<typeof libxlDiskAdd>>[] = [];
    for (const k of disks) paths.push(await libxlDiskAdd(b.xs, { frontendDomid: 5, devid: k.devid, vdev: k.vdev, target: k.file, mode: 'w', script: 'xvbd' }));
    const rs = await Promise.all(disks.map((k) => runNative(['add'], hookEnv(b, 5, k.devid))));
    rs.forEach((r, i) => assert.equal(r.code, 0, `disk ${i}: ${r.out}\n${d.log()}`));
    paths.forEach((p) => assert.equal(b.sim.read(`${p.backend}/hotplug-status`), 'connected'));
    assert.equal(new Set(paths.map((p) => b.sim.read(`${p.backend}/physical-device`))).size, 8);
    assert.deepEqual((await daemonHolds(b)).sort(), paths.map((p) => p.backend).sort());
    const plan = await runCli(['plan', '--json'], b.env);
    const rows = (JSON.parse(plan.out.slice(plan.out.indexOf('{'))) as { disks: { domain: string; sync: string }[] }).disks.filter((x) => x.domain === 'many');
    assert.deepEqual(rows.map((x) => x.sync), new Array(8).fill('synced'));
  } finally {
    await d.stop();
    await b.cleanup();
  }
});

test('hooks started while the daemon restarts: each is served (by the daemon or the hook server) and its device held', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  setServe(b, 'hook');
  const disks = manyDisksConfig(b, 4);
  let d = await startDaemon(b);
  try {
    const paths: Awaited<ReturnType<typeof libxlDiskAdd>>[] = [];
    for (const k of disks) paths.push(await libxlDiskAdd(b.xs, { frontendDomid: 5, devid: k.devid, vdev: k.vdev, target: k.file, mode: 'w', script: 'xvbd' }));
    // the daemon is told to stop and the hooks start at the same moment; a new daemon follows
    const stopping = d.stop();
    const hooks = Promise.all(disks.map((k) => runNative(['add'], hookEnv(b, 5, k.devid))));
    await stopping;
    d = await startDaemon(b);
    const rs = await hooks;
    rs.forEach((r, i) => assert.equal(r.code, 0, `disk ${i}: ${r.out}\n${d.log()}`));
    paths.forEach((p) => assert.equal(b.sim.read(`${p.backend}/hotplug-status`), 'connected'));
    // held all along by whoever served it; the new daemon takes over what a keeper holds
    const heldBy = async () => {
      const k = (await keeperLists(b.runDir)).flatMap((x) => x.held.map((h) => h.backend));
      const own = await daemonHolds(b);
      return paths.every((p) => k.includes(p.backend) || own.includes(p.backend));
    };
    assert.ok(await heldBy(), 'every device has a holder');
    const plan = await runCli(['plan', '--json'], b.env);
    const rows = (JSON.parse(plan.out.slice(plan.out.indexOf('{'))) as { disks: { domain: string; sync: string }[] }).disks.filter((x) => x.domain === 'many');
    assert.deepEqual(rows.map((x) => x.sync), new Array(4).fill('synced'));
  } finally {
    await d.stop();
    await stopHookServer(b);
    await b.cleanup();
  }
});
