import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOnce } from '../../src/wire/session.js';
import { runCli, startBench, waitUntil } from './helpers.js';

test('replace: a new source and a flipped mode are detached and attached again with prune; old devices freed', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    assert.ok((await applyOnce({ configDir: b.host.configDir })).result?.ok);
    const web1 = 1;
    const privBe = `/local/domain/0/backend/vbd/${web1}/51728`;
    const scratchBe = `/local/domain/0/backend/vbd/${web1}/51744`;
    const next = join(b.host.imagesDir, 'web1-private-v2.img');
    writeFileSync(next, '');
    truncateSync(next, 8 << 20);
    const f = join(b.host.configDir, 'web.yaml');
    let text = readFileSync(f, 'utf8');
    text = text.replace(join(b.host.imagesDir, 'web1-private.img'), next);
    // web1's scratch disk becomes read-only: find its entry and add `mode: ro`
    const at = text.indexOf(join(b.host.imagesDir, 'web1-scratch.img'));
    const eol = text.indexOf('\n', at);
    text = text.slice(0, eol + 1) + '    mode: ro\n' + text.slice(eol + 1);
    writeFileSync(f, text);

    const dry = await applyOnce({ configDir: b.host.configDir, dryRun: true, prune: true });
    assert.deepEqual(dry.plan.actions.map((a) => `${a.kind} ${'disk' in a ? a.disk.vdev : ''}`).sort(), ['replace xvdb', 'replace xvdc']);
    const r = await runCli(['apply', '--auto-approve', '--prune'], b.env);
    assert.equal(r.code, 0, r.out);
    assert.equal(b.sim.read(`${privBe}/params`), next);
    assert.equal(b.sim.read(`${scratchBe}/mode`), 'r');
    const newPriv = b.sim.read(`${privBe}/physical-device-path`)!.slice(5);
    assert.equal(readFileSync(`/sys/block/${newPriv}/loop/backing_file`, 'utf8').trim(), next);
    const newScratch = b.sim.read(`${scratchBe}/physical-device-path`)!.slice(5);
    assert.equal(readFileSync(`/sys/block/${newScratch}/ro`, 'utf8').trim(), '1');
    // the old private image has no device any more; the scratch image has exactly one, the new read-only one
    await waitUntil('the old devices to be freed', () => {
      const files = [...b.loops().values()];
      return !files.includes(join(b.host.imagesDir, 'web1-private.img')) && files.filter((x) => x === join(b.host.imagesDir, 'web1-scratch.img')).length === 1;
    });
    assert.equal(b.loops().get(newScratch), join(b.host.imagesDir, 'web1-scratch.img'));
    const after = await applyOnce({ configDir: b.host.configDir, dryRun: true, prune: true });
    assert.deepEqual(after.plan.actions, []);
  } finally {
    await b.cleanup();
  }
});
