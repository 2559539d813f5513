// The two keepers of a run dir: each holds every fd, a killed one is restarted by its twin with
// everything, and a guest letting go meanwhile frees nothing (docs/fd-holding.md, invariant 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { keeperLists } from '../../src/hold/keeper-client.js';
import { runCli, startBench, waitUntil } from '../apply/helpers.js';

/** The diskseq of a bound loop device, undefined when it is unbound. */
function diskseqOf(dev: string): string | undefined {
  const name = dev.replace('/dev/', '');
  try {
    readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8');
    return readFileSync(`/sys/block/${name}/diskseq`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

test('kill -9 of either keeper: its twin keeps every device and restarts it with all of them', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const r = await runCli(['apply', '--auto-approve'], b.env);
    assert.equal(r.code, 0, r.out);
    const all = async () => (await keeperLists(b.runDir)).sort((x, y) => x.slot.localeCompare(y.slot));
    await waitUntil('both keepers to hold all 9, live', async () => {
      const ks = await all();
      return ks.length === 2 && ks.every((k) => k.held.length === 9 && k.held.every((h) => h.live));
    });
    let round = 0;
    for (const slot of ['a', 'b'] as const) {
      round++;
      const victim = (await all()).find((k) => k.slot === slot)!;
      // a guest removes its frontend's state (blkback lets go) right as the keeper dies
      const domid = round; // web1, then web2: their xvdb is read-write, one device each
      const be = `/local/domain/0/backend/vbd/${domid}/51728`;
      const dev = b.sim.read(`${be}/physical-device-path`)!;
      const seq = b.sim.read(`${be}/diskseq`)!;
      await b.sim.settle();
      process.kill(victim.pid, 'SIGKILL');
      await b.xs.rm(`/local/domain/${domid}/device/vbd/51728/state`);
      await b.sim.settle();
      assert.equal(b.sim.backends().find((x) => x.domid === domid && x.devid === 51728)?.held, undefined, 'blkback let go');
      await waitUntil(`keeper ${slot} to be back with all 9`, async () => {
        const k = (await all()).find((x) => x.slot === slot);
        return k !== undefined && k.pid !== victim.pid && k.held.length === 9 && k.held.every((h) => h.live);
      }, 30_000);
      assert.equal(diskseqOf(dev), seq, `${dev} is still the device ${be} recorded`);
      for (const k of await all()) assert.ok(k.held.some((h) => h.backend === be && h.diskseq === seq), `keeper ${k.slot} holds ${be}`);
    }
    assert.match(readFileSync(`${b.runDir}/keeper.log`, 'utf8'), /twin [ab] holds 9 of our 9 fds/);
  } finally {
    await b.cleanup();
  }
});
