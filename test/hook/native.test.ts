// The C hook (dist/native/xvbd-hook) on its own: argv and XENBUS_PATH parsing, the one request line it
// sends, and every kind of reply (ok, refused, garbage, a connection closed without one), against fake
// servers on the run dir's sockets. No xenstore, no loop device: what the client alone decides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HOOK = fileURLToPath(new URL('../../native/xvbd-hook', import.meta.url));

function runHook(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; err: string }> {
  return new Promise((res) => {
    const c = spawn(HOOK, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code) => res({ code, err }));
  });
}

/** A fake server on `path`: answers each line with reply(line, n) (a string to send, or 'close'). */
async function fakeServer(path: string, reply: (line: string, n: number) => string): Promise<{ lines: string[]; connections: () => number; close(): Promise<void> }> {
  const lines: string[] = [];
  let conns = 0;
  const socks = new Set<Socket>();
  const srv: Server = createServer((s) => {
    conns++;
    socks.add(s);
    s.on('close', () => socks.delete(s));
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      lines.push(line);
      const r = reply(line, lines.length);
      if (r === 'close') s.destroy();
      else s.end(r);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(path, r));
  return {
    lines,
    connections: () => conns,
    close: () =>
      new Promise<void>((r) => {
        for (const s of socks) s.destroy();
        srv.close(() => r());
      }),
  };
}

function tmpRun(): string {
  return mkdtempSync(join(tmpdir(), 'xvbd-native-'));
}

test('the C hook is built', () => {
  assert.ok(existsSync(HOOK), `${HOOK} (npm run build compiles native/xvbd-hook.c)`);
});

test('argv: add|remove, at most XENBUS_PATH=... after it; usage errors exit 2 and start nothing', async () => {
  const run = tmpRun();
  try {
    const env = { XVBD_RUN_DIR: run, XENBUS_PATH: 'backend/vbd/5/51712' };
    const cases: [string[], RegExp][] = [
      [[], /usage: .* add\|remove/],
      [['online'], /usage/],
      [['ADD'], /usage/],
      [['add', 'backend/vbd/5/51712'], /the second argument must be XENBUS_PATH=/],
      [['add', 'XENBUS_PATH=backend/vbd/5/51712', 'x'], /usage/],
    ];
    for (const [args, re] of cases) {
      const r = await runHook(args, env);
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.err}`);
      assert.match(r.err, re, JSON.stringify(args));
    }
    assert.equal(existsSync(join(run, 'hook-server.lock')), false, 'no server was started');
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

test('XENBUS_PATH: backend/vbd/<domid>/<devid> in canonical decimals only; bad ones exit 1 before any socket', async () => {
  const run = tmpRun();
  try {
    const bad: [string | undefined, RegExp][] = [
      [undefined, /XENBUS_PATH is not set/],
      ['', /XENBUS_PATH is not set/],
      ['/local/domain/0/backend/vbd/5/51712', /must begin with backend\/vbd\//],
      ['backend/vif/5/0', /must begin with/],
      ['backend/vbd/5', /expected backend\/vbd\/DOMID\/DEVID/],
      ['backend/vbd/5/51712/', /expected backend\/vbd\/DOMID\/DEVID/],
      ['backend/vbd/5/51712/x', /expected/],
      ['backend/vbd/05/51712', /domain ID is not a canonical decimal/],
      ['backend/vbd/5/051712', /device ID is not a canonical decimal/],
      ['backend/vbd/00/51712', /domain ID/],
      ['backend/vbd/+5/51712', /domain ID/],
      ['backend/vbd/ 5/51712', /domain ID/],
      ['backend/vbd/5/51712 ', /device ID/],
      ['backend/vbd/-1/51712', /domain ID/],
      ['backend/vbd/5/0x10', /device ID/],
      ['backend/vbd/32752/51712', /domain ID is not a canonical decimal below 32752/],
      ['backend/vbd/5/4294967296', /device ID/],
      ['backend/vbd/5/99999999999', /device ID/],
      ['backend/vbd/../51712', /domain ID/],
      ['backend/vbd//51712', /domain ID/],
      [`backend/vbd/5/${'1'.repeat(70)}`, /longer than 64 bytes/],
    ];
    for (const [p, re] of bad) {
      const env: NodeJS.ProcessEnv = { XVBD_RUN_DIR: run };
      if (p !== undefined) env.XENBUS_PATH = p;
      const r = await runHook(['add'], env);
      assert.equal(r.code, 1, `${JSON.stringify(p)}: ${r.err}`);
      assert.match(r.err, re, JSON.stringify(p));
    }
    // given twice, the two must agree
    const r = await runHook(['add', 'XENBUS_PATH=backend/vbd/5/51712'], { XVBD_RUN_DIR: run, XENBUS_PATH: 'backend/vbd/6/51712' });
    assert.equal(r.code, 1);
    assert.match(r.err, /different values/);
    const rel = await runHook(['add'], { XVBD_RUN_DIR: 'run', XENBUS_PATH: 'backend/vbd/5/51712' });
    assert.equal(rel.code, 1);
    assert.match(rel.err, /XVBD_RUN_DIR must be an absolute path/);
    assert.equal(existsSync(join(run, 'hook-server.lock')), false, 'no server was started');
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

test('one request line to the daemon; its reply decides the exit code; refusals carry the reason', async () => {
  const run = tmpRun();
  let answer = '{"id":null,"ok":true,"served":true,"physicalDevice":"7:3","pass":null,"nested":{"a":[1,2.5e3,"x\\"y"]}}\n';
  const srv = await fakeServer(join(run, 'control.sock'), () => answer);
  try {
    let r = await runHook(['add'], { XVBD_RUN_DIR: run, XENBUS_PATH: 'backend/vbd/5/51712' });
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /xvbd: add backend\/vbd\/5\/51712: served by the daemon/);
    r = await runHook(['remove', 'XENBUS_PATH=backend/vbd/0/768'], { XVBD_RUN_DIR: run });
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /released by the daemon/);
    assert.deepEqual(srv.lines, ['{"op":"serve","backend":"backend/vbd/5/51712"}', '{"op":"release","backend":"backend/vbd/0/768"}']);

    answer = '{"ok":false,"error":"mode r differs from the desired rw \\u00e9\\n(2)"}\n';
    r = await runHook(['add'], { XVBD_RUN_DIR: run, XENBUS_PATH: 'backend/vbd/5/51712' });
    assert.equal(r.code, 1);
    assert.match(r.err, /refused by the daemon: mode r differs from the desired rw é \(2\)/);

    const garbage = ['hello\n', '{"ok":"yes"}\n', '{"error":"no ok"}\n', '{"ok":true\n', '{"ok":true} x\n', '[true]\n', '{"ok":tru}\n', `{"ok":true,"x":${'['.repeat(40)}${']'.repeat(40)}}\n`];
    for (const g of garbage) {
      answer = g;
      r = await runHook(['add'], { XVBD_RUN_DIR: run, XENBUS_PATH: 'backend/vbd/5/51712' });
      assert.equal(r.code, 1, `${JSON.stringify(g)} accepted: ${r.err}`);
      assert.match(r.err, /sent a reply that is not a JSON object with "ok"/, g);
    }
  } finally {
    await srv.close();
    rmSync(run, { recursive: true, force: true });
  }
});

test('a server that closes without replying is asked again a few times, then the hook fails', async () => {
  const run = tmpRun();
  const srv = await fakeServer(join(run, 'control.sock'), () => 'close');
  try {
    const r = await runHook(['add'], { XVBD_RUN_DIR: run, XENBUS_PATH: 'backend/vbd/5/51712' });
    assert.equal(r.code, 1);
    assert.match(r.err, /closed the connection without a reply/);
    assert.equal(srv.connections(), 6, 'six attempts');
  } finally {
    await srv.close();
    rmSync(run, { recursive: true, force: true });
  }
  // closes once, then answers: served (a daemon that restarted meanwhile)
  const run2 = tmpRun();
  const srv2 = await fakeServer(join(run2, 'control.sock'), (_l, n) => (n === 1 ? 'close' : '{"ok":true}\n'));
  try {
    const r = await runHook(['add'], { XVBD_RUN_DIR: run2, XENBUS_PATH: 'backend/vbd/5/51712' });
    assert.equal(r.code, 0, r.err);
    assert.equal(srv2.connections(), 2);
  } finally {
    await srv2.close();
    rmSync(run2, { recursive: true, force: true });
  }
});

test('no daemon: the hook server socket is asked; a stale control.sock is no daemon', async () => {
  const run = tmpRun();
  // a socket file nobody listens on, as a killed daemon leaves it
  const ctl = join(run, 'control.sock');
  const dead = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(ctl)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await new Promise((r) => dead.on('close', r));
  assert.ok(existsSync(ctl), 'the stale socket file is there');
  const hs = await fakeServer(join(run, 'hook.sock'), () => '{"ok":true}\n');
  try {
    const r = await runHook(['add'], { XVBD_RUN_DIR: run, XENBUS_PATH: 'backend/vbd/5/51712' });
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /served by the hook server/);
    assert.deepEqual(hs.lines, ['{"op":"serve","backend":"backend/vbd/5/51712"}']);
  } finally {
    await hs.close();
    rmSync(run, { recursive: true, force: true });
  }
});

/** A stand-in for `node main.js hook server --ready-fd 3`: listens on hook.sock, says ready, serves, exits. */
const FAKE_SERVER = `
const net = require('node:net'), fs = require('node:fs'), path = require('node:path');
const run = process.env.XVBD_RUN_DIR;
const args = process.argv.slice(2);
if (args.join(' ') !== 'hook server --ready-fd 3') { console.error('bad args ' + args.join(' ')); process.exit(3); }
fs.appendFileSync(path.join(run, 'starts'), 'x');
let served = 0;
const srv = net.createServer((s) => {
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    if (!buf.includes('\\n')) return;
    s.end(JSON.stringify({ ok: true, pid: process.pid }) + '\\n');
    if (++served === Number(process.env.FAKE_SERVE_COUNT)) srv.close(() => process.exit(0));
  });
});
srv.listen(path.join(run, 'hook.sock'), () => { fs.writeSync(3, 'ready\\n'); fs.closeSync(3); });
setTimeout(() => process.exit(0), 20000).unref();
`;

test('no server at all: the first hook starts one (once, for a burst), detached, and waits for it to be ready', async () => {
  const run = tmpRun();
  const main = join(run, 'fake-main.cjs');
  writeFileSync(main, FAKE_SERVER);
  try {
    const env = { XVBD_RUN_DIR: run, XVBD_NODE: process.execPath, XVBD_CLI_MAIN: main, FAKE_SERVE_COUNT: '6' };
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => runHook(['add'], { ...env, XENBUS_PATH: `backend/vbd/5/${51712 + 16 * i}` })));
    for (const r of rs) assert.equal(r.code, 0, r.err);
    const { readFileSync } = await import('node:fs');
    assert.equal(readFileSync(join(run, 'starts'), 'utf8'), 'x', 'one server for the six hooks');
    // a server that never says ready (dies at once): the hook fails and says where to look
    const r = await runHook(['add'], { XVBD_RUN_DIR: run, XVBD_NODE: '/bin/false', XENBUS_PATH: 'backend/vbd/5/51712' });
    assert.equal(r.code, 1);
    assert.match(r.err, /the hook server \(\/bin\/false .* hook server\) did not start; see .*hook-server\.log/);
  } finally {
    rmSync(run, { recursive: true, force: true });
  }
});

test('xvbd hook install puts the C hook where a bare script=NAME is looked up, executable, replacing an old one', async () => {
  const dir = tmpRun();
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((res) => {
      const c = spawn(process.execPath, [cli, 'hook', 'install', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (out += d.toString()));
      c.on('close', (code) => res({ code, out }));
    });
  try {
    writeFileSync(join(dir, 'xvbd'), '#!/bin/sh\nexit 1\n');
    const r = await run(['--dir', dir]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`installed ${dir}/xvbd\\nin the xl disk spec: script=${dir}/xvbd`));
    const { readFileSync, statSync } = await import('node:fs');
    assert.ok(readFileSync(join(dir, 'xvbd')).equals(readFileSync(HOOK)), 'the same binary');
    assert.equal(statSync(join(dir, 'xvbd')).mode & 0o777, 0o755);
    const bad = await run(['--dir', dir, '--name', '../x']);
    assert.equal(bad.code, 2);
    assert.match(bad.out, /a plain file name/);
    const none = await run(['--dir', join(dir, 'missing')]);
    assert.equal(none.code, 1);
    assert.match(none.out, /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
