// `xvbd plan` and `xvbd status` end to end: the simulator on a socket, nodes written with the real
// xenstore-write, real loop devices of our own, the real CLI as a child process.
// Loop devices are host-wide (other engineers' tests create theirs concurrently), so assertions only
// look at lines about this test's own files and domains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plan } from '../../src/model/plan.js';
import { setup, type Env } from '../observe/helpers.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const XVDA = 51712;
const XVDB = 51728;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function xvbd(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return new Promise((res) => {
    execFile(process.execPath, [MAIN, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

function writeConfig(e: Env, files: Record<string, string>): string {
  const dir = join(e.dir, 'cfg');
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function config(e: Env): string {
  return writeConfig(e, {
    'web.yaml': `apiVersion: xvbd/v1
kind: Domain
name: web
disks:
  - vdev: xvda
    file: ${join(e.dir, 'web.img')}
  - vdev: xvdb
    file: ${join(e.dir, 'base.img')}
    mode: ro
`,
    'db.yaml': `apiVersion: xvbd/v1
kind: Domain
name: db
disks:
  - vdev: xvdb
    file: ${join(e.dir, 'base.img')}
    mode: ro
`,
    'mail.yaml': `apiVersion: xvbd/v1
kind: Domain
name: mail
disks:
  - vdev: xvda
    file: ${join(e.dir, 'mail.img')}
`,
  });
}

/** Lines of the output that are about this test (its dir, its domains). */
function ours(e: Env, text: string): string[] {
  return text.split('\n').filter((l) => l.includes(e.dir) || /\b(web|db|mail)\b/.test(l));
}

test('xvbd plan / status: from nothing to converged, text, JSON and exit codes', async () => {
  const e = await setup('cli', [
    { name: 'web', domid: 3 },
    { name: 'db', domid: 4 },
  ]);
  try {
    const webImg = e.image('web.img');
    const base = e.image('base.img');
    e.image('mail.img');
    const cfg = config(e);

    // 1. Nothing attached yet: three attaches (mail is not running).
    let r = await xvbd(e.env, 'plan', '--config', cfg, '--detailed-exitcode', '--no-color');
    assert.equal(r.code, 2, r.stderr);
    const lines = ours(e, r.stdout);
    // the plan says what apply then does: one loop device for base.img, shared by both read-only disks
    assert.ok(lines.some((l) => /^\s+\+\s+attach\s+db xvdb\s+\S+base\.img \(ro\)\s+new loop device, shared read-only with 1 more disk$/.test(l)), r.stdout);
    assert.ok(lines.some((l) => /^\s+\+\s+attach\s+web xvda\s+\S+web\.img \(rw\)/.test(l)), r.stdout);
    assert.ok(lines.some((l) => /^\s+\+\s+attach\s+web xvdb\s+\S+base\.img \(ro\)\s+shares the new loop device of db xvdb$/.test(l)), r.stdout);
    assert.match(r.stdout, /^xvbd plan: \S+ \(4 desired disks in 3 domains\); observed 0 vbd backends, /m);
    assert.ok(lines.some((l) => /! info domain-not-running: mail is not running/.test(l)), r.stdout);
    assert.match(r.stdout, /^Plan: 3 to attach, 0 to change, 0 to detach; \d+ findings?$/m);
    // Without --detailed-exitcode, changes are still success.
    r = await xvbd(e.env, 'plan', '--config', cfg);
    assert.equal(r.code, 0, r.stderr);

    // 2. web xvda and both base.img disks served by xvbd (one shared ro loop): 0 to attach.
    const lw = await e.loop(webImg, false);
    const lb = await e.loop(base, true);
    const served = (l: typeof lw, path: string, mode: string) => {
      const ino = e.inode(path);
      return {
        params: path,
        mode,
        'physical-device': l.hex,
        'physical-device-path': `/dev/${l.name}`,
        node: `/dev/${l.name}`,
        diskseq: l.diskseq,
        xvbd: '1',
        'xvbd-inode': `${ino.dev}:${ino.ino}`,
        'hotplug-status': 'connected',
      };
    };
    await e.vbd(3, XVDA, served(lw, webImg, 'w'));
    await e.vbd(3, XVDB, served(lb, base, 'r'));
    await e.vbd(4, XVDB, served(lb, base, 'r'));
    await e.keep(lw, 3, XVDA);
    await e.keep(lb, 3, XVDB);
    await e.keep(lb, 4, XVDB);
    await e.sim.settle();
    r = await xvbd(e.env, 'plan', '--config', cfg, '--detailed-exitcode', '--no-color');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^No changes\./m);
    assert.match(r.stdout, /^Plan: 0 to attach, 0 to change, 0 to detach;/m);

    // status: synced, progressing until the guests connect; shared loop counted.
    r = await xvbd(e.env, 'status', '--config', cfg, '--no-color');
    assert.equal(r.code, 0, r.stderr);
    const row = (dom: string, vdev: string) => r.stdout.split('\n').find((l) => new RegExp(`^${dom}\\s+\\S+\\s+${vdev}\\s`).test(l)) ?? '';
    assert.match(row('web', 'xvda'), new RegExp(`\\brw\\s+synced\\s+progressing\\s+${lw.name}\\s+${lw.diskseq}\\s+1\\s+InitWait\\s+Initialising`));
    assert.match(row('web', 'xvdb'), new RegExp(`\\bro\\s+synced\\s+progressing\\s+${lb.name}\\s+${lb.diskseq}\\s+2\\s`));
    assert.match(row('mail', 'xvda'), /\bpending\s+missing\b.*domain not running/);
    for (const [fe, devid] of [
      [3, XVDA],
      [3, XVDB],
      [4, XVDB],
    ] as const) {
      await e.sim.frontend(fe, devid).connect();
    }
    await e.sim.settle();
    r = await xvbd(e.env, 'status', '--config', cfg, '--json');
    assert.equal(r.code, 0, r.stderr);
    const st = JSON.parse(r.stdout) as { disks: Plan['disks']; findings: Plan['findings'] };
    const byKey = new Map(st.disks.map((d) => [`${d.domain} ${d.vdev}`, d]));
    for (const k of ['web xvda', 'web xvdb', 'db xvdb']) {
      assert.equal(byKey.get(k)!.sync, 'synced', k);
      assert.equal(byKey.get(k)!.health, 'healthy', k);
    }
    assert.equal(byKey.get('web xvdb')!.sharedBy, 2);
    assert.equal(byKey.get('mail xvda')!.sync, 'pending');

    // 3. Drift: the config now wants web xvda read-only -> a mode-mismatch finding, no action
    // (no prune); with --prune it becomes a replace; --json carries the same plan.
    writeConfig(e, { 'web.yaml': `apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: xvda\n    file: ${webImg}\n    mode: ro\n  - vdev: xvdb\n    file: ${base}\n    mode: ro\n` });
    r = await xvbd(e.env, 'plan', '--config', cfg, '--detailed-exitcode', '--no-color');
    assert.equal(r.code, 0, 'a finding alone is nothing to do');
    assert.ok(ours(e, r.stdout).some((l) => /! warning mode-mismatch: web xvda: mode rw, desired ro/.test(l)), r.stdout);
    r = await xvbd(e.env, 'plan', '--config', cfg, '--detailed-exitcode', '--prune', '--no-color');
    assert.equal(r.code, 2);
    assert.ok(ours(e, r.stdout).some((l) => /^\s+~\s+replace\s+web xvda\s+\S+web\.img \(ro\)\s+mode rw, desired ro$/.test(l)), r.stdout);
    r = await xvbd(e.env, 'plan', '--config', cfg, '--json', '--prune');
    const p = JSON.parse(r.stdout) as Plan;
    const mine = p.actions.filter((a) => a.kind !== 'free-loop');
    assert.deepEqual(
      mine.map((a) => [a.kind, a.kind === 'replace' ? a.backend.path : '']),
      [['replace', `/local/domain/0/backend/vbd/3/${XVDA}`]],
    );
  } finally {
    await e.close();
  }
});

test('xvbd plan / status: invalid config, unreachable xenstore, usage', async () => {
  const e = await setup('cli-err', [{ name: 'web', domid: 3 }]);
  try {
    const bad = writeConfig(e, { 'web.yaml': 'apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: nonsense\n    file: relative.img\n' });
    for (const cmd of ['plan', 'status']) {
      const r = await xvbd(e.env, cmd, '--config', bad, ...(cmd === 'plan' ? ['--detailed-exitcode'] : []));
      assert.equal(r.code, 1, `${cmd}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /config in .* is invalid/);
      if (cmd === 'plan') {
        assert.match(r.stderr, /web\.yaml:5:\d+: /, 'the config errors are printed compiler-style');
        assert.equal(r.stdout, '');
      } else {
        // status shows the observed host all the same, the errors on top (test/cli/status-broken)
        assert.match(r.stdout, /^The config in .* is invalid \(2 errors\)\. Showing the observed host only/);
        assert.match(r.stdout, /web\.yaml:5:\d+: /, 'the config errors are printed compiler-style');
      }
      const j = await xvbd(e.env, cmd, '--config', bad, '--json');
      assert.equal(j.code, 1);
      type Errs = { valid: boolean; errors: { file: string; line: number; message: string }[] };
      // plan prints {valid: false, errors}; status its status document with config: {valid: false, errors}
      const doc = JSON.parse(j.stdout) as Errs & { config?: Errs };
      const out = cmd === 'plan' ? doc : doc.config!;
      assert.equal(out.valid, false);
      assert.ok(out.errors.some((x) => x.file.endsWith('web.yaml') && x.line === 5), j.stdout);
    }
    const good = writeConfig(e, { 'web.yaml': `apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: xvda\n    file: ${join(e.dir, 'x.img')}\n` });
    const r = await xvbd({ ...e.env, XENSTORED_PATH: join(e.dir, 'no-such.sock') }, 'plan', '--config', good);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read xenstore/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    // A regular file as the "device": the connection fails mid-walk; still a clean error.
    const notSock = join(e.dir, 'not-a-socket');
    writeFileSync(notSock, '\n');
    for (const cmd of ['plan', 'status']) {
      const r2 = await xvbd({ ...e.env, XENSTORED_PATH: notSock }, cmd, '--config', good);
      assert.equal(r2.code, 1, r2.stderr);
      assert.match(r2.stderr, /cannot read xenstore/);
      assert.doesNotMatch(r2.stderr, /\n\s+at /, 'no stack trace');
    }
    const h = await xvbd(e.env, 'plan', '--help');
    assert.equal(h.code, 0);
    assert.match(h.stdout, /--detailed-exitcode/);
    const s = await xvbd(e.env, 'status', '--help');
    assert.equal(s.code, 0);
    assert.match(s.stdout, /HEALTH/);
    const u = await xvbd(e.env, 'plan', '--bogus');
    assert.equal(u.code, 2, 'a usage error');
    assert.equal(u.stderr, 'xvbd plan: unknown option --bogus; see `xvbd plan --help`\n');
    // XVBD_CONFIG is honoured when --config is absent.
    const viaEnv = await xvbd({ ...e.env, XVBD_CONFIG: good }, 'plan', '--no-color');
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.match(viaEnv.stdout, /source-missing: \S+x\.img does not exist/);
  } finally {
    await e.close();
  }
});
