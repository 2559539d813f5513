// A guest that removes its frontend dir (the way a Linux frontend comes back as a new xenbus device
// after an unbind; it cannot write the dir back, device/vbd is not its own): blkback unregisters and
// nothing in dom0's backend dir need change, so only the daemon's watch on the frontend's state sees
// it. The daemon writes the frontend anew and has the kernel probe the backend again (reprobe): the
// same loop device, the same diskseq, connected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Host } from './harness.js';

const XVDB = 51728;

test('a guest removes its frontend dir: the daemon writes it anew and reprobes the backend; same device and diskseq, connected again', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.domain('web1', [{ vdev: 'xvdb', image: 'b.img' }]);
    const d = h.startDaemon();
    const before = await h.waitFor('web1 xvdb served', () => (h.served(5, XVDB)?.physicalDevice ? h.served(5, XVDB) : undefined));
    const fe = h.sim.frontend(5, XVDB);
    assert.equal(await fe.connect(), 4);
    const be = h.backendPath(5, XVDB);
    const sysDir = join(h.sim.sysfsDir, `vbd-5-${XVDB}`);
    assert.ok(existsSync(join(sysDir, 'physical_device')), 'blkback holds the device');

    // the guest, with its own permissions, removes its frontend dir (it owns it) and cannot write it back
    const guest = h.sim.asDomain(5);
    const dir = `/local/domain/5/device/vbd/${XVDB}`;
    const nodes = Object.fromEntries(['backend', 'backend-id', 'virtual-device', 'device-type'].map((n) => [n, guest.read(`${dir}/${n}`)]));
    guest.rm(dir);
    assert.throws(() => guest.write(`${dir}/state`, '1'), /EACCES/, 'device/vbd is not the guest\'s');

    await h.waitFor('the frontend dir written anew', () => h.sim.read(`${dir}/state`) === '1');
    assert.deepEqual(Object.fromEntries(Object.keys(nodes).map((n) => [n, guest.read(`${dir}/${n}`)])), nodes, 'the same frontend nodes');
    await h.waitFor('the backend probed again (InitWait)', () => h.sim.read(`${be}/state`) === '2' && existsSync(join(sysDir, 'physical_device')));
    assert.equal(await h.sim.frontend(5, XVDB).connect(), 4, 'the new frontend connects');
    assert.deepEqual(h.served(5, XVDB), before, 'the same device, the same diskseq');
    assert.equal(h.diskseqOf(before.node!.replace('/dev/', '')), before.diskseq, 'the loop device itself unchanged');
    assert.ok(d.passes().some((l) => /reprobe web1/.test(l)), `a pass reprobed it:\n${d.passes().join('\n')}`);
    // connected and in sync: the next pass has nothing to do
    const r = await h.request('reconcile', { reason: 'check' });
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal((r.outcome as { actions: number } | undefined)?.actions ?? 0, 0, JSON.stringify(r));
  } finally {
    await h.cleanup();
  }
});
