// Logging under systemd: when stderr is the journal (JOURNAL_STREAM names fd 2's dev:ino), every line
// carries its sd-daemon <N> priority and no timestamp of its own; elsewhere one ISO time per message.
// The daemon, run for real with its stderr on a file that JOURNAL_STREAM names, logs that way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatLog, stderrIsJournal } from '../../src/log/stdio.js';
import { startSimulator } from '../../src/sim/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');

test('formatLog: <N> per line and no time for the journal; one ISO time per message elsewhere', () => {
  const now = () => new Date('2026-12-04T10:00:00.000Z');
  assert.equal(formatLog('pass 1; nothing to do', 'info', '', true, now), '<6>pass 1; nothing to do\n');
  assert.equal(formatLog('config: 2 error(s)\n  a.yaml:1:1: x', 'warning', 'k: ', true, now), '<4>k: config: 2 error(s)\n<4>k:   a.yaml:1:1: x\n');
  assert.equal(formatLog('pass 2 FAILED', 'err', '', true, now), '<3>pass 2 FAILED\n');
  assert.equal(formatLog('BUG', 'crit', '', true, now), '<2>BUG\n');
  assert.equal(formatLog('pass 1', 'info', 'keeper-a[7]: ', false, now), '2026-12-04T10:00:00.000Z keeper-a[7]: pass 1\n');
});

test('stderrIsJournal: JOURNAL_STREAM must name the file fd 2 is; INVOCATION_ID alone is not enough', () => {
  const st = { dev: 23, ino: 4711 };
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: '23:4711' }, () => st), true);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: '23:4712' }, () => st), false, 'inherited, stderr elsewhere');
  assert.equal(stderrIsJournal({ INVOCATION_ID: 'abc' }, () => st), false);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: 'garbage' }, () => st), false);
  assert.equal(stderrIsJournal({}, () => st), false);
});

test('the daemon with its stderr on the journal: <N> priorities, no timestamps; a config error is a warning', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-journal-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: [] });
  const cfg = join(dir, 'config');
  mkdirSync(cfg);
  writeFileSync(join(cfg, 'web.yaml'), 'apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks: 7\n');
  const logPath = join(dir, 'journal');
  const fd = openSync(logPath, 'w');
  const st = fstatSync(fd);
  const env: NodeJS.ProcessEnv = { ...process.env, XENSTORED_PATH: sim.socketPath, XVBD_XEN_BACKEND_SYSFS: sim.sysfsDir, XVBD_RUN_DIR: join(dir, 'run'), JOURNAL_STREAM: `${st.dev}:${st.ino}`, INVOCATION_ID: '0123456789abcdef' };
  delete env.NOTIFY_SOCKET;
  const child = spawn(process.execPath, [CLI, 'reconcile', '--watch', '--config', cfg, '--resync', '0'], { env, stdio: ['ignore', 'ignore', fd] });
  closeSync(fd);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 30_000;
    let text = '';
    while (!/<4>pass 1 .*config invalid/.test(text) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      text = readFileSync(logPath, 'utf8');
    }
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    text = readFileSync(logPath, 'utf8');
    const lines = text.split('\n').filter((l) => l !== '');
    assert.ok(lines.length >= 3, text);
    for (const l of lines) assert.match(l, /^<[2-7]>/, `every line has its priority: ${l}`);
    assert.doesNotMatch(text, /\d{4}-\d\d-\d\dT\d\d:\d\d/, 'no timestamps of its own');
    assert.match(text, /^<4>config: 1 error\(s\); no good desired state yet: doing nothing$/m);
    assert.match(text, /^<4>\S*web\.yaml:4:\d+: `disks` must be a list/m, 'the error lines of one message each carry the prefix');
    assert.match(text, /^<4>pass 1 \(start\); config invalid, nothing done; /m);
    assert.match(text, /^<5>stopping \(SIGTERM\); backends stay served$/m);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('examples/systemd/xvbd.service: ordered after Debian\'s xen.service, no key systemd 252 does not know', () => {
  const unit = readFileSync(join(ROOT, 'examples/systemd/xvbd.service'), 'utf8');
  const after = /^After=(.*)$/m.exec(unit)?.[1]?.split(/\s+/) ?? [];
  assert.ok(after.includes('xen.service'), `After= names xen.service (Debian's /etc/init.d/xen): ${after.join(' ')}`);
  assert.match(unit, /^Wants=.*\bxen\.service\b/m);
  assert.match(unit, /^Before=xendomains\.service$/m);
  assert.doesNotMatch(unit, /^FileDescriptorStorePreserve=/m, 'systemd 252 (Debian 12) warns about it: it lives in the drop-in');
  assert.match(readFileSync(join(ROOT, 'examples/systemd/fd-store-preserve.conf'), 'utf8'), /^\[Service\]\nFileDescriptorStorePreserve=restart$/m);
  // where systemd-analyze exists: the unit verifies clean but for the binary's install path
  const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
  if (which.status !== 0) return;
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-unit-'));
  try {
    writeFileSync(join(dir, 'xvbd.service'), unit.replace(/^ExecStart=\/usr\/bin\/xvbd /m, 'ExecStart=/bin/sh -c true '));
    const v = spawnSync('systemd-analyze', ['verify', join(dir, 'xvbd.service')], { encoding: 'utf8' });
    assert.equal(v.stderr + v.stdout, '', 'systemd-analyze verify says nothing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
