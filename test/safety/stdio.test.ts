// A log write can never kill xvbd: the daemon with its stdout, or its stderr, a pipe whose reader has gone
// (`xvbd reconcile --watch | head -1`) keeps serving and converging; `xvbd apply` with a dead stdout
// finishes its steps and reports them on stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { keeperLists, keeperLogPath } from '../../src/hold/keeper-client.js';
import { Host, DaemonProc, cliMain } from '../daemon/harness.js';
import { runCli, startBench } from '../apply/helpers.js';

const XVDA = 51712;
const XVDB = 51728;

/**
 * argv run with its stdout or stderr the write end of a pipe whose read end is already closed, before it
 * starts: every write it makes there fails with EPIPE (perl is in every Debian: perl-base is essential).
 */
function deadPipe(fd: 'stdout' | 'stderr', argv: string[]): [string, string[]] {
  const h = fd === 'stdout' ? 'STDOUT' : 'STDERR';
  return ['/usr/bin/perl', ['-e', `pipe(my $r, my $w) or die; close $r; open(${h}, ">&", $w) or die; close $w; exec @ARGV or die`, ...argv]];
}

for (const dead of ['stdout', 'stderr'] as const) {
  test(`the daemon with its ${dead} a pipe nobody reads any more keeps serving and converging`, async () => {
    const h = await Host.start([{ name: 'web1', domid: 5 }]);
    try {
      h.policy({ prune: true, detachTimeout: '1s' });
      h.domain('web1', [{ vdev: 'xvda', image: 'a.img' }]);
      const [cmd, args] = deadPipe(dead, [process.execPath, cliMain, 'reconcile', '--watch', '--config', h.cfgDir, '--debounce', '50', '--resync', '0']);
      const child = h.sd.spawnService(cmd, args, h.env);
      const d = new DaemonProc(child, `${h.runDir}/control.sock`);
      h.daemons.push(d);
      await h.waitFor('web1 xvda served', () => h.served(5, XVDA)?.physicalDevice);
      // every pass logs; these lines all meet the closed pipe
      for (let i = 0; i < 3; i++) assert.equal((await h.request('reconcile', { reason: `log line ${i}` })).ok, true);
      h.domain('web1', [
        { vdev: 'xvda', image: 'a.img' },
        { vdev: 'xvdb', image: 'b.img' },
      ]);
      await h.waitFor('web1 xvdb served after the config change', () => h.served(5, XVDB)?.physicalDevice);
      const ping = await h.request('ping');
      assert.equal(ping.ok, true);
      assert.equal(d.exitCode, undefined, 'the daemon is still running');
      assert.doesNotMatch(d.text(), /Unhandled 'error' event|EPIPE/, 'no error reported where it is still read');
      assert.equal(await d.stop(), 0, 'and stops cleanly');
    } finally {
      await h.cleanup();
    }
  });
}

test('xvbd apply with a dead stdout does every step and reports on stderr', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const [cmd, args] = deadPipe('stdout', [process.execPath, cliMain, 'apply', '--auto-approve']);
    const child = spawn(cmd, args, { env: b.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    assert.equal(code, 0, err);
    assert.match(err, /stdout failed \(EPIPE\); its output goes to stderr/);
    assert.match(err, /Apply complete/);
    const plan = await runCli(['plan', '--detailed-exitcode'], b.env);
    assert.equal(plan.code, 0, `converged: ${plan.out}`);
  } finally {
    await b.cleanup();
  }
});

test('the keepers with keeper.log on a full file system keep holding every fd through their log lines', async () => {
  const b = await startBench({ withBlockDevice: false });
  const mnt = mkdtempSync(join(b.dir, 'full-'));
  try {
    // keeper.log leads into `mnt`, which is a full tmpfs in the mount namespace that apply and the keepers
    // it starts live in (nothing outside ever sees that mount)
    mkdirSync(b.runDir, { recursive: true, mode: 0o700 });
    symlinkSync(join(mnt, 'keeper.log'), keeperLogPath(b.runDir));
    const script = 'set -e; mount -t tmpfs -o size=64k xvbd-test "$1"; head -c 1M /dev/zero > "$1/fill" 2>/dev/null || true; shift; exec "$@"';
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', mnt, process.execPath, cliMain, 'apply', '--auto-approve'], {
      env: b.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (x: string) => (out += x));
    child.stderr.setEncoding('utf8').on('data', (x: string) => (out += x));
    assert.equal(await new Promise<number | null>((res) => child.on('close', (c) => res(c))), 0, out);
    const before = await keeperLists(b.runDir);
    assert.equal(before.length, 2, 'both keepers run');
    const held = before.map((k) => k.held.length);
    assert.ok(held.every((n) => n > 0), `each holds the devices: ${held.join(', ')}`);
    // each logs a line for SIGHUP: it meets ENOSPC
    for (const k of before) process.kill(k.pid, 'SIGHUP');
    for (const k of before) process.kill(k.pid, 'SIGHUP');
    const after = await keeperLists(b.runDir);
    assert.deepEqual(after.map((k) => [k.slot, k.pid, k.held.length]), before.map((k) => [k.slot, k.pid, k.held.length]), 'the same keepers, holding the same');
  } finally {
    await b.cleanup();
    rmSync(mnt, { recursive: true, force: true });
  }
});
