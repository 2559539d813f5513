// Prune never destroys data, end to end: a read-write image deleted while attached (the loop device holds
// the only copy) and a new empty file at its path. plan --prune proposes nothing for it and says how to
// save the data, apply --prune leaves the device and its data alone, the advised dd really saves it, and
// only --allow-data-loss lets the replace happen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { applyOnce } from '../../src/wire/session.js';
import type { Plan } from '../../src/model/plan.js';
import { runCli, startBench, waitUntil } from '../apply/helpers.js';

const PRECIOUS = 'only copy of web1 private data\n';

function readHead(path: string, n: number): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, 0);
    return buf.toString();
  } finally {
    closeSync(fd);
  }
}

test('prune: an attached image deleted and re-created empty is neither replaced nor freed without --allow-data-loss', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    assert.ok((await applyOnce({ configDir: b.host.configDir })).result?.ok);
    const be = '/local/domain/0/backend/vbd/1/51728'; // web1 xvdb: web1-private.img, read-write
    const image = join(b.host.imagesDir, 'web1-private.img');
    const dev = b.sim.read(`${be}/physical-device-path`)!;
    const name = dev.slice('/dev/'.length);
    const diskseq = b.sim.read(`${be}/diskseq`);
    // the guest's data, written through the device
    const fd = openSync(dev, 'r+');
    writeSync(fd, PRECIOUS, 0);
    closeSync(fd);
    // the image is deleted while attached, and an empty file takes its path
    rmSync(image);
    writeFileSync(image, '');
    truncateSync(image, 8 << 20);

    const p = await runCli(['plan', '--prune', '--json'], b.env);
    assert.equal(p.code, 0, p.out);
    const planned = JSON.parse(p.out) as Plan;
    assert.deepEqual(planned.actions.filter((a) => 'backend' in a && a.backend.path === be), [], 'no action on the disk');
    const refused = planned.findings.find((f) => f.kind === 'data-loss-refused');
    assert.ok(refused, JSON.stringify(planned.findings));
    assert.equal(refused.severity, 'error');
    assert.match(refused.fix, new RegExp(`dd if=${dev} of=${image}\\.rescued`));
    const text = await runCli(['plan', '--prune'], b.env);
    assert.match(text.out, /data-loss-refused/);
    assert.doesNotMatch(text.out, /~ +replace.*xvdb/);

    // one more disk to attach in the same apply: it runs its steps, then says the refusal remains
    const dbImg = join(b.host.imagesDir, 'db-new.img');
    writeFileSync(dbImg, '');
    truncateSync(dbImg, 8 << 20);
    writeFileSync(join(b.host.configDir, 'db.yaml'), `apiVersion: xvbd/v1\nkind: Domain\nname: db\ndisks:\n  - vdev: xvda\n    file: ${dbImg}\n`);
    const r = await runCli(['apply', '--auto-approve', '--prune'], b.env);
    assert.equal(r.code, 3, `the refusal is an error finding that remains: ${r.out}`);
    assert.match(r.out, /^Apply complete: 1 of 1 step done \(1 attach\)\.$/m);
    assert.match(r.out, /^But 1 error finding remains \(what apply cannot fix\):\n\s+! error data-loss-refused: web1 xvdb: /m);
    assert.equal(b.sim.read(`${be}/physical-device-path`), dev, 'the backend still names the device');
    assert.equal(b.sim.read(`${be}/diskseq`), diskseq);
    assert.match(readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim(), / \(deleted\)$/);
    assert.equal(readHead(dev, PRECIOUS.length), PRECIOUS, 'the data is still there');

    // the advice works: the command the finding gives saves the data
    const dd = /dd if=\S+ of=\S+ bs=1M conv=sparse/.exec(refused.fix)![0];
    execFileSync('sh', ['-c', `${dd} status=none`]);
    assert.equal(readHead(`${image}.rescued`, PRECIOUS.length), PRECIOUS);

    // only now, and only by explicit choice
    const allowed = await runCli(['plan', '--prune', '--allow-data-loss', '--json'], b.env);
    const ap = JSON.parse(allowed.out) as Plan;
    assert.deepEqual(ap.actions.filter((a) => 'backend' in a && a.backend.path === be).map((a) => a.kind), ['replace']);
    const r2 = await runCli(['apply', '--auto-approve', '--prune', '--allow-data-loss'], b.env);
    assert.equal(r2.code, 0, r2.out);
    await waitUntil('the deleted file\'s device to be freed', () => ![...b.loops().values()].some((f) => f.endsWith(' (deleted)')), 10_000);
    const now = b.sim.read(`${be}/physical-device-path`)!;
    assert.equal(readFileSync(`/sys/block/${now.slice(5)}/loop/backing_file`, 'utf8').trim(), image);
  } finally {
    await b.cleanup();
  }
});

test('prune: an unused loop device of ours whose file was deleted is not freed without --allow-data-loss', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    assert.ok((await applyOnce({ configDir: b.host.configDir })).result?.ok);
    const be = '/local/domain/0/backend/vbd/1/51728';
    const image = join(b.host.imagesDir, 'web1-private.img');
    const dev = b.sim.read(`${be}/physical-device-path`)!;
    // the device stays bound without a backend while this test holds it; then the file goes
    const hold = openSync(dev, 'r');
    try {
      await b.xs.rm(`/local/domain/1/device/vbd/51728`);
      await b.xs.rm(be);
      await b.sim.settle();
      rmSync(image);
      const web = join(b.host.configDir, 'web.yaml');
      // the disk is no longer desired either: only the loop device is left to judge
      const entry = `  - vdev: xvdb\n    file: ${image}\n`;
      const yaml = readFileSync(web, 'utf8');
      assert.ok(yaml.includes(entry));
      writeFileSync(web, yaml.replace(entry, ''));
      const p = await applyOnce({ configDir: b.host.configDir, dryRun: true, prune: true });
      assert.deepEqual(p.plan.actions.filter((a) => a.kind === 'free-loop').map((a) => a.kind === 'free-loop' && `/dev/${a.loop.name}`), []);
      const f = p.plan.findings.find((x) => x.kind === 'data-loss-refused');
      assert.ok(f && f.loops?.[0] && `/dev/${f.loops[0].name}` === dev, JSON.stringify(p.plan.findings));
      const allowed = await applyOnce({ configDir: b.host.configDir, dryRun: true, prune: true, allowDataLoss: true });
      assert.deepEqual(allowed.plan.actions.filter((a) => a.kind === 'free-loop').map((a) => a.kind === 'free-loop' && `/dev/${a.loop.name}`), [dev]);
    } finally {
      closeSync(hold);
    }
  } finally {
    await b.cleanup();
  }
});
