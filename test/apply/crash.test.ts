import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { applyOnce } from '../../src/wire/session.js';
import { runCli, startBench, waitUntil, type Bench } from './helpers.js';

/** Every backend complete, its device bound with the recorded diskseq and inode; frontends and libxl's dirs in pairs. */
async function checkConsistent(b: Bench): Promise<number> {
  const xs = b.xs;
  let n = 0;
  for (const fe of await xs.directory('/local/domain/0/backend/vbd')) {
    for (const devid of await xs.directory(`/local/domain/0/backend/vbd/${fe}`)) {
      const be = `/local/domain/0/backend/vbd/${fe}/${devid}`;
      n++;
      const [dev, seq, ino, frontend, lx] = await Promise.all([
        xs.read(`${be}/physical-device-path`),
        xs.read(`${be}/diskseq`),
        xs.read(`${be}/xvbd-inode`),
        xs.read(`/local/domain/${fe}/device/vbd/${devid}/backend`),
        xs.read(`/libxl/${fe}/device/vbd/${devid}/backend`),
      ]);
      assert.equal(frontend, be, `${be} has its frontend`);
      assert.equal(lx, be, `${be} has libxl's entry`);
      assert.ok(dev && seq && ino, `${be} is complete`);
      const name = dev.replace('/dev/', '');
      assert.equal(readFileSync(`/sys/block/${name}/diskseq`, 'utf8').trim(), seq, `${be}: ${dev} is still the device recorded`);
    }
  }
  for (const d of await xs.directory('/local/domain')) {
    for (const devid of await xs.directory(`/local/domain/${d}/device/vbd`)) {
      assert.ok((await xs.read(`/local/domain/0/backend/vbd/${d}/${devid}`)) !== undefined, `frontend ${d}/${devid} has a backend`);
    }
  }
  return n;
}

test('kill -9 at random points during apply, then apply again: converges, nothing leaked, nothing half-written', async () => {
  const b = await startBench({ withBlockDevice: false });
  const files = new Set(b.host.files);
  try {
    const reset = async () => {
      // back to a host with nothing attached
      for (const fe of await b.xs.directory('/local/domain/0/backend/vbd')) await b.xs.rm(`/local/domain/0/backend/vbd/${fe}`);
      for (const d of await b.xs.directory('/local/domain')) await b.xs.rm(`/local/domain/${d}/device/vbd`);
      await b.xs.rm('/libxl');
      await b.sim.settle();
      await waitUntil('the loop devices of the previous round to go', () => b.loops().size === 0, 10_000);
    };
    const first = await runCli(['apply', '--auto-approve'], b.env);
    assert.equal(first.code, 0, first.out);
    // how long a whole (warm) apply takes here, to spread the kills over it
    await reset();
    const t0 = performance.now();
    const warm = await runCli(['apply', '--auto-approve'], b.env);
    const full = performance.now() - t0;
    assert.equal(warm.code, 0, warm.out);
    const killed: number[] = [];
    for (let round = 0; round < 6; round++) {
      await reset();

      const at = Math.round(full * (0.1 + 0.75 * Math.random()));
      const r = await runCli(['apply', '--auto-approve'], b.env, { killAfterMs: at });
      if (r.signal === 'SIGKILL') killed.push(at);
      const again = await runCli(['apply', '--auto-approve'], b.env);
      assert.equal(again.code, 0, `round ${round} (killed at ${at} ms: ${r.signal ?? r.code}):\n${again.out}`);
      const n = await checkConsistent(b);
      assert.equal(n, 9);
      const plan = await applyOnce({ configDir: b.host.configDir, dryRun: true });
      assert.deepEqual(plan.plan.actions, [], `round ${round}: converged`);
      // one loop device per file (the template shared): nothing leaked
      await waitUntil('leftover devices of the killed run to go', () => b.loops().size === files.size, 10_000).catch(() => {});
      const loops = [...b.loops().values()].sort();
      assert.deepEqual(loops, [...files].sort(), `round ${round}: exactly one loop device per image`);
    }
    assert.ok(killed.length >= 3, `at least 3 of 6 runs were really killed mid-way (killed at ${killed.join(', ')} ms of ~${full.toFixed(0)})`);
  } finally {
    await b.cleanup();
  }
});
