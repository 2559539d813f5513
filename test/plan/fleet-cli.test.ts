// A fleet directory through `xvbd plan` / `xvbd status` against the simulator: each host plans only
// what selects it (--host, $XVBD_HOST), a machine not in the fleet is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plan } from '../../src/model/plan.js';
import { setup, type Env } from '../observe/helpers.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function xvbd(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return new Promise((res) => {
    execFile(process.execPath, [MAIN, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

/** Two hosts; web for fleet-t-a1, db for every host labelled pool: db (fleet-t-a2). */
export function fleetConfig(e: Env): string {
  const dir = join(e.dir, 'fleet');
  mkdirSync(dir, { recursive: true });
  e.image('web.img');
  e.image('db.img');
  writeFileSync(
    join(dir, 'hosts.yaml'),
    'apiVersion: xvbd/v1\nkind: Host\nname: fleet-t-a1\n---\napiVersion: xvbd/v1\nkind: Host\nname: fleet-t-a2\nlabels:\n  pool: db\n',
  );
  writeFileSync(join(dir, 'policy.yaml'), `apiVersion: xvbd/v1\nkind: Policy\nallowedRoots: [${e.dir}]\nserve: attach\n`);
  writeFileSync(
    join(dir, 'domains.yaml'),
    `apiVersion: xvbd/v1\nkind: Domain\nname: web\nhosts:\n  names: [fleet-t-a1]\ndisks:\n  - vdev: xvda\n    file: ${join(e.dir, 'web.img')}\n---\n` +
      `apiVersion: xvbd/v1\nkind: Domain\nname: db\nhosts:\n  labels: {pool: db}\ndisks:\n  - vdev: xvda\n    file: ${join(e.dir, 'db.img')}\n`,
  );
  return dir;
}

const attaches = (p: Plan) => p.actions.filter((a) => a.kind === 'attach').map((a) => (a.kind === 'attach' ? `${a.domain} ${a.disk.vdev}` : ''));

test('plan / status --host: each host of a fleet directory plans only the domains that select it', async () => {
  const e = await setup('fleet', [
    { name: 'web', domid: 3 },
    { name: 'db', domid: 4 },
  ]);
  try {
    const cfg = fleetConfig(e);
    const env = { ...e.env };
    delete env.XVBD_HOST;
    let r = await xvbd(env, 'plan', '--config', cfg, '--host', 'fleet-t-a1', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(attaches(JSON.parse(r.stdout) as Plan), ['web xvda']);
    r = await xvbd({ ...env, XVBD_HOST: 'FLEET-T-A2' }, 'plan', '--config', cfg, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(attaches(JSON.parse(r.stdout) as Plan), ['db xvda']);
    r = await xvbd(env, 'status', '--config', cfg, '--host', 'fleet-t-a2', '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as Plan).disks.map((d) => `${d.domain} ${d.vdev} ${d.sync}`), ['db xvda out-of-sync']);
    // A host the fleet does not declare: refused, nothing planned, the hosts named.
    r = await xvbd(env, 'plan', '--config', cfg, '--host', 'fleet-t-zz');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /host `fleet-t-zz` is not one of the fleet's hosts \(`fleet-t-a1` and `fleet-t-a2`\)/);
    assert.match(r.stderr, /is invalid \(1 error\); nothing was planned/);
    r = await xvbd(env, 'plan', '--config', cfg, '--host', '');
    assert.equal(r.code, 2, 'a usage error');
    assert.match(r.stderr, /--host needs a value, and it is empty/);
  } finally {
    await e.close();
  }
});

test('status --json records a host (a document valid against its schema); plan --observed plans against it without xenstore', async () => {
  const { statusValidator } = await import('../../src/observe/recording.js');
  const e = await setup('fleet-rec', [
    { name: 'web', domid: 3 },
    { name: 'db', domid: 4 },
  ]);
  try {
    const cfg = fleetConfig(e);
    const env: NodeJS.ProcessEnv = { ...e.env, XVBD_KEEPER_XS_LOST_EXIT_MS: '500' };
    delete env.XVBD_HOST;
    const a1 = ['--config', cfg, '--host', 'fleet-t-a1'];
    let r = await xvbd(env, 'apply', ...a1, '--auto-approve');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await e.sim.settle();
    r = await xvbd(env, 'status', ...a1, '--json');
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as Record<string, unknown> & { observed: { backends: unknown[]; loops: { keptBy?: string[] }[] } };
    const v = statusValidator();
    assert.ok(v(doc), JSON.stringify(v.errors));
    assert.equal(doc.apiVersion, 'xvbd/v1');
    assert.equal(doc.kind, 'Status');
    assert.equal(doc.hostName, 'fleet-t-a1');
    assert.equal(doc.observed.backends.length, 1);
    assert.deepEqual(doc.observed.loops.map((l) => l.keptBy), [['keeper-a', 'keeper-b']]);
    const file = join(e.dir, 'fleet-t-a1.status.json');
    writeFileSync(file, r.stdout);

    // CI: no xenstore, no keepers; the host comes from the recording.
    const ci: NodeJS.ProcessEnv = { ...env, XENSTORED_PATH: join(e.dir, 'no-such.sock'), XVBD_RUN_DIR: join(e.dir, 'ci-run') };
    r = await xvbd(ci, 'plan', '--config', cfg, '--observed', file, '--detailed-exitcode', '--no-color');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^xvbd plan: ${cfg} for host fleet-t-a1 \\(1 desired disk in 1 domain\\); against ${file}, recorded on fleet-t-a1 at \\S+Z: 1 vbd backends, 1 loop devices$`, 'm'));
    assert.match(r.stdout, /^No changes\./m);

    // A commit that makes web's disk read-only and gives it a second disk on a new image.
    writeFileSync(
      join(cfg, 'domains.yaml'),
      `apiVersion: xvbd/v1\nkind: Domain\nname: web\nhosts:\n  names: [fleet-t-a1]\ndisks:\n  - vdev: xvda\n    file: ${join(e.dir, 'web.img')}\n    mode: ro\n  - vdev: xvdb\n    file: ${join(e.dir, 'new.img')}\n---\n` +
        `apiVersion: xvbd/v1\nkind: Domain\nname: db\nhosts:\n  labels: {pool: db}\ndisks:\n  - vdev: xvda\n    file: ${join(e.dir, 'db.img')}\n`,
    );
    e.image('new.img');
    r = await xvbd(ci, 'plan', '--config', cfg, '--observed', file, '--prune', '--json');
    assert.equal(r.code, 0, r.stderr);
    const recorded = JSON.parse(r.stdout) as Plan & { observedFrom: { hostName: string; unobservedSources: string[] } };
    assert.deepEqual(recorded.observedFrom.unobservedSources, [join(e.dir, 'new.img')]);
    assert.deepEqual(recorded.actions.map((a) => a.kind), ['replace']);
    assert.ok(recorded.findings.some((f) => f.kind === 'source-missing' && f.source === join(e.dir, 'new.img')));
    r = await xvbd(ci, 'plan', '--config', cfg, '--observed', file, '--prune', '--no-color');
    assert.match(r.stdout, new RegExp(`^note: the recording did not look at 1 source this config names \\(${join(e.dir, 'new.img')}\\): planned as missing;`, 'm'));
    // The live plan on the host agrees on what the recording saw.
    r = await xvbd(env, 'plan', ...a1, '--prune', '--json');
    const live = JSON.parse(r.stdout) as Plan;
    assert.deepEqual(live.actions.filter((a) => a.kind === 'replace'), recorded.actions);

    // Refusals: another host's recording, not a status document, an old status, a broken one.
    r = await xvbd(ci, 'plan', '--config', cfg, '--observed', file, '--host', 'fleet-t-a2');
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${file} was recorded on host fleet-t-a1, not fleet-t-a2`));
    const bad = join(e.dir, 'bad.json');
    const cases: [string, string][] = [
      ['[1]', 'not an `xvbd status --json` document \\(not a JSON object\\)'],
      ['{"disks": [], "findings": [], "host": {}}', 'recorded by an xvbd from before status documents had `apiVersion` and `observed`'],
      ['{"apiVersion": "xvbd/v1", "kind": "Plan"}', 'not an `xvbd status --json` document \\(it needs `apiVersion: xvbd/v1` and `kind: Status`\\)'],
      [JSON.stringify({ ...doc, observed: { ...doc.observed, loops: [{ name: 'loop0' }] } }), 'does not match schemas/xvbd-status-v1.schema.json: /observed/loops/0 must have required property'],
      ['{', 'not JSON'],
    ];
    for (const [text, msg] of cases) {
      writeFileSync(bad, text);
      r = await xvbd(ci, 'plan', '--config', cfg, '--observed', bad);
      assert.equal(r.code, 1, text);
      assert.match(r.stderr, new RegExp(`^xvbd plan: ${bad}: ${msg}`), r.stderr);
    }
    r = await xvbd(ci, 'plan', '--config', cfg, '--observed', join(e.dir, 'nope.json'));
    assert.match(r.stderr, /nope\.json: cannot read it \(ENOENT\)/);
  } finally {
    await e.close();
  }
});
