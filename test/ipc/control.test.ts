// The control socket: line-delimited JSON, 0600 in a 0700 dir, stale socket replaced, a live one
// refused, bad input answered (never a crash), SO_PEERCRED seen, askDaemon falls back when absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { askDaemon, ControlClient, ControlError, ControlServer, controlSocketPath, MAX_LINE } from '../../src/ipc/control.js';

const run = promisify(execFile);

function raw(path: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d) => (out += d));
    s.on('error', reject);
    s.on('close', () => resolve(out));
    s.on('connect', () => {
      s.write(data);
      setTimeout(() => s.end(), 100);
    });
  });
}

test('controlSocketPath follows XVBD_RUN_DIR', () => {
  assert.equal(controlSocketPath({}), '/run/xvbd/control.sock');
  assert.equal(controlSocketPath({ XVBD_RUN_DIR: '/tmp/x' }), '/tmp/x/control.sock');
});

test('requests and replies, in order, with ids, errors as replies, peer credentials', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-ctl-'));
  const path = join(dir, 'run', 'control.sock');
  const peers: unknown[] = [];
  const srv = await ControlServer.listen(
    async (req, peer) => {
      peers.push(peer);
      if (req.op === 'echo') return { echo: req.value ?? null };
      if (req.op === 'slow') {
        await new Promise((r) => setTimeout(r, 50));
        return { slow: true };
      }
      if (req.op === 'bad') throw new ControlError('bad thing');
      throw new ControlError(`unknown op "${req.op}"`);
    },
    { path },
  );
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
    const c = await ControlClient.connect(path);
    const [r1, r2, r3, r4] = await Promise.all([
      c.request({ op: 'slow' }),
      c.request({ op: 'echo', value: { a: 1 } }),
      c.request({ op: 'bad' }),
      c.request({ op: 'nope' }),
    ]);
    assert.deepEqual(r1, { id: 1, ok: true, slow: true });
    assert.deepEqual(r2, { id: 2, ok: true, echo: { a: 1 } });
    assert.deepEqual(r3, { id: 3, ok: false, error: 'bad thing' });
    assert.deepEqual(r4, { id: 4, ok: false, error: 'unknown op "nope"' });
    c.close();
    const p = peers[0] as { pid: number; uid: number };
    assert.equal(p.pid, process.pid);
    assert.equal(p.uid, process.geteuid!());

    // Garbage gets an answer, and the server stays up.
    const out = await raw(path, 'not json\n[1]\n{"op":5}\n{"op":"echo","value":2}\n');
    assert.deepEqual(
      out.trim().split('\n').map((l) => JSON.parse(l)),
      [
        { ok: false, error: 'bad request: not a JSON object on one line' },
        { ok: false, error: 'bad request: not a JSON object' },
        { ok: false, error: 'bad request: "op" must be a command name' },
        { ok: true, echo: 2 },
      ],
    );
    const long = await raw(path, 'x'.repeat(MAX_LINE + 10));
    assert.match(long, /longer than 65536 bytes/);
    assert.deepEqual(await askDaemon({ op: 'echo', value: 'still up' }, { path }), { id: 1, ok: true, echo: 'still up' });
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stale socket is replaced, a live one refused, a non-socket never replaced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-ctl-'));
  const path = join(dir, 'control.sock');
  try {
    // A stale socket file: bound by a process that died without unlinking it (nobody accepts).
    execFileSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', path]);
    assert.ok(statSync(path).isSocket());
    const srv0 = await ControlServer.listen(async () => ({ replaced: true }), { path });
    assert.deepEqual(await askDaemon({ op: 'ping' }, { path }), { id: 1, ok: true, replaced: true });
    await srv0.close();
    const placeholder = createServer();
    await new Promise<void>((r) => placeholder.listen(path, r));
    // placeholder listens: a second daemon is refused
    await assert.rejects(ControlServer.listen(async () => ({}), { path }), /another xvbd daemon already listens/);
    await new Promise<void>((r) => placeholder.close(() => r()));

    const srv = await ControlServer.listen(async () => ({ pong: true }), { path });
    assert.deepEqual(await askDaemon({ op: 'ping' }, { path }), { id: 1, ok: true, pong: true });
    await srv.close();
    assert.equal(await askDaemon({ op: 'ping' }, { path }), undefined, 'no daemon: undefined, caller falls back');

    writeFileSync(path, 'not a socket');
    await assert.rejects(ControlServer.listen(async () => ({}), { path }), /is not a socket/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a client that is not root (nor the daemon uid) is refused by SO_PEERCRED', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-ctl-'));
  const path = join(dir, 'control.sock');
  const calls: string[] = [];
  const logs: string[] = [];
  const srv = await ControlServer.listen(async (req) => {
    calls.push(req.op);
    return { pong: true };
  }, { path, log: (l) => logs.push(l) });
  try {
    // Open the file modes up so that only the credential check stands in the way.
    chmodSync(dir, 0o755);
    chmodSync(path, 0o666);
    const py = [
      'import os, socket, sys',
      'os.setgroups([]); os.setgid(65534); os.setuid(65534)',
      's = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])',
      's.sendall(b\'{"op":"ping"}\\n\')',
      'print(s.recv(4096).decode().strip())',
    ].join('\n');
    const { stdout } = await run('python3', ['-c', py, path]);
    assert.deepEqual(JSON.parse(stdout), { ok: false, error: 'permission denied: the control socket is for root' });
    assert.deepEqual(calls, [], 'the handler never ran');
    assert.match(logs.join('\n'), /refused a client with uid 65534/);
    // root still gets through
    assert.deepEqual(await askDaemon({ op: 'ping' }, { path }), { id: 1, ok: true, pong: true });
  } finally {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
