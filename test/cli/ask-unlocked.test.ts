// `xvbd apply` at its prompt, on a terminal (util-linux `script` gives it one): the host-wide lock is not
// held while it waits (another apply runs meanwhile), and the answer `yes` to a plan that no longer holds
// is refused: exit 1, the reason said, nothing done.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cliMain, runCli, startBench } from '../apply/helpers.js';

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

test('apply at its prompt holds no lock; yes to a plan the host no longer has: refused, exit 1', { skip: hasScript ? false : 'util-linux script(1) is not installed', timeout: 120_000 }, async () => {
  const b = await startBench({ withBlockDevice: false });
  let child: ReturnType<typeof spawn> | undefined;
  try {
    const cmd = [process.execPath, cliMain, 'apply', '--config', b.host.configDir].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    child = spawn('script', ['-qefc', cmd, '/dev/null'], { env: { ...b.env, NO_COLOR: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const prompted = new Promise<void>((res, rej) => {
      child!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (/Only 'yes' will be accepted: /.test(out)) res();
      });
      child!.on('close', () => rej(new Error(`apply ended before asking:\n${out}`)));
    });
    const done = new Promise<number | null>((res) => child!.on('close', (code) => res(code)));
    await prompted;
    // while it waits: another applier gets the lock and converges the host
    const other = await runCli(['apply', '--config', b.host.configDir, '--auto-approve'], b.env);
    assert.equal(other.code, 0, other.out);
    const attached = b.loops().size;
    assert.ok(attached > 0);
    child.stdin!.write('yes\n');
    const code = await done;
    assert.equal(code, 1, out);
    assert.match(out, /xvbd apply: the host changed while you were asked: the plan is now 0 actions, not the \d+ actions approved; nothing was changed/);
    assert.doesNotMatch(out, /Apply complete|step/i);
    assert.equal(b.loops().size, attached);
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await b.cleanup();
  }
});
