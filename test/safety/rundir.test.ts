// A full or read-only run dir gives an error that names the file and what it is for, never a bare
// `Error: ENOSPC ... write` with a stack. The full and read-only file systems are tmpfs mounts in a
// private mount namespace (unshare -m), so nothing outside the test's own processes ever sees them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDirError } from '../../src/host/rundir.js';
import { cliMain } from '../apply/helpers.js';

test('runDirError: names the file, what it is for, and what the code means', () => {
  const e = (code: string, message = `${code}: something, write`) => Object.assign(new Error(message), { code });
  assert.equal(
    runDirError(e('ENOSPC'), '/run/xvbd/apply.lock', 'the apply lock').message,
    'cannot write the apply lock (/run/xvbd/apply.lock): no space left on its file system (ENOSPC); free space there or set XVBD_RUN_DIR to a writable directory',
  );
  assert.match(runDirError(e('EROFS'), '/r/control.sock', 'the control socket').message, /^cannot write the control socket \(\/r\/control\.sock\): its file system is read-only \(EROFS\)/);
  assert.equal(runDirError(e('EIO', 'EIO: i/o error, write'), '/r/x', 'x').message, 'cannot write x (/r/x): EIO: i/o error, write');
  const once = runDirError(e('ENOSPC'), '/a', 'a');
  assert.equal(runDirError(once, '/b', 'b'), once, 'the innermost description is kept');
});

/** Runs the CLI in a private mount namespace with `dir` a tmpfs that `prepare` (sh) has made full or read-only. */
function inNamespace(dir: string, prepare: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; err: string }> {
  const script = `set -e; mount -t tmpfs -o size=64k xvbd-test "$1"; mkdir "$1/run"; ${prepare}; shift; exec "$@"`;
  return new Promise((res) => {
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', dir, process.execPath, cliMain, ...args], {
      env: { ...env, XVBD_RUN_DIR: join(dir, 'run') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('close', (code) => res({ code, err }));
  });
}

const FULL = 'head -c 1M /dev/zero > "$1/fill" 2>/dev/null || true';
const READ_ONLY = 'mount -o remount,ro "$1"';

for (const [name, prepare, want] of [
  ['full (ENOSPC)', FULL, /^xvbd apply: cannot write the apply lock's holder pid \(\S+\/run\/apply\.lock\): no space left on its file system \(ENOSPC\)/m],
  ['read-only (EROFS)', READ_ONLY, /^xvbd apply: cannot write the apply lock \(\S+\/run\/apply\.lock\): its file system is read-only \(EROFS\)/m],
] as const) {
  test(`apply with a ${name} run dir: the error names the apply lock`, async () => {
    const work = mkdtempSync(join(tmpdir(), 'xvbd-rundir-'));
    try {
      const cfg = join(work, 'config');
      mkdirSync(cfg);
      writeFileSync(join(cfg, 'policy.yaml'), 'apiVersion: xvbd/v1\nkind: Policy\nprune: false\n');
      const mnt = join(work, 'mnt');
      mkdirSync(mnt);
      const r = await inNamespace(mnt, prepare, ['apply', '--auto-approve', '--config', cfg], process.env);
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, want);
      assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

test('the daemon with a read-only run dir: the error names the control socket', async () => {
  const work = mkdtempSync(join(tmpdir(), 'xvbd-rundir-'));
  try {
    const cfg = join(work, 'config');
    mkdirSync(cfg);
    writeFileSync(join(cfg, 'policy.yaml'), 'apiVersion: xvbd/v1\nkind: Policy\nprune: false\n');
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    // no xenstore is needed: the control socket comes first
    const r = await inNamespace(mnt, READ_ONLY, ['reconcile', '--watch', '--config', cfg], { ...process.env, XENSTORED_PATH: join(work, 'no-xenstore.sock') });
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /cannot start: cannot write the control socket \(\S+\/run\/control\.sock\): its file system is read-only \(EROFS\)/);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
