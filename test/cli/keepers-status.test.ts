// The keepers as `xvbd status` shows them (pid, fds held, text and --json), and a keeper that looks for
// xenstore elsewhere (started with another XENSTORED_PATH): shown with a warning, and refused by a
// giver (`apply` fails before anything is committed rather than hand it fds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cliMain, startBench, xvbd } from '../apply/helpers.js';
import { statusValidator } from '../../src/observe/recording.js';
import { keeperLists, keeperSocketPath } from '../../src/hold/keeper-client.js';

interface Doc {
  keepers?: { slot: string; pid: number; fds: number; xenstore?: string[]; xsConnected?: boolean; xenstoreMismatch?: boolean }[];
}

test('status lists the keepers (pid, fds) after an apply; none: no keepers line, keepers: []', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const cfg = b.host.configDir;
    let r = await xvbd(b.env, 'status', '--config', cfg, '--json');
    assert.deepEqual((JSON.parse(r.stdout) as Doc).keepers, []);
    r = await xvbd(b.env, 'status', '--config', cfg, '--no-color');
    assert.doesNotMatch(r.stdout, /^Keepers:/m);
    r = await xvbd(b.env, 'apply', '--config', cfg, '--auto-approve');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    r = await xvbd(b.env, 'status', '--config', cfg, '--json');
    const doc = JSON.parse(r.stdout) as Doc;
    assert.ok(statusValidator()(doc), JSON.stringify(statusValidator().errors));
    const ks = doc.keepers!;
    assert.deepEqual(ks.map((k) => k.slot).sort(), ['a', 'b']);
    const n = b.sim.backends().length;
    assert.ok(n > 0);
    for (const k of ks) {
      assert.ok(k.pid > 1);
      // one fd per backend (the example host's shared template is one device, one fd per backend using it)
      assert.equal(k.fds, n, `keeper ${k.slot} holds one fd per backend`);
      assert.deepEqual(k.xenstore, [b.sim.socketPath]);
      assert.equal(k.xsConnected, true);
      assert.equal(k.xenstoreMismatch, false);
    }
    r = await xvbd(b.env, 'status', '--config', cfg, '--no-color');
    const pid = (s: string) => ks.find((k) => k.slot === s)!.pid;
    assert.match(r.stdout, new RegExp(`^Keepers: a pid ${pid('a')} holds ${n} fds; b pid ${pid('b')} holds ${n} fds$`, 'm'));
    assert.doesNotMatch(r.stdout, /looks for xenstore at/);
  } finally {
    await b.cleanup();
  }
});

test('a keeper on another XENSTORED_PATH: status warns (text and --json), apply refuses to hand it fds', async () => {
  const b = await startBench({ withBlockDevice: false });
  const runDir = join(b.dir, 'run2');
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const wrong = join(b.dir, 'no-such-xenstored.sock');
  let keeper: ChildProcess | undefined;
  try {
    const env = { ...b.env, XVBD_RUN_DIR: runDir };
    keeper = spawn(process.execPath, [cliMain, 'keeper', '--slot', 'a', '--idle-exit', '600000'], {
      env: { ...env, XENSTORED_PATH: wrong },
      stdio: 'ignore',
    });
    const sock = keeperSocketPath(runDir, 'a');
    for (let i = 0; i < 800 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(existsSync(sock), 'the keeper listens');
    const cfg = b.host.configDir;
    let r = await xvbd(env, 'status', '--config', cfg, '--json');
    const k = (JSON.parse(r.stdout) as Doc).keepers!;
    assert.equal(k.length, 1);
    assert.deepEqual({ ...k[0], pid: 0 }, { slot: 'a', pid: 0, fds: 0, xenstore: [wrong], xenstoreMismatch: true, xsConnected: false });
    assert.equal(k[0]!.pid, keeper.pid);
    r = await xvbd(env, 'status', '--config', cfg, '--no-color');
    assert.match(r.stdout, new RegExp(`^Keepers: a pid ${keeper.pid} holds 0 fds \\(xenstore unreachable\\)$`, 'm'));
    assert.match(r.stdout, new RegExp(`keeper a \\(pid ${keeper.pid}\\) looks for xenstore at \\S+no-such-xenstored\\.sock, not where this xvbd does: .*stop it \\(kill ${keeper.pid}\\)`));
    // apply: the giver refuses the keeper, the step fails, nothing is attached
    r = await xvbd(env, 'apply', '--config', cfg, '--auto-approve');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, new RegExp(`keeper a \\(pid ${keeper.pid}\\) looks for xenstore at \\S+no-such-xenstored\\.sock, this xvbd at \\S+xs\\.sock \\(XENSTORED_PATH differs\\)`));
    await b.sim.settle();
    assert.deepEqual(b.sim.backends(), [], 'no backend made');
    assert.equal(b.loops().size, 0, 'no loop device left');
  } finally {
    if (keeper && keeper.exitCode === null) {
      const gone = new Promise((r) => keeper!.once('exit', r));
      keeper.kill('SIGKILL');
      await gone;
    }
    // keeper b, started by the refused apply in run2, holds no committed backend's fd: kill it too
    for (const k of await keeperLists(runDir)) {
      try {
        process.kill(k.pid, 'SIGKILL');
      } catch {
        // gone
      }
      for (let i = 0; i < 400 && existsSync(`/proc/${k.pid}`); i++) await new Promise((r) => setTimeout(r, 25));
    }
    for (const s of ['a', 'b'] as const) rmSync(keeperSocketPath(runDir, s), { force: true });
    await b.cleanup();
  }
});
