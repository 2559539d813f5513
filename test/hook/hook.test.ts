// The hook without a daemon, on the simulator with real loop devices: the C hook (as libxl runs it) starts
// the on-demand hook server, which serves as `xvbd plan` decides, the keepers holding the devices; every
// refusal reaches libxl as exit 1 with hotplug-error naming the reason; remove; a burst of one domain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keeperLists } from '../../src/hold/keeper-client.js';
import { runCli, startBench, waitUntil, type Bench } from '../apply/helpers.js';
import { libxlDiskAdd, libxlDiskRemove } from './libxl.js';
import { HOOK_DOMAINS, hookEnv, manyDisksConfig, runNative, stopHookServer } from './helpers.js';
import { checkRefusals, refusals } from './refusals.js';

const WEB1 = 1;
const XVDB = 51728;

async function keepersHold(b: Bench, backend: string): Promise<boolean> {
  return (await keeperLists(b.runDir)).some((k) => k.held.some((h) => h.backend === backend));
}

function image(b: Bench, name: string): string {
  return join(b.host.imagesDir, name);
}

test('no daemon: the C hook starts the hook server, which serves the backend; add again is a no-op; remove releases', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  try {
    const p = await libxlDiskAdd(b.xs, { frontendDomid: WEB1, devid: XVDB, vdev: 'xvdb', target: image(b, 'web1-private.img'), mode: 'w', script: 'xvbd' });
    const env = hookEnv(b, WEB1, XVDB);
    const r = await runNative(['add'], env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /served by the hook server/);
    const dev = b.sim.read(`${p.backend}/physical-device-path`)!;
    assert.match(dev, /^\/dev\/loop\d+$/);
    const name = dev.slice(5);
    assert.equal(readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim(), image(b, 'web1-private.img'));
    assert.equal(b.sim.read(`${p.backend}/physical-device`), `7:${Number(readFileSync(`/sys/block/${name}/dev`, 'utf8').split(':')[1]).toString(16)}`);
    assert.equal(b.sim.read(`${p.backend}/hotplug-status`), 'connected');
    assert.equal(b.sim.read(`${p.backend}/hotplug-error`), undefined);
    assert.equal(b.sim.read(`${p.backend}/xvbd`), '1');
    assert.equal(b.sim.read(`${p.backend}/script`), 'xvbd', "the toolstack's nodes stay as they were");
    assert.ok(await keepersHold(b, p.backend), 'a keeper holds the device');
    await b.sim.settle();
    assert.equal(await b.sim.frontend(WEB1, XVDB).connect(), 4);

    // libxl may run add again: nothing changes
    const again = await runNative(['add', `XENBUS_PATH=backend/vbd/${WEB1}/${XVDB}`], env);
    assert.equal(again.code, 0, again.out);
    assert.equal(b.sim.read(`${p.backend}/physical-device-path`), dev);

    // libxl runs remove before it removes the dirs: the keepers let go, blkback still holds the device
    const rm = await runNative(['remove'], env);
    assert.equal(rm.code, 0, rm.out);
    assert.match(rm.out, /released by the hook server/);
    assert.equal(await keepersHold(b, p.backend), false, 'released at remove, not only once the dirs go');
    assert.ok(b.loops().has(name), 'blkback holds it until the backend goes');
    await libxlDiskRemove(b.xs, p);
    await waitUntil(`${dev} to be freed`, () => !b.loops().has(name));
  } finally {
    await stopHookServer(b);
    await b.cleanup();
  }
});

test('no daemon: every refusal is a failed script (exit 1) with hotplug-error naming the reason, as the block script reports', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  try {
    await checkRefusals(b, 'both', (env) => runNative(['add'], env));
  } finally {
    await stopHookServer(b);
    await b.cleanup();
  }
});

test('a read-write file another tool already gives a domain is refused (rw-shared), seen through the whole-host observation', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  const file = image(b, 'web1-private.img');
  const foreign = execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8' }).trim();
  try {
    const [maj, min] = readFileSync(`/sys/block/${foreign.slice(5)}/dev`, 'utf8').trim().split(':').map(Number);
    // the block script's backend for web2 xvdd, on that loop device
    const other = await libxlDiskAdd(b.xs, { frontendDomid: 2, devid: 51760, vdev: 'xvdd', target: file, mode: 'w', script: '/etc/xen/scripts/block' });
    await b.xs.write(`${other.backend}/physical-device`, `${maj!.toString(16)}:${min!.toString(16)}`);
    const p = await libxlDiskAdd(b.xs, { frontendDomid: WEB1, devid: XVDB, vdev: 'xvdb', target: file, mode: 'w', script: 'xvbd' });
    const r = await runNative(['add'], hookEnv(b, WEB1, XVDB));
    assert.equal(r.code, 1, r.out);
    assert.match(b.sim.read(`${p.backend}/hotplug-error`)!, /web1-private\.img is wanted or used by 2 disks, at least one read-write: .*web1 xvdb \(rw\).*web2 xvdd/);
    assert.equal(b.sim.read(`${p.backend}/physical-device`), undefined);
    await libxlDiskRemove(b.xs, p);
    await libxlDiskRemove(b.xs, other);
  } finally {
    await stopHookServer(b);
    execFileSync('losetup', ['-d', foreign]);
    await b.cleanup();
  }
});

