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

test('xvbd apply refuses while another applier holds the lock, naming its pid', async () => {
  const { prepareExampleHost } = await import('../../src/demo/example-host.js');
  const { runCli } = await import('./helpers.js');
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-lock-'));
  const host = prepareExampleHost({ workDir: join(dir, 'host'), withBlockDevice: false });
  try {
    const runDir = join(dir, 'run');
    const held = await acquireApplyLock({ dir: runDir });
    try {
      const env = { ...process.env, XVBD_RUN_DIR: runDir, XENSTORED_PATH: join(dir, 'nothing.sock'), NODE_TEST_CONTEXT: undefined };
      const r = await runCli(['apply', '--auto-approve', '--config', host.configDir], env);
      assert.equal(r.code, 1);
      assert.equal(r.out, `xvbd apply: another xvbd apply (pid ${process.pid}) holds ${join(runDir, 'apply.lock')}\n`);
      const noTty = await runCli(['apply', '--config', host.configDir], env);
      assert.equal(noTty.code, 1);
      assert.match(noTty.out, /refusing to apply without a terminal to ask on: pass --auto-approve/);
    } finally {
      held.release();
    }
  } finally {
    host.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
