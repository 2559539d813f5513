// examples/fleet through the real CLI: each host's own view (`validate --host`, $XVBD_HOST).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const FLEET = join(ROOT, 'examples/fleet');

function xvbd(args: string[], cwd = ROOT, env: Record<string, string> = {}) {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete e.XVBD_CONFIG;
  if (!env.XVBD_HOST) delete e.XVBD_HOST;
  return spawnSync(process.execPath, [CLI, ...args, '--no-color'], { cwd, encoding: 'utf8', env: e });
}

test("examples/fleet: each host's view, by --host or $XVBD_HOST; a machine not in the fleet is refused", () => {
  assert.equal(xvbd(['validate', '--config', '.', '--host', 'xen-b2'], FLEET).stdout, 'host xen-b2: 4 files, 2 domains, 4 disks: valid\n');
  assert.equal(xvbd(['validate', '--config', '.'], FLEET, { XVBD_HOST: 'XEN-A1' }).stdout, 'host xen-a1: 4 files, 1 domain, 2 disks: valid\n');
  const p = xvbd(['validate', '--config', '.', '--host', 'xen-c1'], FLEET);
  assert.equal(p.status, 1);
  assert.equal(
    p.stderr,
    ".: host `xen-c1` is not one of the fleet's hosts (`xen-a1`, `xen-a2`, `xen-b1` and 1 more); did you mean `xen-a1`? add a `kind: Host` document with `name: xen-c1`, or pass --host NAME\n4 files, 0 domains, 0 disks: 1 error\n",
  );
  for (const h of ['xen-a1', 'xen-a2', 'xen-b1', 'xen-b2']) assert.equal(xvbd(['validate', '--config', '.', '--host', h], FLEET).status, 0, h);
});

test('examples/fleet: ConfigCache (the daemon, the hook server) loads the host it is given, else $XVBD_HOST', async () => {
  const { ConfigCache } = await import('../../src/config/index.js');
  const b2 = await new ConfigCache(FLEET, { host: 'xen-b2' }).load();
  assert.deepEqual(b2.desired?.domains.map((d) => d.name), ['db', 'build']);
  assert.equal(b2.desired?.policy.serve, 'hook');
  const saved = process.env.XVBD_HOST;
  process.env.XVBD_HOST = 'xen-a2';
  try {
    const a2 = await new ConfigCache(FLEET).load();
    assert.deepEqual(a2.desired?.domains.map((d) => d.name), ['web2']);
    assert.equal(a2.desired?.policy.serve, 'both');
  } finally {
    if (saved === undefined) delete process.env.XVBD_HOST;
    else process.env.XVBD_HOST = saved;
  }
});