test('no daemon: a domain started with 8 disks at once: one hook server serves them all, each its own loop device, the keepers hold them', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  try {
    const disks = manyDisksConfig(b, 8);
    const paths: Awaited<ReturnType<typeof libxlDiskAdd>>[] = [];
    for (const d of disks) paths.push(await libxlDiskAdd(b.xs, { frontendDomid: 5, devid: d.devid, vdev: d.vdev, target: d.file, mode: 'w', script: 'xvbd' }));
    const rs = await Promise.all(disks.map((d) => runNative(['add'], hookEnv(b, 5, d.devid))));
    rs.forEach((r, i) => assert.equal(r.code, 0, `disk ${i}: ${r.out}`));
    const devs = paths.map((p) => b.sim.read(`${p.backend}/physical-device-path`));
    assert.equal(new Set(devs).size, 8, `distinct devices: ${devs.join(' ')}`);
    paths.forEach((p) => assert.equal(b.sim.read(`${p.backend}/hotplug-status`), 'connected'));
    disks.forEach((d, i) => assert.equal(readFileSync(`/sys/block/${devs[i]!.slice(5)}/loop/backing_file`, 'utf8').trim(), d.file));
    for (const p of paths) assert.ok(await keepersHold(b, p.backend), `${p.backend} held`);
    const log = readFileSync(join(b.runDir, 'hook-server.log'), 'utf8');
    assert.equal(log.match(/listening on/g)?.length, 1, 'one hook server for the burst');
    // xvbd plan agrees: every disk of `many` synced
    const plan = await runCli(['plan', '--json'], b.env);
    const rows = (JSON.parse(plan.out.slice(plan.out.indexOf('{'))) as { disks: { domain: string; sync: string }[] }).disks.filter((d) => d.domain === 'many');
    assert.deepEqual(rows.map((d) => d.sync), new Array(8).fill('synced'));
  } finally {
    await stopHookServer(b);
    await b.cleanup();
  }
});

test('the Node hook (xvbd hook add|remove) is the same server side in-process: serves, refuses with the same reasons', async () => {
  const b = await startBench({ withBlockDevice: false, domains: HOOK_DOMAINS });
  try {
    const p = await libxlDiskAdd(b.xs, { frontendDomid: WEB1, devid: XVDB, vdev: 'xvdb', target: image(b, 'web1-private.img'), mode: 'w', script: 'xvbd' });
    const env = hookEnv(b, WEB1, XVDB);
    const r = await runCli(['hook', 'add'], env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /served \(physical-device 7:[0-9a-f]+\)/);
    assert.equal(b.sim.read(`${p.backend}/hotplug-status`), 'connected');
    assert.ok(await keepersHold(b, p.backend));
    const rm = await runCli(['hook', 'remove'], env);
    assert.equal(rm.code, 0, rm.out);
    assert.match(rm.out, /released by the keeper/);
    await libxlDiskRemove(b.xs, p);
    const bad = refusals('both').find((c) => c.what === 'mode mismatch')!;
    const q = await libxlDiskAdd(b.xs, { frontendDomid: bad.fe, devid: bad.devid, vdev: bad.vdev, target: bad.target(b), mode: bad.mode, script: 'xvbd' });
    const r2 = await runCli(['hook', 'add'], hookEnv(b, bad.fe, bad.devid));
    assert.equal(r2.code, 1, r2.out);
    assert.match(b.sim.read(`${q.backend}/hotplug-error`)!, bad.error);
    await libxlDiskRemove(b.xs, q);
    const r3 = await runCli(['hook', 'add'], { ...env, XENBUS_PATH: `backend/vbd/0${WEB1}/${XVDB}` });
    assert.equal(r3.code, 1);
    assert.match(r3.out, /not a decimal number/);
  } finally {
    await b.cleanup();
  }
});
