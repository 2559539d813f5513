import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { applyOnce } from '../../src/wire/session.js';
import { LoopRegistry } from '../../src/linux/index.js';
import { RegistryDevices } from '../../src/apply/linux-devices.js';
import { runCli, startBench, waitUntil } from './helpers.js';

const exec = promisify(execFile);

test('free-loop: an unused loop device of ours is freed with prune (proof: marker + diskseq); a foreign one is never touched', async () => {
  const b = await startBench({ withBlockDevice: false });
  const reg = new LoopRegistry();
  let foreign: string | undefined;
  try {
    const first = await applyOnce({ configDir: b.host.configDir });
    assert.ok(first.result?.ok);
    const mk = (name: string) => {
      const f = join(b.host.imagesDir, name);
      writeFileSync(f, '');
      truncateSync(f, 8 << 20);
      return f;
    };
    // ours, nothing uses it (as after a crash between loop setup and the transaction, or a removed backend)
    const h = await reg.acquire({ key: 'stray', source: mk('stray.img'), readOnly: false });
    // somebody else's: losetup, no marker
    foreign = (await exec('losetup', ['-f', '--show', mk('foreign.img')])).stdout.trim();

    const noPrune = await applyOnce({ configDir: b.host.configDir, dryRun: true });
    assert.deepEqual(noPrune.plan.actions, []);
    assert.ok(noPrune.plan.findings.some((f) => f.kind === 'loop-leaked' && f.loops?.some((l) => l.name === h.name)), JSON.stringify(noPrune.plan.findings));
    const withPrune = await applyOnce({ configDir: b.host.configDir, dryRun: true, prune: true });
    assert.deepEqual(
      withPrune.plan.actions.map((a) => (a.kind === 'free-loop' ? `${a.kind} ${a.loop.name} ${a.loop.diskseq}` : a.kind)),
      [`free-loop ${h.name} ${h.diskseq}`],
    );
    const r = await runCli(['apply', '--auto-approve', '--prune'], b.env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`freed /dev/${h.name}`));
    // LOOP_CLR_FD with an opener left (our fd here) is deferred: it goes when the last opener closes
    assert.ok(b.loops().has(h.name));
    reg.release('stray');
    await waitUntil(`${h.name} to be freed`, () => !b.loops().has(h.name));
    assert.ok(b.loops().has(foreign.replace('/dev/', '')), 'the foreign device is untouched');
    const after = await applyOnce({ configDir: b.host.configDir, dryRun: true, prune: true });
    assert.deepEqual(after.plan.actions, []);
  } finally {
    reg.closeAll();
    if (foreign) await exec('losetup', ['-d', foreign]).catch(() => {});
    await b.cleanup();
  }
});

test('free-loop of a device that is already gone (autoclear freed it, or its number was reused) is done, and touches nothing', async () => {
  const b = await startBench({ withBlockDevice: false });
  const reg = new LoopRegistry();
  let foreign: string | undefined;
  try {
    const f = join(b.host.imagesDir, 'gone.img');
    writeFileSync(f, '');
    truncateSync(f, 8 << 20);
    const h = await reg.acquire({ key: 'gone', source: f, readOnly: false });
    const ref = { name: h.name, diskseq: h.diskseq, backing: h.backing };
    reg.release('gone'); // our only fd: autoclear frees the device
    await waitUntil(`${h.name} to be freed`, () => !b.loops().has(h.name));
    const devices = new RegistryDevices(new LoopRegistry());
    assert.equal(await devices.free(ref), 'gone');
    // the number reused by somebody else (another diskseq): still "gone", and their device stays bound
    foreign = (await exec('losetup', ['--show', `/dev/${h.name}`, f])).stdout.trim();
    assert.equal(await devices.free(ref), 'gone');
    assert.ok(b.loops().has(h.name), 'the reused device is untouched');
  } finally {
    reg.closeAll();
    if (foreign) await exec('losetup', ['-d', foreign]).catch(() => {});
    await b.cleanup();
  }
});
