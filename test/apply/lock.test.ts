import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireApplyLock, LockHeldError } from '../../src/apply/lock.js';

const lockModule = new URL('../../src/apply/lock.js', import.meta.url).href;

test('the lock refuses a second applier in the same process and names the holder pid', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'xvbd-lock-')), 'run');
  try {
    const a = await acquireApplyLock({ dir });
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    await assert.rejects(acquireApplyLock({ dir }), (e: unknown) => {
      assert.ok(e instanceof LockHeldError);
      assert.equal(e.message, `another xvbd apply (pid ${process.pid}) holds ${join(dir, 'apply.lock')}`);
      return true;
    });
    a.release();
    const b = await acquireApplyLock({ dir });
    b.release();
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test('the lock: another process holds it; waiting works; kill -9 frees it', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'xvbd-lock-')), 'run');
  const code = `const { acquireApplyLock } = await import(${JSON.stringify(lockModule)});
    await acquireApplyLock({ dir: ${JSON.stringify(dir)} }); process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((res, rej) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && res());
      child.on('exit', (c) => rej(new Error(`child exited ${c}`)));
    });
    await assert.rejects(acquireApplyLock({ dir }), new RegExp(`^LockHeldError: another xvbd apply \\(pid ${child.pid}\\) holds `));
    await assert.rejects(acquireApplyLock({ dir, waitMs: 150 }), LockHeldError);
    const waiting = acquireApplyLock({ dir, waitMs: 5000 });
    setTimeout(() => child.kill('SIGKILL'), 100);
    const l = await waiting;
    l.release();
  } finally {
    child.kill('SIGKILL');
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});
