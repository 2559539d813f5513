import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { backendPerms, frontendPerms, vbdPaths } from '../../src/apply/layout.js';
import { keeperLists } from '../../src/daemon/keeper-client.js';
import type { XsClient } from '../../src/xenstore/api.js';
import { runCli, startBench, waitUntil } from '../apply/helpers.js';

/** What libxl's device_disk_add writes for `script=/usr/local/bin/xvbd-hook,target=PATH,vdev=VDEV`, in one transaction. */
async function libxlAddDisk(xs: XsClient, fe: number, devid: number, vdev: string, target: string, mode: 'r' | 'w'): Promise<string> {
  const id = { backendDomid: 0, frontendDomid: fe, devid };
  const p = vbdPaths(id);
  const bents: Record<string, string> = {
    params: target,
    script: '/usr/local/bin/xvbd-hook',
    'frontend-id': String(fe),
    online: '1',
    removable: '0',
    bootable: '1',
    state: '1',
    dev: vdev,
    type: 'phy',
    mode,
    'device-type': 'disk',
    'discard-enable': '0',
  };
  await xs.transaction(async (tx) => {
    await tx.rm(p.libxl);
    await tx.write(`${p.libxl}/frontend`, p.frontend);
    await tx.write(`${p.libxl}/backend`, p.backend);
    await tx.mkdir(p.frontend);
    await tx.setPerms(p.frontend, frontendPerms(id));
    await tx.write(`${p.frontend}/backend`, p.backend);
    for (const [k, v] of Object.entries({ 'backend-id': '0', state: '1', 'virtual-device': String(devid), 'device-type': 'disk' })) {
      await tx.write(`${p.frontend}/${k}`, v);
    }
    await tx.mkdir(p.backend);
    await tx.setPerms(p.backend, backendPerms(id));
    await tx.write(`${p.backend}/frontend`, p.frontend);
    for (const [k, v] of Object.entries(bents)) await tx.write(`${p.backend}/${k}`, v);
    for (const [k, v] of Object.entries(bents)) await tx.write(`${p.libxl}/${k}`, v);
  });
  return p.backend;
}

test('the hook serves a backend created the way libxl creates one, refuses a mismatch with hotplug-error, remove releases', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const web1 = 1;
    const priv = b.host.files.find((f) => f.endsWith('web1-private.img'))!;
    const be = await libxlAddDisk(b.xs, web1, 51728, 'xvdb', priv, 'w');
    const env = { ...b.env, XENBUS_PATH: `backend/vbd/${web1}/51728` };
    const r = await runCli(['hook', 'add'], env);
    assert.equal(r.code, 0, r.out);
    const dev = b.sim.read(`${be}/physical-device-path`)!;
    assert.match(dev, /^\/dev\/loop\d+$/);
    const name = dev.slice(5);
    assert.equal(b.sim.read(`${be}/node`), dev);
    assert.equal(b.sim.read(`${be}/physical-device`), `7:${Number(readFileSync(`/sys/block/${name}/dev`, 'utf8').split(':')[1]).toString(16)}`);
    assert.equal(b.sim.read(`${be}/diskseq`), readFileSync(`/sys/block/${name}/diskseq`, 'utf8').trim());
    assert.equal(readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim(), priv);
    assert.equal(b.sim.read(`${be}/xvbd`), '1');
    assert.match(b.sim.read(`${be}/xvbd-inode`)!, /^\d+:\d+$/);
    assert.equal(b.sim.read(`${be}/hotplug-status`), 'connected');
    assert.equal(b.sim.read(`${be}/script`), '/usr/local/bin/xvbd-hook', 'the toolstack nodes are left as they were');
    await b.sim.settle();
    assert.ok(b.sim.backends().find((x) => x.domid === web1 && x.devid === 51728)?.held, 'blkback holds the device');
    assert.equal(await b.sim.frontend(web1, 51728).connect(), 4);
    await waitUntil('both keepers to hold it', async () => {
      const ks = await keeperLists(b.runDir);
      return ks.length === 2 && ks.every((k) => k.held.some((h) => h.backend === be && h.live));
    });

    // idempotent: libxl may run add again
    const again = await runCli(['hook', 'add', `XENBUS_PATH=backend/vbd/${web1}/51728`], env);
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /already served/);
    assert.equal(b.sim.read(`${be}/physical-device-path`), dev);

    // not the desired source: refused, as the block script reports errors
    const scratchOther = join(b.host.imagesDir, 'web2-scratch.img');
    const bad = await libxlAddDisk(b.xs, web1, 51744, 'xvdc', scratchOther, 'w');
    const before = b.loops().size;
    const r2 = await runCli(['hook', 'add'], { ...b.env, XENBUS_PATH: `backend/vbd/${web1}/51744` });
    assert.equal(r2.code, 1, r2.out);
    assert.equal(b.sim.read(`${bad}/hotplug-status`), 'error');
    assert.match(b.sim.read(`${bad}/hotplug-error`)!, /params .*web2-scratch.img is not the desired source .*web1-scratch.img of web1 xvdc/);
    assert.equal(b.sim.read(`${bad}/physical-device`), undefined);
    assert.equal(b.loops().size, before, 'no loop device made for a refused backend');

    // a malformed XENBUS_PATH: refused before anything is read or written
    const r3 = await runCli(['hook', 'add'], { ...b.env, XENBUS_PATH: `backend/vbd/0${web1}/51728` });
    assert.equal(r3.code, 1);
    assert.match(r3.out, /not a decimal number/);

    // remove (libxl runs it before removing the dirs), then the dirs go: the device is freed
    const r4 = await runCli(['hook', 'remove'], env);
    assert.equal(r4.code, 0, r4.out);
    assert.match(r4.out, /released by the keeper/);
    assert.ok(b.loops().has(name), 'blkback still holds it until the backend goes');
    await b.xs.transaction(async (tx) => {
      for (const p of [be, `/local/domain/${web1}/device/vbd/51728`, `/libxl/${web1}/device/vbd/51728`]) await tx.rm(p);
    });
    await waitUntil(`${dev} to be freed`, () => !b.loops().has(name));
  } finally {
    await b.cleanup();
  }
});
