// `xvbd sim` as a process: serves until SIGTERM, the real tools list its domains.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

test('xvbd sim --socket S --domain work --domain db=5 serves; xenstore-ls lists /local/domain; SIGTERM stops it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-simcli-'));
  const sock = join(dir, 'x.sock');
  const child = spawn(process.execPath, [MAIN, 'sim', '--socket', sock, '--domain', 'work', '--domain', 'db=5'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    // ready once it says so (the socket file exists a moment before the line is written)
    for (let i = 0; i < 400 && !/XENSTORED_PATH=/.test(stderr); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(existsSync(sock), `socket appeared (${stderr})`);
    const env = { ...process.env, XENSTORED_PATH: sock };
    const ls = spawnSync('xenstore-list', ['/local/domain'], { env, encoding: 'utf8' });
    assert.equal(ls.stdout, '0\n1\n5\n');
    assert.equal(spawnSync('xenstore-read', ['/local/domain/1/name', '/local/domain/5/name'], { env, encoding: 'utf8' }).stdout, 'work\ndb\n');
    const tree = spawnSync('xenstore-ls', ['/local/domain'], { env, encoding: 'utf8' });
    assert.match(tree.stdout, /^0 = ""\n control = ""\n/);
    assert.match(stderr, /XENSTORED_PATH=.*x\.sock XVBD_XEN_BACKEND_SYSFS=.*x\.sock\.sysfs/);
    assert.ok(existsSync(`${sock}.sysfs`), 'default sysfs dir');
  } finally {
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0);
    assert.equal(existsSync(sock), false, 'socket removed');
    assert.equal(existsSync(`${sock}.sysfs`), false, 'default sysfs dir removed');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('xvbd sim: --help, bad --domain, unknown option', () => {
  const help = spawnSync(process.execPath, [MAIN, 'sim', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^Usage: xvbd sim /);
  const bad = spawnSync(process.execPath, [MAIN, 'sim', '--domain', 'no spaces'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /invalid --domain "no spaces"/);
  const bad2 = spawnSync(process.execPath, [MAIN, 'sim', '--domain', 'x=0'], { encoding: 'utf8' });
  assert.equal(bad2.status, 2);
  const unk = spawnSync(process.execPath, [MAIN, 'sim', '--bogus'], { encoding: 'utf8' });
  assert.equal(unk.status, 2);
  assert.match(unk.stderr, /bogus/);
});

test('xvbd sim --control S: add-domain / remove-domain / list-domains while it runs, seen by the real tools', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-simctl-'));
  const sock = join(dir, 'x.sock');
  const ctl = join(dir, 'ctl.sock');
  const child = spawn(process.execPath, [MAIN, 'sim', '--socket', sock, '--control', ctl, '--domain', 'work'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const sim = (...a: string[]) => spawnSync(process.execPath, [MAIN, 'sim', ...a], { encoding: 'utf8' });
  const env = { ...process.env, XENSTORED_PATH: sock };
  const list = () => spawnSync('xenstore-list', ['/local/domain'], { env, encoding: 'utf8' }).stdout;
  try {
    for (let i = 0; i < 400 && !/control: /.test(stderr); i++) await new Promise((r) => setTimeout(r, 25));
    assert.match(stderr, /control: xvbd sim add-domain NAME --control .*ctl\.sock/);
    assert.equal((statSync(ctl).mode & 0o777).toString(8), '600');
    assert.equal(list(), '0\n1\n');
    const add = sim('add-domain', 'late', '--control', ctl);
    assert.deepEqual([add.status, add.stdout, add.stderr], [0, '2\n', '']);
    assert.equal(sim('add-domain', 'db=7', '--control', ctl).stdout, '7\n');
    assert.equal(list(), '0\n1\n2\n7\n');
    assert.equal(spawnSync('xenstore-read', ['/local/domain/2/name'], { env, encoding: 'utf8' }).stdout, 'late\n');
    assert.equal(sim('list-domains', '--control', ctl).stdout, 'work=1\nlate=2\ndb=7\n');
    const dup = sim('add-domain', 'late', '--control', ctl);
    assert.equal(dup.status, 1);
    assert.match(dup.stderr, /the simulator refused: a domain named "late" already exists \(domid 2\)/);
    const rm = sim('remove-domain', 'late', '--control', ctl);
    assert.deepEqual([rm.status, rm.stdout], [0, '2\n']);
    assert.equal(list(), '0\n1\n7\n');
    const gone = sim('remove-domain', 'late', '--control', ctl);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /no simulated domain named "late"/);
  } finally {
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0);
    assert.equal(existsSync(ctl), false, 'control socket removed');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('xvbd sim add-domain: usage errors (exit 2) and an unreachable simulator (exit 1)', () => {
  const sim = (...a: string[]) => spawnSync(process.execPath, [MAIN, 'sim', ...a], { encoding: 'utf8' });
  const noCtl = sim('add-domain', 'x');
  assert.equal(noCtl.status, 2);
  assert.match(noCtl.stderr, /add-domain needs --control SOCK/);
  assert.equal(sim('add-domain', '--control', '/nonexistent.sock').status, 2);
  assert.match(sim('add-domain', 'a b', '--control', '/x').stderr, /invalid domain "a b"/);
  assert.match(sim('frobnicate', '--control', '/x').stderr, /unknown subcommand "frobnicate"/);
  assert.match(sim('add-domain', 'x', '--control', '/x', '--domain', 'y').stderr, /--domain is for the simulator itself/);
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-simctl-'));
  try {
    const r = sim('list-domains', '--control', join(dir, 'none.sock'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot reach the simulator at .*none\.sock/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
