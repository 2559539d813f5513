// Terraform habits through the real binary against the simulator with real loop devices: saved plans
// (plan -out, show, apply FILE refused when stale), -target and -replace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBench, xvbd } from '../apply/helpers.js';

interface JAction {
  kind: string;
  domain?: string;
  disk?: { vdev: string };
}
const actionsOf = (json: string): string[] => (JSON.parse(json) as { actions: JAction[] }).actions.map((a) => `${a.kind} ${a.domain ?? ''} ${a.disk?.vdev ?? ''}`.trim());

test('saved plans: plan -out, show (text and --json), apply FILE; refused when the host, the config or a source changed', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const env = { ...b.env, XVBD_HOST: 'hv1' };
    const cfg = b.host.configDir;
    const f1 = join(b.dir, 'one.plan');

    // -out (Terraform's single dash) saves what plan prints
    let r = await xvbd(env, 'plan', '--config', cfg, '-out', f1, '--no-color');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^Saved the plan to ${f1.replace(/[.]/g, '\\.')}: \`xvbd apply `, 'm'));
    const planned = actionsOf((await xvbd(env, 'plan', '--config', cfg, '--json')).stdout);
    assert.ok(planned.length > 3);
    const saved = JSON.parse(readFileSync(f1, 'utf8')) as Record<string, unknown>;
    assert.equal(saved.format, 'xvbd-plan');
    assert.equal(saved.version, 1);
    assert.equal(saved.host, 'hv1');
    assert.equal(saved.configDir, cfg);
    assert.match(String(saved.desiredDigest), /^sha256:[0-9a-f]{64}$/);

    r = await xvbd(env, 'show', f1, '--no-color');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Saved plan ${f1.replace(/[.]/g, '\\.')}: made \\S+ on hv1 for the config in `, 'm'));
    assert.match(r.stdout, /\+\s+attach\s+web1 xvda/);
    r = await xvbd(env, 'show', f1, '--json');
    assert.deepEqual(actionsOf(r.stdout), planned);
    r = await xvbd(env, 'show', cfg + '/web.yaml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not a saved plan: not JSON/);
    assert.equal((await xvbd(env, 'show')).code, 2);

    // the options of a saved plan are its own; another machine's plan is refused
    r = await xvbd(env, 'apply', f1, '--prune');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /a saved plan is applied with the options it was made with: drop --prune/);
    r = await xvbd({ ...env, XVBD_HOST: 'hv2' }, 'apply', f1);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /was planned on host hv1; this is hv2: nothing was changed/);

    // a source replaced by another file (same path, same actions): what the plan touches changed
    const scratch = b.host.files.find((f) => f.endsWith('build-scratch.img'))!;
    copyFileSync(scratch, `${scratch}.new`);
    renameSync(`${scratch}.new`, scratch);
    r = await xvbd(env, 'apply', f1);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /the saved plan is stale: a backend, loop device, source or domain its actions touch changed since it was made; nothing was changed/);
    assert.equal(b.loops().size, 0, 'nothing attached');

    // planned again, applied: exactly those steps, without asking (no terminal here)
    r = await xvbd(env, 'plan', '--config', cfg, '--out', f1);
    assert.equal(r.code, 0);
    r = await xvbd(env, 'apply', f1);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^Saved plan \S+: still holds/m);
    assert.match(r.stdout, new RegExp(`^Apply complete: ${planned.length} of ${planned.length} steps done`, 'm'));
    assert.deepEqual(actionsOf((await xvbd(env, 'plan', '--config', cfg, '--json')).stdout), []);
    // applying it twice: the host changed (by itself)
    r = await xvbd(env, 'apply', f1);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the saved plan is stale: the host changed since it was made \(a plan now has 0 actions, not the \d+ actions saved\); nothing was changed/);

    // the config changed since: refused before anything is observed
    const img = join(b.host.imagesDir, 'web1-extra.img');
    writeFileSync(img, Buffer.alloc(1 << 20));
    const f2 = join(b.dir, 'two.plan');
    const web = join(cfg, 'web.yaml');
    const before = readFileSync(web, 'utf8');
    writeFileSync(web, before.replace(/^(name: web1\ndisks:\n)/m, `$1  - vdev: xvde\n    file: ${img}\n`));
    r = await xvbd(env, 'plan', '--config', cfg, '-out', f2, '--json');
    assert.deepEqual(actionsOf(r.stdout), ['attach web1 xvde']);
    assert.match(r.stderr, /^Saved the plan to /);
    writeFileSync(web, before);
    r = await xvbd(env, 'apply', f2);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the saved plan is stale: the desired state \(the config\) changed since it was made; nothing was changed/);
    r = await xvbd(env, 'apply', '--config', join(b.dir, 'elsewhere'), f2);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is a plan for the config in /);
    assert.ok(!existsSync(`${f2}.tmp-${process.pid}`));
  } finally {
    await b.cleanup();
  }
});

test('-target and -replace: one domain or disk at a time; one disk repaired without --prune, with its guards', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const env = b.env;
    const cfg = b.host.configDir;
    let r = await xvbd(env, 'plan', '--config', cfg, '-target', 'web1', '--target', 'build/xvdb', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(actionsOf(r.stdout), ['attach web1 xvda', 'attach web1 xvdb', 'attach web1 xvdc', 'attach build xvdb'].sort((x, y) => (x.includes('build') ? -1 : y.includes('build') ? 1 : 0)));
    const all = actionsOf((await xvbd(env, 'plan', '--config', cfg, '--json')).stdout);
    assert.equal((JSON.parse(r.stdout) as { targeted: { actionsLeftOut: number } }).targeted.actionsLeftOut, all.length - 4);
    r = await xvbd(env, 'plan', '--config', cfg, '--target', 'web1', '--no-color');
    assert.match(r.stdout, new RegExp(`^Targeting web1: ${all.length - 3} actions for the rest of the host left out`, 'm'));

    // bad addresses: a malformed one is a usage error, an unknown domain an error
    r = await xvbd(env, 'plan', '--config', cfg, '--target', 'web1/xvda/x');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--target "web1\/xvda\/x" is not DOMAIN or DOMAIN\/VDEV/);
    r = await xvbd(env, 'plan', '--config', cfg, '-replace', 'web1');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--replace "web1" names no disk: write DOMAIN\/VDEV/);
    r = await xvbd(env, 'apply', '--config', cfg, '--auto-approve', '--target', 'webb');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--target webb: no domain webb in the config or on the host/);

    // apply one domain: only it
    r = await xvbd(env, 'apply', '--config', cfg, '--auto-approve', '-target', 'web1');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^Apply complete: 3 of 3 steps done/m);
    const left = actionsOf((await xvbd(env, 'plan', '--config', cfg, '--json')).stdout);
    assert.equal(left.length, all.length - 3);
    assert.ok(left.every((a) => !a.includes('web1')));
    r = await xvbd(env, 'apply', '--config', cfg, '--auto-approve');
    assert.equal(r.code, 0, r.stdout + r.stderr);

    // two disks drift (mode): -replace repairs the one named, the other stays a warning
    const build = join(cfg, 'build.yaml');
    writeFileSync(build, readFileSync(build, 'utf8').replace(/(file: \S+build-private\.img\n)/, '$1    mode: ro\n'));
    const web = join(cfg, 'web.yaml');
    writeFileSync(web, readFileSync(web, 'utf8').replace(/(file: \S+web1-private\.img\n)/, '$1    mode: ro\n'));
    r = await xvbd(env, 'plan', '--config', cfg, '--json');
    assert.deepEqual(actionsOf(r.stdout), []);
    r = await xvbd(env, 'plan', '--config', cfg, '-replace', 'build/xvdb', '--no-color');
    assert.match(r.stdout, /~\s+replace\s+build xvdb/);
    assert.doesNotMatch(r.stdout, /replace\s+web1/);
    r = await xvbd(env, 'plan', '--config', cfg, '--replace', 'web2/xvda', '--no-color');
    assert.match(r.stdout, /^--replace web2\/xvda: no replace planned/m);
    r = await xvbd(env, 'apply', '--config', cfg, '--auto-approve', '--replace', 'build/xvdb');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^Apply complete: 1 of 1 step done \(1 replace\)/m);
    r = await xvbd(env, 'plan', '--config', cfg, '--json');
    const findings = (JSON.parse(r.stdout) as { findings: { kind: string; domain?: string }[] }).findings;
    assert.deepEqual(findings.filter((f) => f.kind === 'mode-mismatch').map((f) => f.domain), ['web1']);
  } finally {
    await b.cleanup();
  }
});
