// Attach through the registry on real loop devices: read-only and read-write, autoclear, O_EXCL claim,
// direct I/O and block size, the forced pre-5.8 path, and the /dev/loop-control and device locks.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as C, fsyncSync, openSync, readSync, readlinkSync, writeSync } from 'node:fs';
import { LoopRegistry } from '../../src/linux/registry.js';
import { attachLoop, getStatus } from '../../src/linux/loopdev.js';
import { LOOP_CTL_GET_FREE, O_CLOEXEC, O_RDWR, ioctlInt, isSysError, sysClose, sysOpen } from '../../src/linux/ffi.js';
import { closeSource, openSource } from '../../src/linux/source.js';
import { Scratch, sysfs } from './helpers.js';

const scratch = new Scratch('attach');
after(() => scratch.finish());

function readHead(dev: string, n: number): string {
  const fd = openSync(dev, 'r');
  try {
    const b = Buffer.alloc(n);
    readSync(fd, b, 0, n, 0);
    return b.toString('latin1');
  } finally {
    closeSync(fd);
  }
}

test('read-only attach: device is read-only, shows the file, refuses writes', async () => {
  const img = scratch.image('ro.img', 4, 'RO-PATTERN');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const h = await reg.acquire({ key: 'be/1/51712', source: img, readOnly: true });
    assert.equal(h.readOnly, true);
    assert.equal(h.kind, 'loop');
    assert.match(h.name, /^loop\d+$/);
    assert.equal(h.devPath, `/dev/${h.name}`);
    assert.equal(sysfs(h.name, 'ro'), '1');
    assert.equal(sysfs(h.name, 'loop/autoclear'), '1');
    assert.equal(sysfs(h.name, 'diskseq'), h.diskseq);
    assert.deepEqual(h.backing, scratch.inode(img));
    assert.equal(readHead(h.devPath, 10), 'RO-PATTERN');
    // The kernel may let a writer open a read-only disk, but never write to it.
    let wfd = -1;
    try {
      wfd = openSync(h.devPath, 'r+');
      assert.throws(() => writeSync(wfd, Buffer.from('nope'), 0, 4, 0), /EPERM|EROFS|EACCES/);
    } catch (e) {
      assert.match(String(e), /EROFS|EACCES|EPERM/);
    } finally {
      if (wfd >= 0) closeSync(wfd);
    }
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('read-write attach: writes through the device reach the file', async () => {
  const img = scratch.image('rw.img', 4);
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const h = await reg.acquire({ key: 'k', source: img, readOnly: false });
    assert.equal(h.readOnly, false);
    assert.equal(sysfs(h.name, 'ro'), '0');
    const fd = openSync(h.devPath, C.O_RDWR);
    try {
      writeSync(fd, Buffer.from('WRITTEN-VIA-LOOP'), 0, undefined, 4096);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } finally {
    reg.closeAll();
  }
  const fd = openSync(img, 'r');
  const b = Buffer.alloc(16);
  readSync(fd, b, 0, 16, 4096);
  closeSync(fd);
  assert.equal(b.toString(), 'WRITTEN-VIA-LOOP');
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('autoclear: closing our fd frees the device; another opener keeps it until it closes', async () => {
  const img = scratch.image('autoclear.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const h = await reg.acquire({ key: 'a', source: img, readOnly: true });
  assert.deepEqual(scratch.bound(), [h.name]);
  assert.deepEqual(reg.release('a')?.closed, true);
  assert.deepEqual(scratch.bound(), [], 'freed synchronously at the last close');

  const h2 = await reg.acquire({ key: 'b', source: img, readOnly: true });
  const other = openSync(h2.devPath, 'r'); // stands in for blkback
  try {
    reg.release('b');
    assert.deepEqual(scratch.bound(), [h2.name], 'still bound while another opener holds it');
    assert.equal(sysfs(h2.name, 'diskseq'), h2.diskseq);
  } finally {
    closeSync(other);
  }
  assert.deepEqual(await scratch.waitNoneBound(), [], 'freed when the other opener closed');
});

test('O_EXCL: while we hold the device nobody can claim it exclusively (as mount and dm do)', async () => {
  const img = scratch.image('excl.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const h = await reg.acquire({ key: 'x', source: img, readOnly: false });
    assert.throws(() => openSync(h.devPath, C.O_RDONLY | C.O_EXCL), /EBUSY/);
    // A shared (non-exclusive) open, as blkback does, works.
    closeSync(openSync(h.devPath, C.O_RDWR));
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('O_EXCL on a free device keeps another allocator from configuring it under us', () => {
  const img = scratch.image('excl-free.img');
  const ctl = sysOpen('/dev/loop-control', O_RDWR | O_CLOEXEC);
  let fd = -1;
  for (let i = 0; i < 20 && fd < 0; i++) {
    const nr = ioctlInt(ctl, LOOP_CTL_GET_FREE, 0);
    try {
      fd = sysOpen(`/dev/loop${nr}`, O_RDWR | O_CLOEXEC | C.O_EXCL);
    } catch {
      // raced by another allocator: ask again
    }
  }
  sysClose(ctl);
  assert.ok(fd >= 0);
  const name = readlinkSync(`/proc/self/fd/${fd}`).replace('/dev/', '');
  try {
    assert.throws(() => execFileSync('losetup', [`/dev/${name}`, img], { stdio: 'pipe' }), /busy/i);
    assert.deepEqual(scratch.bound(), []);
  } finally {
    sysClose(fd);
  }
});


test('direct I/O only when asked; block size as asked (table)', async () => {
  const cases = [
    { directIo: false, blockSize: undefined, dio: '0', lbs: '512' },
    { directIo: true, blockSize: undefined, dio: '1', lbs: '512' },
    { directIo: false, blockSize: 4096, dio: '0', lbs: '4096' },
    { directIo: true, blockSize: 4096, dio: '1', lbs: '4096' },
    { directIo: false, blockSize: 1024, dio: '0', lbs: '1024' },
  ];
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    for (const [i, c] of cases.entries()) {
      const img = scratch.image(`opt-${i}.img`);
      const h = await reg.acquire({ key: `k${i}`, source: img, readOnly: false, directIo: c.directIo, ...(c.blockSize ? { blockSize: c.blockSize } : {}) });
      assert.equal(sysfs(h.name, 'loop/dio'), c.dio, JSON.stringify(c));
      assert.equal(sysfs(h.name, 'queue/logical_block_size'), c.lbs, JSON.stringify(c));
      reg.release(`k${i}`);
    }
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('forced legacy path (LOOP_SET_FD + LOOP_SET_STATUS64) gives the same device, ro and rw', async () => {
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir], legacy: true });
  try {
    for (const ro of [true, false]) {
      const img = scratch.image(`legacy-${ro}.img`);
      const h = await reg.acquire({ key: `l${ro}`, source: img, readOnly: ro });
      assert.equal(sysfs(h.name, 'ro'), ro ? '1' : '0');
      assert.equal(sysfs(h.name, 'loop/autoclear'), '1');
      const st = getStatus(h.fd);
      assert.equal(String(st.inode), scratch.inode(img).ino);
      assert.equal(st.fileName.startsWith('xvbd:v1:'), true);
    }
    assert.equal(reg.stats.legacy, 2);
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

function holdLock(path: string, ms: number): Promise<ChildProcess> {
  // flock(1) takes LOCK_EX on `path`, then prints and sleeps while holding it.
  const child = spawn('flock', ['-x', path, 'sh', '-c', `echo locked; sleep ${ms / 1000}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('error', reject);
  });
}

test('lock order: we wait for another allocator holding /dev/loop-control', async () => {
  const img = scratch.image('ctl-lock.img');
  const child = await holdLock('/dev/loop-control', 600);
  const exited = new Promise((r) => child.once('exit', r));
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const t0 = Date.now();
    const h = await reg.acquire({ key: 'c', source: img, readOnly: true });
    const waited = Date.now() - t0;
    assert.ok(waited >= 300, `attach went ahead after ${waited} ms while the control lock was held`);
    assert.equal(sysfs(h.name, 'diskseq'), h.diskseq);
  } finally {
    reg.closeAll();
    await exited;
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('a control lock held too long gives ETIMEDOUT, not a hang', async () => {
  const img = scratch.image('ctl-timeout.img');
  const child = await holdLock('/dev/loop-control', 1200);
  const exited = new Promise((r) => child.once('exit', r));
  const src = openSource(img, { allowedRoots: [scratch.dir], readOnly: true });
  try {
    const t0 = Date.now();
    await assert.rejects(attachLoop({ fd: src.fd, dev: src.devB, ino: src.inoB }, { readOnly: true, lockTimeoutMs: 200 }), (e) => isSysError(e, 'ETIMEDOUT'));
    assert.ok(Date.now() - t0 < 1000);
  } finally {
    closeSource(src);
    await exited;
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('a free device locked by someone else (udev, systemd-dissect) is skipped, not taken', async () => {
  const img = scratch.image('dev-lock.img');
  const ctl = sysOpen('/dev/loop-control', O_RDWR | O_CLOEXEC);
  const nr = ioctlInt(ctl, LOOP_CTL_GET_FREE, 0);
  sysClose(ctl);
  const child = await holdLock(`/dev/loop${nr}`, 1500);
  const exited = new Promise((r) => child.once('exit', r));
  const src = openSource(img, { allowedRoots: [scratch.dir], readOnly: true });
  const stats = { attempts: 0, retries: {} as Record<string, number>, ctlAdd: 0, legacy: 0 };
  try {
    const loop = await attachLoop({ fd: src.fd, dev: src.devB, ino: src.inoB }, { readOnly: true, stats });
    sysClose(loop.fd);
    assert.notEqual(loop.number, nr, 'took the locked device');
    // Offered the locked device twice in a row, we stop asking for "a free one" and make a new one.
    if ((stats.retries['EBUSY'] ?? 0) >= 2) assert.ok(stats.ctlAdd >= 1, JSON.stringify(stats));
  } finally {
    closeSource(src);
    child.kill();
    await exited;
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});
