// sd_notify, the fd store and LISTEN_FDS against a fake systemd (a real datagram socket + recvmsg).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeSystemd } from '../daemon/fake-systemd.js';
import { listenFds, Notifier, validFdName, watchdogIntervalMs } from '../../src/ipc/systemd.js';
import { sysClose } from '../../src/linux/ffi.js';
import { bindUnix, dgramSocket, recvDatagram } from '../../src/linux/socket.js';

const here = dirname(fileURLToPath(import.meta.url));

function collect(child: import('node:child_process').ChildProcess): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (err += d));
  return new Promise((r) => child.on('close', (code) => r({ code, out, err })));
}

test('validFdName follows sd_notify(3)', () => {
  const cases: [string, boolean][] = [
    ['xvbd-loop-17', true],
    ['', false],
    ['a:b', false],
    ['with space', false],
    ['x'.repeat(255), true],
    ['x'.repeat(256), false],
    ['tab\there', false],
    ['é', false],
  ];
  for (const [name, ok] of cases) assert.equal(validFdName(name), ok, name);
});

test('watchdogIntervalMs reads WATCHDOG_USEC and honours WATCHDOG_PID', () => {
  const cases: [NodeJS.ProcessEnv, number | undefined][] = [
    [{}, undefined],
    [{ WATCHDOG_USEC: '30000000' }, 30000],
    [{ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 30000],
    [{ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '43' }, undefined],
    [{ WATCHDOG_USEC: 'abc' }, undefined],
    [{ WATCHDOG_USEC: '0' }, undefined],
    [{ WATCHDOG_USEC: '-5' }, undefined],
  ];
  for (const [env, want] of cases) assert.equal(watchdogIntervalMs(env, 42), want, JSON.stringify(env));
});

test('without NOTIFY_SOCKET the notifier does nothing', async () => {
  const n = new Notifier({ env: {} });
  assert.equal(n.enabled, false);
  assert.equal(await n.ready('x'), false);
  assert.equal(new Notifier({ env: { NOTIFY_SOCKET: 'vsock:2:1' } }).enabled, false);
});

test('READY, STATUS, WATCHDOG, STOPPING arrive at the manager as sd_notify sends them', async () => {
  const sd = new FakeSystemd();
  const n = new Notifier({ env: { NOTIFY_SOCKET: sd.socketPath } });
  try {
    assert.equal(await n.ready('serving 3 disks'), true);
    await n.watchdog();
    await n.status('pass 2: nothing to do\nsecond line');
    await n.stopping();
    const msgs = await sd.waitFor('4 messages', () => (sd.messages.length >= 4 ? sd.messages : undefined));
    assert.deepEqual(
      msgs.map((m) => m.fields),
      [{ READY: '1', STATUS: 'serving 3 disks' }, { WATCHDOG: '1' }, { STATUS: 'pass 2: nothing to do second line' }, { STOPPING: '1' }],
    );
    assert.ok(msgs.every((m) => m.fds.length === 0));
  } finally {
    n.close();
    sd.close();
  }
});

test('an abstract NOTIFY_SOCKET ("@name") works', async () => {
  const name = `@xvbd-test-${process.pid}-${Date.now()}`;
  const fd = dgramSocket(true);
  const n = new Notifier({ env: { NOTIFY_SOCKET: name } });
  try {
    bindUnix(fd, name);
    await n.ready();
    let d;
    for (let i = 0; i < 100 && !(d = recvDatagram(fd)); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(d?.data.toString(), 'READY=1\n');
  } finally {
    n.close();
    sysClose(fd);
  }
});

test('FDSTORE=1 passes the fd itself (same inode) and FDSTOREREMOVE=1 drops it', async () => {
  const sd = new FakeSystemd();
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-fdstore-'));
  const n = new Notifier({ env: { NOTIFY_SOCKET: sd.socketPath } });
  const fds: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(dir, `f${i}`), `file ${i}`);
      fds.push(openSync(join(dir, `f${i}`), 'r'));
    }
    await n.storeFds('xvbd-loop-100', [fds[0]!]);
    await n.storeFds('xvbd-loop-101', [fds[1]!, fds[2]!]);
    await sd.waitFor('3 stored fds', () => sd.store.length === 3);
    assert.deepEqual(sd.store.map((s) => s.name), ['xvbd-loop-100', 'xvbd-loop-101', 'xvbd-loop-101']);
    // The manager's fd is another descriptor for the same open file.
    for (let i = 0; i < 3; i++) {
      assert.notEqual(sd.store[i]!.fd, fds[i]);
      assert.equal(fstatSync(sd.store[i]!.fd).ino, fstatSync(fds[i]!).ino);
    }
    await n.removeFds('xvbd-loop-101');
    await sd.waitFor('removal', () => sd.store.length === 1);
    assert.equal(sd.store[0]!.name, 'xvbd-loop-100');
    assert.throws(() => n.storeFds('bad:name', [fds[0]!]), /invalid fd store name/);
  } finally {
    for (const f of fds) closeSync(f);
    n.close();
    sd.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a restarted service gets its stored fds back at 3.. with names, only with the right LISTEN_PID', async () => {
  const sd = new FakeSystemd();
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-listen-'));
  const n = new Notifier({ env: { NOTIFY_SOCKET: sd.socketPath } });
  const fds: number[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      writeFileSync(join(dir, `f${i}`), `file ${i}`);
      fds.push(openSync(join(dir, `f${i}`), 'r'));
      await n.storeFds(`xvbd-loop-${200 + i}`, [fds[i]!]);
    }
    await sd.waitFor('2 stored', () => sd.store.length === 2);
    const child = join(here, 'fixtures', 'listen-child.js');

    const ok = await collect(sd.spawnService(process.execPath, [child], process.env));
    assert.equal(ok.code, 0, ok.err);
    const got = JSON.parse(ok.out);
    assert.deepEqual(
      got.fds,
      fds.map((f, i) => ({ fd: 3 + i, name: `xvbd-loop-${200 + i}`, ino: String(fstatSync(f).ino) })),
    );
    assert.deepEqual(got.envLeft, [], 'LISTEN_* are removed from the environment');
    await sd.waitFor('READY from the child', () => sd.having('READY', '1').length === 1);
    assert.equal(sd.having('READY')[0]!.fields.STATUS, 'took 2 fds');

    // LISTEN_PID of another process: the fds are not for us.
    const wrong = await collect(sd.spawnService(process.execPath, [child], process.env, { listenPid: '1' }));
    const w = JSON.parse(wrong.out);
    assert.deepEqual(w.fds, []);
    assert.match(w.reason, /LISTEN_PID=1 is not this process/);
  } finally {
    for (const f of fds) closeSync(f);
    n.close();
    sd.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('listenFds without LISTEN_FDS takes nothing', () => {
  assert.deepEqual(listenFds({}, 5), { fds: [], reason: 'no LISTEN_FDS' });
  assert.deepEqual(listenFds({ LISTEN_PID: '5', LISTEN_FDS: 'x' }, 5).fds, []);
});

test('the fake manager reads what the real systemd-notify (libsystemd) sends, field for field as ours', async () => {
  const sd = new FakeSystemd();
  const n = new Notifier({ env: { NOTIFY_SOCKET: sd.socketPath } });
  try {
    const { execFile } = await import('node:child_process');
    await new Promise<void>((res, rej) =>
      execFile('systemd-notify', ['--ready', '--status=from libsystemd'], { env: { ...process.env, NOTIFY_SOCKET: sd.socketPath } }, (e) => (e ? rej(e) : res())),
    );
    await n.ready('from libsystemd');
    // systemd-notify also sends BARRIER=1 with a pipe fd (sd_notify_barrier): the manager closes that
    // fd, which is what the sender waits for; the fake does as systemd does.
    const msgs = await sd.waitFor('3 messages', () => (sd.messages.length >= 3 ? sd.messages : undefined));
    const barrier = msgs.filter((m) => m.fields.BARRIER === '1');
    assert.equal(barrier.length, 1);
    assert.equal(barrier[0]!.fds.length, 1);
    assert.ok(sd.closedUnstored >= 1);
    const notes = msgs.filter((m) => !('BARRIER' in m.fields));
    assert.equal(notes.length, 2);
    assert.deepEqual(notes[0]!.fields, notes[1]!.fields);
    assert.deepEqual(notes[1]!.fields, { READY: '1', STATUS: 'from libsystemd' });
  } finally {
    n.close();
    sd.close();
  }
});

test('sockaddr_un: paths and abstract names as the kernel wants them, too long refused', async () => {
  const { sockaddrUn } = await import('../../src/linux/socket.js');
  const p = sockaddrUn('/run/systemd/notify');
  assert.equal(p.readUInt16LE(0), 1);
  assert.equal(p.subarray(2).toString('latin1'), '/run/systemd/notify\0');
  const a = sockaddrUn('@xvbd');
  assert.deepEqual([...a.subarray(2)], [0, ...Buffer.from('xvbd')]);
  assert.equal(sockaddrUn('/' + 'x'.repeat(106)).length, 2 + 108);
  assert.throws(() => sockaddrUn('/' + 'x'.repeat(107)), /socket path too long/);
  assert.throws(() => sockaddrUn('@' + 'x'.repeat(108)), /socket path too long/);
  assert.equal(sockaddrUn('@' + 'x'.repeat(107)).length, 2 + 108);
});
