// `xvbd tui` as a command: refuses without a terminal, and runs in a real pseudo-terminal (util-linux
// `script`) against the simulator: draws the screen, reacts to keys, quits with q, exit status 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSimulator } from '../../src/sim/index.js';
import { stripAnsi } from './harness.js';

/** An SGR sequence that sets a foreground or background colour. */
// eslint-disable-next-line no-control-regex
const COLOUR = /\u001b\[(?:\d+;)*(?:3[0-79]|9[0-7]|4[0-79]|10[0-7])m/;

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

test('refuses a stdout that is not a terminal; bad options are user errors; --help', () => {
  const r = spawnSync(process.execPath, [MAIN, 'tui', '--config', '/nonexistent'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /xvbd tui: stdout is not a terminal: the TUI needs one \(use `xvbd status` for text output\)/);
  assert.equal(r.stdout, '');
  const bad = spawnSync(process.execPath, [MAIN, 'tui', '--interval=-3'], { encoding: 'utf8' });
  assert.equal(bad.status, 2, 'a bad value is a usage error');
  assert.match(bad.stderr, /--interval: expected seconds/);
  const unknown = spawnSync(process.execPath, [MAIN, 'tui', '--frobnicate'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.equal(unknown.stderr, 'xvbd tui: unknown option --frobnicate; see `xvbd tui --help`\n');
  const help = spawnSync(process.execPath, [MAIN, 'tui', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^Usage: xvbd tui \[--config DIR\]/);
});

test('in a pseudo-terminal against the simulator: screen, keys, q quits with status 0', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-tui-cli-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: [{ name: 'web', domid: 7 }] });
  try {
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'img.img'), '');
    writeFileSync(
      join(dir, 'config', 'web.yaml'),
      `apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: xvda\n    file: ${join(dir, 'img.img')}\n    mode: ro\n`,
    );
    const cmd = `stty cols 120 rows 40; exec ${process.execPath} ${MAIN} tui --config ${join(dir, 'config')} --no-apply`;
    const child = spawn('script', ['-q', '-e', '-c', cmd, '/dev/null'], {
      // CI=true as in CI: Ink would draw only the last frame; a TUI on a terminal must draw them all.
      env: { ...process.env, XENSTORED_PATH: sim.socketPath, XVBD_XEN_BACKEND_SYSFS: sim.sysfsDir, TERM: 'xterm', CI: 'true' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const waitOut = async (re: RegExp, ms = 20_000) => {
      const end = Date.now() + ms;
      while (!re.test(stripAnsi(out))) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; output:\n${stripAnsi(out).slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await waitOut(/Pending plan \(1\)/);
      const screen = stripAnsi(out);
      assert.match(screen, /\+ attach web\/xvda <- \S+img\.img \(ro, new loop device\)/);
      assert.match(screen, /xenstore \S+xs\.sock/);
      assert.doesNotMatch(screen, /a apply/, '--no-apply hides the key');
      assert.ok(out.includes('\u001b[?1049h'), 'alternate screen entered');
      assert.match(out, COLOUR, 'coloured by default');
      child.stdin.write('\r');
      await waitOut(/web \(domid 7\) xvda \(devid 51712\)/);
      child.stdin.write('a');
      await waitOut(/Apply is not available here\./);
      child.stdin.write('q');
      const code = await exit;
      assert.equal(code, 0);
      assert.ok(out.lastIndexOf('\u001b[?1049l') > out.lastIndexOf('\u001b[?1049h'), 'alternate screen left');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NO_COLOR=1 at 80x24: no colour, RW kept; ? and / work in a real terminal', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-tui-cli-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: [{ name: 'web', domid: 7 }] });
  try {
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'img.img'), '');
    writeFileSync(
      join(dir, 'config', 'web.yaml'),
      `apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: xvda\n    file: ${join(dir, 'img.img')}\n    mode: ro\n`,
    );
    const cmd = `stty cols 80 rows 24; exec ${process.execPath} ${MAIN} tui --config ${join(dir, 'config')} --no-apply`;
    const child = spawn('script', ['-q', '-e', '-c', cmd, '/dev/null'], {
      // CI=true as in CI: Ink would draw only the last frame; a TUI on a terminal must draw them all.
      env: { ...process.env, XENSTORED_PATH: sim.socketPath, XVBD_XEN_BACKEND_SYSFS: sim.sysfsDir, TERM: 'xterm', NO_COLOR: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const waitOut = async (re: RegExp, ms = 20_000, from = 0) => {
      const end = Date.now() + ms;
      while (!re.test(stripAnsi(out.slice(from)))) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; output:\n${stripAnsi(out).slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await waitOut(/Pending plan \(1\)/);
      assert.doesNotMatch(out, COLOUR, 'NO_COLOR: no colour at all');
      assert.match(stripAnsi(out), /SOURCE\s+RW\s+SYNC/);
      child.stdin.write('?');
      await waitOut(/Disk table/);
      // Esc alone, then the next key (Esc and a key in one read would be Alt-key)
      const mark = out.length;
      child.stdin.write('\u001b');
      await waitOut(/DOMAIN\s+VDEV/, 20_000, mark);
      child.stdin.write('/');
      await waitOut(/^\/\s+Enter keep/m);
      child.stdin.write('nomatch');
      await waitOut(/No disk matches "nomatch"/);
      child.stdin.write('\r');
      child.stdin.write('q');
      const code = await exit;
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
