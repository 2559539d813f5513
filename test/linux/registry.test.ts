// LoopRegistry: sharing read-only devices by inode, user counting, refusals, adopt, fds, host checks.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, constants as fsc, linkSync, openSync } from 'node:fs';
import { LoopRegistry, RegistryError } from '../../src/linux/registry.js';
import { LoopFreeRefused } from '../../src/linux/loopdev.js';
import { SourceError } from '../../src/linux/source.js';
import { listLoops } from '../../src/linux/list.js';
import { O_CLOEXEC, O_RDONLY, ioctlInt, sysClose, sysOpen } from '../../src/linux/ffi.js';
import { Scratch, losetup, losetupDetach, sysfs } from './helpers.js';

const LOOP_CHANGE_FD = 0x4c06;

const scratch = new Scratch('registry');
after(() => scratch.finish());

function reason(e: unknown): string {
  return e instanceof RegistryError || e instanceof SourceError ? e.reason : `unexpected: ${String(e)}`;
}

async function refuses(p: Promise<unknown>, why: string): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.equal(reason(e), why, String(e));
    // the typed fact the executor waits on (a device of ours being freed), never read from the text
    if (e instanceof RegistryError) assert.equal(e.ours, /made by xvbd earlier/.test(e.message), String(e));
    return true;
  });
}

test('read-only disks of one file share one device, by inode (hard link too); last release frees it', async () => {
  const img = scratch.image('shared.img');
  const alias = `${scratch.dir}/alias.img`;
  linkSync(img, alias);
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const a = await reg.acquire({ key: 'be/1/51712', source: img, readOnly: true });
    const b = await reg.acquire({ key: 'be/2/51712', source: img, readOnly: true });
    const c = await reg.acquire({ key: 'be/3/51728', source: alias, readOnly: true });
    assert.equal(b.diskseq, a.diskseq);
    assert.equal(c.diskseq, a.diskseq);
    assert.equal(c.fd, a.fd, 'exactly one fd per device');
    assert.deepEqual(scratch.bound(), [a.name]);
    assert.deepEqual(reg.users(a.diskseq).sort(), ['be/1/51712', 'be/2/51712', 'be/3/51728']);
    assert.equal(reg.fds().length, 1);
    assert.deepEqual(reg.release('be/1/51712')?.closed, false);
    assert.deepEqual(reg.release('be/2/51712')?.closed, false);
    assert.equal(reg.release('nobody'), undefined);
    assert.deepEqual(scratch.bound(), [a.name]);
    assert.deepEqual(reg.release('be/3/51728')?.closed, true);
    assert.deepEqual(scratch.bound(), []);
    assert.equal(reg.fds().length, 0);
  } finally {
    reg.closeAll();
  }
});

