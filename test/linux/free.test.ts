// Freeing with proof: only our marker (matching the device's backing) and the recorded diskseq.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { LoopRegistry, RegistryError } from '../../src/linux/registry.js';
import { LoopFreeRefused, encodeLoopInfo64, freeLoop, getStatus, makeMarker, type FreeProof } from '../../src/linux/loopdev.js';
import { LOOP_SET_STATUS64, O_CLOEXEC, O_RDONLY, ioctlPtr, sysClose, sysOpen } from '../../src/linux/ffi.js';
import { listLoops } from '../../src/linux/list.js';
import { Scratch, losetup, losetupDetach, sysfs } from './helpers.js';

const scratch = new Scratch('free');
after(() => scratch.finish());

function refusal(fn: () => unknown, why: string): void {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof LoopFreeRefused, String(e));
    assert.equal(e.reason, why, e.message);
    return true;
  });
}

test('refuses a foreign device (made by losetup) and leaves it alone', () => {
  const img = scratch.image('foreign.img');
  const theirs = losetup(img);
  try {
    const seq = sysfs(theirs, 'diskseq');
    refusal(() => freeLoop({ name: theirs, diskseq: seq }), 'not-ours');
    assert.equal(sysfs(theirs, 'diskseq'), seq, 'still bound, same device');
    assert.equal(sysfs(theirs, 'loop/autoclear'), '0', 'not even marked for autoclear');
  } finally {
    losetupDetach(theirs);
  }
});

test('refuses a forged marker that does not name the backing file', () => {
  const img = scratch.image('forged.img');
  const theirs = losetup(img);
  try {
    const fd = sysOpen(`/dev/${theirs}`, O_RDONLY | O_CLOEXEC);
    try {
      const st = getStatus(fd);
      const forged = makeMarker({ dev: st.device, ino: st.inode + 1n }, false);
      ioctlPtr(fd, LOOP_SET_STATUS64, encodeLoopInfo64({ ...st, flags: 0, fileName: forged }));
      assert.equal(getStatus(fd).fileName, forged);
    } finally {
      sysClose(fd);
    }
    refusal(() => freeLoop({ name: theirs, diskseq: sysfs(theirs, 'diskseq') }), 'not-ours');
  } finally {
    losetupDetach(theirs);
  }
});

test('refuses a reused device (diskseq differs from the proof), a wrong backing, bad names, unbound devices', async () => {
  const a = scratch.image('a.img');
  const b = scratch.image('b.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const first = await reg.acquire({ key: 'x', source: a, readOnly: false });
    const oldProof: FreeProof = { name: first.name, diskseq: first.diskseq, backing: first.backing };
    reg.release('x');
    // The device name comes back with another disk (likely the same number: GET_FREE gives the lowest).
    const second = await reg.acquire({ key: 'y', source: b, readOnly: false });
    refusal(() => freeLoop({ ...oldProof, name: second.name }), 'diskseq-mismatch');
    refusal(() => freeLoop({ name: second.name, diskseq: second.diskseq, backing: first.backing }), 'backing-mismatch');
    refusal(() => freeLoop({ name: '../sda', diskseq: '1' }), 'bad-name');
    refusal(() => freeLoop({ name: 'sda', diskseq: '1' }), 'bad-name');
    assert.equal(sysfs(second.name, 'diskseq'), second.diskseq, 'refusals changed nothing');
    assert.throws(() => reg.free({ name: second.name, diskseq: second.diskseq }), (e) => e instanceof RegistryError && e.reason === 'users');
    const r = reg.free({ name: second.name, diskseq: second.diskseq, backing: second.backing }, { force: true });
    assert.deepEqual(r, { name: second.name, diskseq: second.diskseq, deferred: false });
    assert.deepEqual(scratch.bound(), []);
    assert.equal(reg.fds().length, 0);
    const gone = () => freeLoop({ name: second.name, diskseq: second.diskseq });
    assert.throws(gone, (e) => e instanceof LoopFreeRefused && (e.reason === 'not-bound' || e.reason === 'no-device' || e.reason === 'diskseq-mismatch'));
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('free of a device another opener holds (blkback) is deferred until that opener lets go', async () => {
  const img = scratch.image('held.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  const h = await reg.acquire({ key: 'k', source: img, readOnly: true });
  const blkback = openSync(h.devPath, 'r');
  try {
    // A restart lost our fd: free by proof alone, through a fresh registry.
    reg.closeAll();
    const r = new LoopRegistry().free({ name: h.name, diskseq: h.diskseq });
    assert.equal(r.deferred, true);
    assert.deepEqual(scratch.bound(), [h.name]);
  } finally {
    closeSync(blkback);
  }
  assert.deepEqual(await scratch.waitNoneBound(), [], 'freed at the other opener\'s close');
});

test('XVBD_INSTANCE: another instance\'s devices are not ours (not listed as ours, not freed, not shared)', async () => {
  const img = scratch.image('instance.img');
  const saved = process.env['XVBD_INSTANCE'];
  process.env['XVBD_INSTANCE'] = 'test-a';
  const a = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const h = await a.acquire({ key: 'k', source: img, readOnly: true });
    assert.equal(getStatus(h.fd).fileName.endsWith(':ro:test-a'), true);
    assert.equal(listLoops().find((l) => l.name === h.name)?.ours, true);
    process.env['XVBD_INSTANCE'] = 'test-b';
    assert.equal(listLoops().find((l) => l.name === h.name)?.ours, false);
    refusal(() => freeLoop({ name: h.name, diskseq: h.diskseq }), 'not-ours');
    const b = new LoopRegistry({ allowedRoots: [scratch.dir] });
    try {
      const hb = await b.acquire({ key: 'k', source: img, readOnly: true });
      assert.notEqual(hb.diskseq, h.diskseq, 'b made its own device instead of adopting a\'s');
    } finally {
      b.closeAll();
    }
    delete process.env['XVBD_INSTANCE'];
    assert.equal(listLoops().find((l) => l.name === h.name)?.ours, false, 'untagged xvbd does not own tagged devices');
  } finally {
    if (saved === undefined) delete process.env['XVBD_INSTANCE'];
    else process.env['XVBD_INSTANCE'] = saved;
    a.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});
