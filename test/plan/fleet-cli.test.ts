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
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--host needs a host name/);
  } finally {
    await e.close();
  }
});