test('read-only sharing only between disks with the same block size and direct I/O', async () => {
  const img = scratch.image('opts.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const other = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const big = await reg.acquire({ key: 'a', source: img, readOnly: true, blockSize: 4096 });
    const plain = await reg.acquire({ key: 'b', source: img, readOnly: true });
    const plain2 = await reg.acquire({ key: 'c', source: img, readOnly: true });
    const big2 = await reg.acquire({ key: 'd', source: img, readOnly: true, blockSize: 4096 });
    const dio = await reg.acquire({ key: 'e', source: img, readOnly: true, directIo: true });
    assert.notEqual(plain.diskseq, big.diskseq);
    assert.equal(plain2.diskseq, plain.diskseq);
    assert.equal(big2.diskseq, big.diskseq);
    assert.notEqual(dio.diskseq, plain.diskseq);
    assert.notEqual(dio.diskseq, big.diskseq);
    assert.equal(sysfs(big.name, 'queue/logical_block_size'), '4096');
    assert.equal(sysfs(plain.name, 'queue/logical_block_size'), '512');
    // Another registry (a restart) reuses the device with the matching options.
    assert.equal((await other.acquire({ key: 'x', source: img, readOnly: true, blockSize: 4096 })).diskseq, big.diskseq);
    assert.equal((await other.acquire({ key: 'y', source: img, readOnly: true })).diskseq, plain.diskseq);
    assert.equal(scratch.bound().length, 3);
  } finally {
    reg.closeAll();
    other.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('refusals: second writer, ro next to rw, key reuse; idempotent acquire', async () => {
  const img = scratch.image('rw-once.img');
  const other = scratch.image('other.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const w = await reg.acquire({ key: 'w1', source: img, readOnly: false });
    assert.equal((await reg.acquire({ key: 'w1', source: img, readOnly: false })).diskseq, w.diskseq, 'same key, same disk: same handle');
    await refuses(reg.acquire({ key: 'w2', source: img, readOnly: false }), 'in-use');
    await refuses(reg.acquire({ key: 'r1', source: img, readOnly: true }), 'rw-conflict');
    await refuses(reg.acquire({ key: 'w1', source: other, readOnly: false }), 'key-in-use');
    await refuses(reg.acquire({ key: 'w1', source: img, readOnly: true }), 'key-in-use');
    const r = await reg.acquire({ key: 'r2', source: other, readOnly: true });
    await refuses(reg.acquire({ key: 'w3', source: other, readOnly: false }), 'in-use');
    await refuses(reg.acquire({ key: 'x', source: `${scratch.dir}/../etc/passwd`, readOnly: true }), 'outside-roots');
    await refuses(reg.acquire({ key: 'x', source: `${scratch.dir}/missing.img`, readOnly: true }), 'not-found');
    assert.deepEqual(scratch.bound(), [w.name, r.name].sort());
    // The queue survived the refusals.
    assert.equal(reg.fds().length, 2);
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('host check: a foreign device on the file blocks a writer; a foreign writable one blocks readers', async () => {
  const img = scratch.image('foreign.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const theirs = losetup(img);
  try {
    await refuses(reg.acquire({ key: 'w', source: img, readOnly: false }), 'in-use');
    await assert.rejects(reg.acquire({ key: 'w', source: img, readOnly: false }), (e) => e instanceof RegistryError && !e.ours);
    await refuses(reg.acquire({ key: 'r', source: img, readOnly: true }), 'rw-conflict');
  } finally {
    losetupDetach(theirs);
  }
  const theirsRo = losetup(img, '-r');
  try {
    const h = await reg.acquire({ key: 'r', source: img, readOnly: true });
    assert.notEqual(h.name, theirsRo, 'never reuses a foreign device');
    assert.equal(sysfs(theirsRo, 'loop/autoclear'), '0', 'theirs untouched');
    reg.release('r');
  } finally {
    losetupDetach(theirsRo);
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('a second registry: a writer next to our device is refused as in-use by a device of ours (typed, not by its text)', async () => {
  const img = scratch.image('ours-rw.img');
  const a = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const b = new LoopRegistry({ allowedRoots: [scratch.dir], settleMs: 0 });
  try {
    await a.acquire({ key: 'k', source: img, readOnly: false });
    await refuses(b.acquire({ key: 'w', source: img, readOnly: false }), 'in-use');
    await assert.rejects(b.acquire({ key: 'w', source: img, readOnly: false }), (e) => e instanceof RegistryError && e.ours);
  } finally {
    a.closeAll();
    b.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('a second registry (e.g. after a restart) reuses our read-only device for the same file', async () => {
  const img = scratch.image('reuse.img');
  const a = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const b = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const ha = await a.acquire({ key: 'k', source: img, readOnly: true });
    const hb = await b.acquire({ key: 'k', source: img, readOnly: true });
    assert.equal(hb.name, ha.name);
    assert.equal(hb.diskseq, ha.diskseq);
    assert.notEqual(hb.fd, ha.fd);
    a.closeAll();
    assert.deepEqual(scratch.bound(), [ha.name], 'b still holds it');
    // A writer from b for that file is refused: our ro device exists.
    await refuses(b.acquire({ key: 'w', source: img, readOnly: false }), 'in-use');
  } finally {
    a.closeAll();
    b.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('adopt: takes back our fd (as from the fd store), refuses foreign and non-loop fds, dedups', async () => {
  const img = scratch.image('adopt.img');
  const a = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const b = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const theirsImg = scratch.image('adopt-theirs.img');
  const theirs = losetup(theirsImg);
  try {
    const h = await a.acquire({ key: 'be/5/51712', source: img, readOnly: false });
    const parked = openSync(h.devPath, 'r'); // what the fd store would hand back
    const got = b.adopt(parked, ['be/5/51712']);
    assert.equal(got.diskseq, h.diskseq);
    assert.equal(got.name, h.name);
    assert.equal(got.readOnly, false);
    assert.deepEqual(got.backing, scratch.inode(img));
    assert.deepEqual(b.users(h.diskseq), ['be/5/51712']);
    // The same device again: the duplicate fd is closed, the handle is the one we have.
    const dup = openSync(h.devPath, 'r');
    assert.equal(b.adopt(dup).fd, parked);
    assert.throws(() => closeSync(dup), /EBADF/, 'duplicate fd was closed by adopt');
    // The writer coming back after a restart gets the adopted device, not a new one.
    const again = await b.acquire({ key: 'be/5/51712', source: img, readOnly: false });
    assert.equal(again.diskseq, h.diskseq);
    a.closeAll();
    assert.deepEqual(scratch.bound().filter((n) => n !== theirs), [h.name]);

    const foreign = openSync(`/dev/${theirs}`, 'r');
    try {
      assert.throws(() => b.adopt(foreign), (e) => reason(e) === 'not-ours');
    } finally {
      closeSync(foreign);
    }
    const plain = openSync(img, 'r');
    try {
      assert.throws(() => b.adopt(plain), (e) => reason(e) === 'not-loop');
    } finally {
      closeSync(plain);
    }
  } finally {
    a.closeAll();
    b.closeAll();
    losetupDetach(theirs);
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('adoptByProof: after a restart without the fd store, take back our device by its recorded diskseq', async () => {
  const img = scratch.image('proof.img');
  const theirsImg = scratch.image('proof-theirs.img');
  const a = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const b = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const theirs = losetup(theirsImg);
  let blkback = -1;
  try {
    const h = await a.acquire({ key: 'be/7/51712', source: img, readOnly: false });
    blkback = openSync(h.devPath, 'r'); // keeps it bound after our "crash"
    // While the first registry still holds it (O_EXCL), nobody can adopt it.
    assert.throws(() => b.adoptByProof({ name: h.name, diskseq: h.diskseq }), (e) => reason(e) === 'in-use');
    a.closeAll(); // the crash
    assert.throws(() => b.adoptByProof({ name: h.name, diskseq: String(BigInt(h.diskseq) + 1n) }), (e) => e instanceof LoopFreeRefused && e.reason === 'diskseq-mismatch');
    assert.throws(() => b.adoptByProof({ name: h.name, diskseq: h.diskseq, backing: { dev: h.backing.dev, ino: '1' } }), (e) => e instanceof LoopFreeRefused && e.reason === 'backing-mismatch');
    assert.throws(() => b.adoptByProof({ name: theirs, diskseq: sysfs(theirs, 'diskseq') }), (e) => e instanceof LoopFreeRefused && e.reason === 'not-ours');
    const got = b.adoptByProof({ name: h.name, diskseq: h.diskseq, backing: h.backing }, ['be/7/51712']);
    assert.equal(got.diskseq, h.diskseq);
    assert.equal((await b.acquire({ key: 'be/7/51712', source: img, readOnly: false })).diskseq, h.diskseq);
    closeSync(blkback);
    blkback = -1;
    assert.deepEqual(scratch.bound().filter((n) => n !== theirs), [h.name], 'held by b now');
  } finally {
    if (blkback >= 0) closeSync(blkback);
    a.closeAll();
    b.closeAll();
    losetupDetach(theirs);
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('fds() and listLoops heldByUs; dropUnused closes adopted fds nobody claimed', async () => {
  const img = scratch.image('fds.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const h = await reg.acquire({ key: 'k', source: img, readOnly: true });
    assert.deepEqual(reg.fds(), [{ diskseq: h.diskseq, fd: h.fd, name: h.name, users: ['k'] }]);
    const mine = reg.listLoops().find((l) => l.name === h.name);
    assert.equal(mine?.heldByUs, true);
    assert.equal(mine?.ours, true);
    assert.equal(listLoops().find((l) => l.name === h.name)?.heldByUs, false);
    const reg2 = new LoopRegistry();
    reg2.adopt(openSync(h.devPath, 'r'));
    assert.equal(reg2.dropUnused().length, 1);
    assert.equal(reg2.fds().length, 0);
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('kind: block uses the block device as is (no loop device made); a file path is refused as block', async () => {
  const img = scratch.image('blk.img');
  const theirs = losetup(img); // a block device to serve
  const reg = new LoopRegistry();
  try {
    const before = scratch.bound();
    const h = await reg.acquire({ key: 'b', source: `/dev/${theirs}`, readOnly: true, kind: 'block' });
    assert.equal(h.kind, 'block');
    assert.equal(h.name, theirs);
    assert.equal(h.diskseq, sysfs(theirs, 'diskseq'));
    assert.equal(`${h.major}:${h.minor}`, sysfs(theirs, 'dev'));
    assert.deepEqual(scratch.bound(), before, 'no new loop device');
    // Held exclusively: dom0 cannot mount or claim it meanwhile; a second reader shares the handle.
    assert.throws(() => openSync(`/dev/${theirs}`, fsc.O_RDONLY | fsc.O_EXCL), /EBUSY/);
    assert.equal((await reg.acquire({ key: 'b2', source: `/dev/${theirs}`, readOnly: true, kind: 'block' })).fd, h.fd);
    reg.release('b2');
    await refuses(reg.acquire({ key: 'c', source: img, readOnly: true, kind: 'block' }), 'not-block');
    await refuses(reg.acquire({ key: 'd', source: `/dev/${theirs}`, readOnly: true }), 'not-regular');
    reg.release('b');
    assert.equal(sysfs(theirs, 'loop/autoclear'), '0', 'untouched');
    // Claimed by someone in dom0 (a mount, LVM): refused.
    const claim = openSync(`/dev/${theirs}`, fsc.O_RDONLY | fsc.O_EXCL);
    try {
      await refuses(reg.acquire({ key: 'e', source: `/dev/${theirs}`, readOnly: true, kind: 'block' }), 'busy');
    } finally {
      closeSync(claim);
    }
  } finally {
    reg.closeAll();
    losetupDetach(theirs);
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('a device re-pointed under us by someone else (LOOP_CHANGE_FD) is stale: not shared, not ours', async () => {
  const img = scratch.image('stale.img');
  const swap = scratch.image('stale-swap.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const h = await reg.acquire({ key: 'a', source: img, readOnly: true });
    const swapFd = sysOpen(swap, O_RDONLY | O_CLOEXEC);
    const other = sysOpen(h.devPath, O_RDONLY | O_CLOEXEC);
    try {
      // The kernel lets any opener re-point a read-only loop device (no exclusive claim needed).
      ioctlInt(other, LOOP_CHANGE_FD, swapFd);
    } finally {
      sysClose(other);
      sysClose(swapFd);
    }
    await refuses(reg.acquire({ key: 'b', source: img, readOnly: true }), 'stale');
    assert.equal(listLoops().find((l) => l.name === h.name)?.ours, false, 'marker no longer matches its backing');
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});
