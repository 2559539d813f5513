import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dropFromKeepers, keeperLists } from '../../src/hold/keeper-client.js';
import { keepersRunning } from '../helpers/keepers.js';
import { runCli, startBench, waitUntil } from '../apply/helpers.js';

function diskseqOf(dev: string): string | undefined {
  try {
    const name = dev.replace('/dev/', '');
    readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8');
    return readFileSync(`/sys/block/${name}/diskseq`, 'utf8').trim();
  } catch {
    return undefined; // unbound
  }
}

test('after a one-shot apply exits, the keeper keeps the devices through a frontend reconnect; removing the backend frees them', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const r = await runCli(['apply', '--auto-approve'], b.env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Apply complete: 9 of 9 steps done \(9 attach\)/);

    let lists = await keeperLists(b.runDir);
    assert.deepEqual(lists.map((k) => [k.slot, k.held.length]), [['a', 9], ['b', 9]], 'both keepers: one fd per backend');
    // each entry turns live when the keeper's watch sees its committed backend
    await waitUntil('every entry to be live', async () => (lists = await keeperLists(b.runDir)).every((k) => k.held.every((h) => h.live)));
    assert.notEqual(lists[0]!.pid, lists[1]!.pid);
    assert.ok(!lists.some((k) => k.pid === process.pid));

    const web1 = 1;
    const be = `/local/domain/0/backend/vbd/${web1}/51728`;
    const dev = b.sim.read(`${be}/physical-device-path`)!;
    const seq = b.sim.read(`${be}/diskseq`)!;
    assert.equal(diskseqOf(dev), seq);
    await b.sim.settle();
    const fe = b.sim.frontend(web1, 51728);
    assert.equal(await fe.connect(), 4);
    await fe.disconnect();
    await b.sim.settle();
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(diskseqOf(dev), seq, `${dev} survived the disconnect with the same diskseq`);
    assert.equal(await fe.reconnect(), 4);
    assert.ok(b.sim.backends().find((x) => x.domid === web1 && x.devid === 51728)?.held, 'blkback holds it again');
    assert.equal(diskseqOf(dev), seq);

    // blkback lets go while the backend dir still exists when its xenbus device is unregistered, e.g. the
    // guest removes its frontend's state node (Unknown). With the keeper's fd the device stays bound...
    const be2 = `/local/domain/0/backend/vbd/${web1}/51744`;
    const dev2 = b.sim.read(`${be2}/physical-device-path`)!;
    const seq2 = b.sim.read(`${be2}/diskseq`)!;
    const be3 = `/local/domain/0/backend/vbd/2/51744`;
    const dev3 = b.sim.read(`${be3}/physical-device-path`)!;
    await b.sim.settle();
    for (const [domid, bePath] of [[web1, be2], [2, be3]] as const) {
      assert.ok(b.sim.backends().find((x) => x.domid === domid && x.devid === 51744)?.held, `blkback holds ${bePath}`);
    }
    // ...and the control: the same with the keeper's fd dropped frees the device under the backend
    assert.equal(await dropFromKeepers(b.runDir, be3), 2);
    assert.ok(diskseqOf(dev3), 'still bound while blkback holds it');
    await b.xs.rm(`/local/domain/${web1}/device/vbd/51744/state`);
    await b.xs.rm(`/local/domain/2/device/vbd/51744/state`);
    await b.sim.settle();
    assert.equal(b.sim.backends().find((x) => x.domid === web1 && x.devid === 51744)?.held, undefined, 'blkback let go');
    await waitUntil(`${dev3} to be freed without a holder`, () => diskseqOf(dev3) === undefined);
    await new Promise((res) => setTimeout(res, 200));
    assert.equal(diskseqOf(dev2), seq2, `${dev2} is still bound: the keeper holds it for ${be2}`);

    // removing a backend dir: the keeper closes its fd, blkback lets go, autoclear frees the device
    await b.xs.rm(be);
    await b.xs.rm(`/local/domain/${web1}/device/vbd/51728`);
    await waitUntil(`${dev} to be freed after its backend went`, () => diskseqOf(dev) === undefined);
    await waitUntil('both keepers to let go', async () => (await keeperLists(b.runDir)).every((k) => k.held.length === 7));
    for (const after of await keeperLists(b.runDir)) {
      assert.ok(!after.held.some((h) => h.backend === be || h.backend === be3), `keeper ${after.slot}`);
      assert.ok(after.held.some((h) => h.backend === be2), `keeper ${after.slot}`);
    }
    assert.ok(existsSync(join(b.runDir, 'keeper.log')));
  } finally {
    await b.cleanup();
  }
});

test('a keeper whose xenstore is gone for good lets go when XVBD_KEEPER_XS_LOST_EXIT_MS says so (a killed test or demo leaks nothing)', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const r = await runCli(['apply', '--auto-approve'], { ...b.env, XVBD_KEEPER_XS_LOST_EXIT_MS: '300' });
    assert.equal(r.code, 0, r.out);
    assert.equal(b.loops().size, 7);
    await b.sim.close(); // blkback lets go; only the keeper holds the devices now
    await new Promise((res) => setTimeout(res, 150));
    assert.equal(b.loops().size, 7, 'the keeper still holds them right after the loss');
    await waitUntil('the keepers to exit', () => !keepersRunning(b.runDir), 10_000);
    await waitUntil('the devices to be freed', () => b.loops().size === 0);
  } finally {
    await b.cleanup();
  }
});
