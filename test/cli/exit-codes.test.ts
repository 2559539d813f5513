// The exit codes a monitor relies on, through the real binary against the simulator with real loop
// devices: error findings (here a desired disk whose source is missing) make `plan --detailed-exitcode`,
// `status`, `apply` and `reconcile` (once) exit 3, even when changes were pending or made; once fixed,
// the old meanings (0 nothing to do, 2 changes) hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBench, xvbd } from '../apply/helpers.js';

test('error findings: plan --detailed-exitcode, status, apply and reconcile exit 3; fixed, 2 and 0 again', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const env = b.env;
    const cfg = b.host.configDir;
    const scratch = b.host.files.find((f) => f.endsWith('build-scratch.img'))!;
    const aside = `${scratch}.aside`;
    renameSync(scratch, aside);

    // Changes pending and an error finding: the error wins (3), and the plan still shows the changes.
    let r = await xvbd(env, 'plan', '--config', cfg, '--detailed-exitcode', '--no-color');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /! error source-missing: \S+build-scratch\.img does not exist/);
    assert.match(r.stdout, /\+\s+attach\s+web1 xvda/);
    r = await xvbd(env, 'plan', '--config', cfg, '--no-color');
    assert.equal(r.code, 0, 'without --detailed-exitcode a plan that could be made is success');
    r = await xvbd(env, 'status', '--config', cfg, '--no-color');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    r = await xvbd(env, 'status', '--config', cfg, '--json');
    assert.equal(r.code, 3, 'as JSON too');
    assert.ok((JSON.parse(r.stdout) as { findings: { kind: string; severity: string }[] }).findings.some((f) => f.kind === 'source-missing' && f.severity === 'error'));

    // apply does every step it can, then says what remains: exit 3, not "complete" and 0.
    r = await xvbd(env, 'apply', '--config', cfg, '--auto-approve');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /^Apply complete: (\d+) of \1 steps done/m);
    assert.match(r.stdout, /^But 1 error finding remains \(what apply cannot fix\):\n\s+! error source-missing: \S+build-scratch\.img does not exist/m);
    // nothing left to do, the finding remains: apply and reconcile (once) say 3, plan too
    r = await xvbd(env, 'apply', '--config', cfg, '--auto-approve');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /^No changes\. Nothing to do here, but an error finding needs you/m);
    r = await xvbd(env, 'reconcile', '--config', cfg, '--local');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /^1 error finding remains \(xvbd status shows them all\):\n\s+! error source-missing: \S+build-scratch\.img/m);
    r = await xvbd(env, 'plan', '--config', cfg, '--detailed-exitcode');
    assert.equal(r.code, 3);

    // The source is back: reconcile attaches it (2), then everything is converged (0 for all).
    renameSync(aside, scratch);
    r = await xvbd(env, 'plan', '--config', cfg, '--detailed-exitcode');
    assert.equal(r.code, 2, r.stdout + r.stderr);
    r = await xvbd(env, 'reconcile', '--config', cfg, '--local', '--json');
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { errorFindingsAfter: unknown[] }).errorFindingsAfter, []);
    for (const args of [['plan', '--detailed-exitcode'], ['status'], ['reconcile', '--local'], ['apply', '--auto-approve']]) {
      r = await xvbd(env, ...args, '--config', cfg);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    }

    // A new domain's disk attached by the same pass that finds another of its sources missing: 3.
    const img = join(b.host.imagesDir, 'db-new.img');
    writeFileSync(img, '');
    truncateSync(img, 4 << 20);
    writeFileSync(
      join(cfg, 'db.yaml'),
      `apiVersion: xvbd/v1\nkind: Domain\nname: db\ndisks:\n  - vdev: xvda\n    file: ${img}\n  - vdev: xvdb\n    file: ${join(b.host.imagesDir, 'db-missing.img')}\n`,
    );
    r = await xvbd(env, 'reconcile', '--config', cfg, '--local');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /1\/1 done: \+attach db xvda/);
    assert.match(r.stderr, /! error source-missing: \S+db-missing\.img does not exist/);
  } finally {
    await b.cleanup();
  }
});
