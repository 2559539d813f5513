// `xvbd status` with a broken config: the observed host all the same (xvbd's backends, the findings that
// need no desired state), the config's errors on top, exit 1; a missing config directory is called
// missing, not invalid. Real CLI, the simulator, a real loop device of our own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plan } from '../../src/model/plan.js';
import { setup } from '../observe/helpers.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const XVDA = 51712;
const XVDB = 51728;

function xvbd(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [MAIN, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

test('xvbd status with an invalid or missing config shows the observed host, the config trouble on top', async () => {
  const e = await setup('status-broken', [{ name: 'web', domid: 3 }]);
  try {
    // web xvda: served by a loop device of ours that no holder keeps (loop-unheld, an error whatever is desired)
    const img = e.image('web.img');
    // made as the CLI's instance (its run dir) would make it: its marker says it is this xvbd's
    const runDirBefore = process.env.XVBD_RUN_DIR;
    process.env.XVBD_RUN_DIR = e.runDir;
    const l = await e.loop(img, false).finally(() => {
      if (runDirBefore === undefined) delete process.env.XVBD_RUN_DIR;
      else process.env.XVBD_RUN_DIR = runDirBefore;
    });
    const ino = e.inode(img);
    const served = { params: img, mode: 'w', 'physical-device': l.hex, 'physical-device-path': `/dev/${l.name}`, diskseq: l.diskseq, xvbd: '1', 'xvbd-inode': `${ino.dev}:${ino.ino}`, 'hotplug-status': 'connected' };
    await e.vbd(3, XVDA, served);
    // web xvdb: ours, its physical-device names a loop device that is gone (a broken disk)
    await e.vbd(3, XVDB, { params: join(e.dir, 'gone.img'), mode: 'r', 'physical-device': '7:fffff', diskseq: '999999999', xvbd: '1', 'xvbd-inode': '1:2', 'hotplug-status': 'connected' });
    await e.sim.settle();

    const cfg = join(e.dir, 'cfg');
    mkdirSync(cfg);
    writeFileSync(join(cfg, 'web.yaml'), 'apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: nonsense\n    file: relative.img\n');
    let r = await xvbd(e.env, 'status', '--config', cfg, '--no-color');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const out = r.stdout.split('\n');
    assert.match(out[0]!, new RegExp(`^The config in ${cfg} is invalid \\(\\d+ errors?\\)\\. Showing the observed host only`));
    const firstError = out.findIndex((x) => /web\.yaml:5:\d+: /.test(x));
    const table = out.findIndex((x) => /^DOMAIN\s+DOMID\s+VDEV/.test(x));
    assert.ok(firstError > 0 && table > firstError, `errors on top, then the host:\n${r.stdout}`);
    const row = (vdev: string) => out.find((x) => new RegExp(`^web\\s+3\\s+${vdev}\\s`).test(x)) ?? '';
    assert.match(row('xvda'), new RegExp(`${img.replace(/[.]/g, '\\.')}\\s+rw\\s+unknown\\s+\\S+\\s+${l.name}\\s+${l.diskseq}\\s`), r.stdout);
    assert.match(row('xvda'), /no valid config to compare with/);
    assert.notEqual(row('xvdb'), '', r.stdout);
    assert.match(r.stdout, /! error loop-unheld: web xvda: \/dev\/loop\d+ .*no holder in dom0 keeps it open/);
    assert.match(r.stdout, /! error loop-reused: web xvdb: no loop device is bound at physical-device 7:fffff any more/);
    assert.doesNotMatch(r.stdout, /unexpected-backend|not desired|is not in the config/, 'nothing is said about what is desired');
    assert.match(r.stdout, /^2 disks; 2 unknown;.*\| host: /m);
    assert.equal(r.stderr, `xvbd status: the config in ${cfg} is invalid (2 errors); showing the observed host only\n`);

    r = await xvbd(e.env, 'status', '--config', cfg, '--json');
    assert.equal(r.code, 1);
    // the versioned status document, with the config's trouble under `config`
    const j = JSON.parse(r.stdout) as { kind: string; config: { valid: boolean; missing: boolean; errors: { line: number }[] }; disks: Plan['disks']; findings: Plan['findings'] };
    assert.equal(j.kind, 'Status');
    assert.equal(j.config.valid, false);
    assert.equal(j.config.missing, false);
    assert.ok(j.config.errors.some((x) => x.line === 5));
    assert.deepEqual(j.disks.map((d) => `${d.domain} ${d.vdev} ${d.sync}`), ['web xvda unknown', 'web xvdb unknown']);
    assert.deepEqual(j.findings.filter((f) => f.domain === 'web').map((f) => `${f.kind} ${f.severity}`).sort(), ['loop-reused error', 'loop-unheld error']);

    // a missing directory is missing, not invalid; the host is shown the same way
    const none = join(e.dir, 'no-such-config');
    r = await xvbd(e.env, 'status', '--config', none, '--no-color');
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`^The config directory ${none} is missing \\(create it, or name yours with --config or XVBD_CONFIG\\)\\. Showing the observed host only`));
    assert.doesNotMatch(r.stdout + r.stderr, /invalid/);
    assert.match(r.stdout, /! error loop-unheld: web xvda/);
    const p = await xvbd(e.env, 'plan', '--config', none);
    assert.equal(p.code, 1);
    assert.equal(p.stderr, `xvbd plan: the config directory ${none} is missing (create it, or name yours with --config or XVBD_CONFIG); nothing was planned\n`);
    const a = await xvbd(e.env, 'apply', '--config', none, '--auto-approve');
    assert.equal(a.code, 1);
    assert.equal(a.stderr, `xvbd apply: the config directory ${none} is missing (create it, or name yours with --config or XVBD_CONFIG): nothing was changed\n`);
    const ai = await xvbd(e.env, 'apply', '--config', cfg, '--auto-approve');
    assert.equal(ai.code, 1);
    assert.match(ai.stderr, new RegExp(`^xvbd apply: the config in ${cfg} is invalid \\(2 errors\\): nothing was changed$`, 'm'));
    l.close();
  } finally {
    await e.close();
  }
});
