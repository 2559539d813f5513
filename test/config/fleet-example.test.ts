// examples/fleet through the real CLI: `validate --fleet` (text and --json), each host's own view
// (`validate --host`), and a broken copy of the fleet failing with exactly the expected errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

test('examples/fleet validates as a fleet: one line per host, then the summary', () => {
  const p = xvbd(['validate', '--fleet', '--config', '.'], FLEET);
  assert.equal(p.stderr, '');
  assert.equal(p.status, 0);
  assert.equal(
    p.stdout,
    [
      'xen-a1: 1 domain (web1), 2 disks, Policy at policy.yaml:5:7',
      'xen-a2: 1 domain (web2), 2 disks, Policy at policy.yaml:5:7',
      'xen-b1: 1 domain (db), 2 disks, Policy at policy.yaml:15:7',
      'xen-b2: 2 domains (db, build), 4 disks, Policy at policy.yaml:15:7',
      '4 files, 4 hosts, 4 domains, 8 disks: valid',
      '',
    ].join('\n'),
  );
  const j = JSON.parse(xvbd(['validate', '--fleet', '--json', '--config', '.'], FLEET).stdout) as Record<string, unknown>;
  assert.deepEqual(
    { ...j, hosts: (j.hosts as { name: string; labels: object }[]).map((h) => [h.name, h.labels]) },
    {
      valid: true,
      config: '.',
      fleet: true,
      files: 4,
      hosts: [
        ['xen-a1', { rack: 'a', pool: 'web' }],
        ['xen-a2', { rack: 'a', pool: 'web' }],
        ['xen-b1', { rack: 'b', pool: 'db' }],
        ['xen-b2', { rack: 'b', pool: 'db' }],
      ],
      domains: 4,
      disks: 8,
      errors: [],
    },
  );
  for (const f of ['hosts.yaml', 'policy.yaml', 'web.yaml', 'db.yaml']) {
    assert.match(readFileSync(join(FLEET, f), 'utf8'), /^# yaml-language-server: \$schema=\.\.\/\.\.\/schemas\/xvbd-v1\.schema\.json\n/, f);
  }
});

test("examples/fleet: each host's view, by --host or $XVBD_HOST; a machine not in the fleet is refused", () => {
  assert.equal(xvbd(['validate', '--config', '.', '--host', 'xen-b2'], FLEET).stdout, 'host xen-b2: 4 files, 2 domains, 4 disks: valid\n');
  assert.equal(xvbd(['validate', '--config', '.'], FLEET, { XVBD_HOST: 'XEN-A1' }).stdout, 'host xen-a1: 4 files, 1 domain, 2 disks: valid\n');
  const p = xvbd(['validate', '--config', '.', '--host', 'xen-c1'], FLEET);
  assert.equal(p.status, 1);
  assert.equal(
    p.stderr,
    ".: host `xen-c1` is not one of the fleet's hosts (`xen-a1`, `xen-a2`, `xen-b1` and 1 more); did you mean `xen-a1`? add a `kind: Host` document with `name: xen-c1`, or pass --host NAME\n4 files, 0 domains, 0 disks: 1 error\n",
  );
  const u = xvbd(['validate', '--config', '.', '--fleet', '--host', 'xen-a1'], FLEET);
  assert.equal(u.status, 2);
});

test('a broken copy of examples/fleet fails with exactly the fleet errors, each with both places', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'xvbd-fleet-'));
  try {
    cpSync(FLEET, tmp, { recursive: true });
    const edit = (f: string, from: string, to: string) => {
      const t = readFileSync(join(tmp, f), 'utf8');
      assert.ok(t.includes(from), `${f} has ${from}`);
      writeFileSync(join(tmp, f), t.replace(from, to));
    };
    // web2 gets the database's image read-write; db no longer says it may migrate; a host nobody uses.
    edit('web.yaml', 'file: /var/lib/xvbd/images/web2-private.img', 'file: /srv/xvbd/db/db-data.img');
    edit('db.yaml', 'migratable: true\n', '');
    writeFileSync(join(tmp, 'hosts.yaml'), readFileSync(join(tmp, 'hosts.yaml'), 'utf8') + '---\napiVersion: xvbd/v1\nkind: Host\nname: xen-c1\n');
    const p = xvbd(['validate', '--fleet', '--config', '.'], tmp);
    assert.equal(p.status, 1);
    assert.equal(p.stdout, '');
    const lines = p.stderr.split('\n').filter((l) => l !== '');
    assert.deepEqual(
      lines.filter((l) => !l.startsWith(' ')),
      [
        'db.yaml:9:1: domain `db` is selected for hosts `xen-b1` and `xen-b2` and is not `migratable: true`; a domain runs on one host: select one, or say `migratable: true` if it moves between these',
        'hosts.yaml:41:7: host `xen-c1` is selected by no Domain document; a host of the fleet has at least one (a Domain without `hosts`, or whose `hosts` names it or matches its labels), or remove this Host document',
        'web.yaml:27:11: source `/srv/xvbd/db/db-data.img` is given read-write to domain `web2` on host `xen-a2` here and to domain `db` on host `xen-b1` at db.yaml:17:11; two hosts writing one image (on shared storage) corrupt it: give each its own image, or make one Domain document with `migratable: true` for a domain that moves between hosts',
        '4 files, 5 hosts, 4 domains, 8 disks: 3 errors',
      ],
    );
    assert.ok(lines.includes('  db.yaml:17:11: note: the use of `/srv/xvbd/db/db-data.img` (rw) on host `xen-b1` is here'), p.stderr);
    const j = JSON.parse(xvbd(['validate', '--fleet', '--json', '--config', '.'], tmp).stdout) as {
      valid: boolean;
      errors: { file: string; line: number; column: number; hosts?: string[]; related?: { file: string; line: number; column: number }[] }[];
    };
    assert.equal(j.valid, false);
    assert.deepEqual(
      j.errors.map((e) => [e.file, e.line, e.column, (e.related ?? []).map((r) => `${r.file}:${r.line}:${r.column}`), e.hosts]),
      [
        ['db.yaml', 9, 1, [], ['xen-b1', 'xen-b2']],
        ['hosts.yaml', 41, 7, [], ['xen-c1']],
        ['web.yaml', 27, 11, ['db.yaml:17:11'], ['xen-b1', 'xen-a2']],
      ],
    );
    // Each host alone sees none of it: these are the fleet's rules (xen-c1 is its own error).
    for (const h of ['xen-a2', 'xen-b1']) assert.equal(xvbd(['validate', '--config', '.', '--host', h], tmp).status, 0, h);
    assert.equal(xvbd(['validate', '--config', '.', '--host', 'xen-c1'], tmp).status, 1);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
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

test('the fleet examples of docs/config.md (```yml blocks) are a valid fleet together', async () => {
  const { checkFleetTexts, errorHeadline } = await import('../../src/config/index.js');
  const md = readFileSync(join(ROOT, 'docs/config.md'), 'utf8');
  const blocks = [...md.matchAll(/```yml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^apiVersion:/m.test(b));
  assert.ok(blocks.length >= 2);
  const r = checkFleetTexts(blocks.map((text, i) => ({ file: `block${i}.yaml`, text })));
  assert.equal(r.fleet, true);
  assert.deepEqual(r.errors.map(errorHeadline), []);
  assert.deepEqual(r.hosts.map((h) => [h.name, h.domains]), [
    ['xen-a1', ['db']],
    ['xen-b1', ['db']],
  ]);
});
