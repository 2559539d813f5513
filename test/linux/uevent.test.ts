// Kernel uevents as the invalidation hint of the registry's host index.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { LoopUevents, diskseqOf, loopNameOf } from '../../src/linux/uevent.js';
import { LoopRegistry, RegistryError } from '../../src/linux/registry.js';
import { Scratch, losetup, losetupDetach } from './helpers.js';

const scratch = new Scratch('uevent');
after(() => scratch.finish());

test('loopNameOf parses kernel uevent headers (table)', () => {
  const table: Array<[string, string | undefined]> = [
    ['change@/devices/virtual/block/loop3\0ACTION=change\0DEVNAME=loop3\0', 'loop3'],
    ['add@/devices/virtual/block/loop12\0ACTION=add\0', 'loop12'],
    ['change@/devices/virtual/block/loop3/loop3p1\0ACTION=change\0', undefined],
    ['change@/devices/virtual/block/zram0\0', undefined],
    ['libudev\0garbage', undefined],
    ['', undefined],
    ['change@/devices/virtual/block/loopx\0', undefined],
  ];
  for (const [msg, name] of table) assert.equal(loopNameOf(Buffer.from(msg, 'latin1')), name, JSON.stringify(msg));
  const seqs: Array<[string, string | undefined]> = [
    ['change@/devices/virtual/block/loop3\0ACTION=change\0DISKSEQ=42\0', '42'],
    ['change@/devices/virtual/block/loop3\0DISKSEQ=42', '42'],
    ['change@/devices/virtual/block/loop3\0DISKSEQ=4x2\0', undefined],
    ['change@/devices/virtual/block/loop3\0XDISKSEQ=42\0', undefined],
    ['change@/devices/virtual/block/loop3\0', undefined],
  ];
  for (const [msg, seq] of seqs) assert.equal(diskseqOf(Buffer.from(msg, 'latin1')), seq, JSON.stringify(msg));
});

test('an attach and a detach by another tool are announced by the time it returns', () => {
  const ue = new LoopUevents();
  try {
    ue.drain();
    const img = scratch.image('ue.img');
    const name = losetup(img);
    losetupDetach(name);
    const got = ue.drain();
    assert.equal(got.overrun, false);
    assert.ok(got.names.has(name), `no uevent for ${name}: ${[...got.names.keys()].join(',')}`);
    assert.match(got.names.get(name) ?? '', /^\d+$/, 'DISKSEQ carried in the event');
  } finally {
    ue.close();
  }
});

test('the registry sees a foreign device attached after its index was built (no scan window)', async () => {
  const first = scratch.image('first.img');
  const late = scratch.image('late.img');
  // A huge fallback TTL: only uevents can tell the index about the late device.
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir], hostScanTtlMs: 3_600_000 });
  try {
    await reg.acquire({ key: 'a', source: first, readOnly: false });
    const theirs = losetup(late);
    try {
      await assert.rejects(reg.acquire({ key: 'b', source: late, readOnly: false }), (e) => e instanceof RegistryError && e.reason === 'in-use');
    } finally {
      losetupDetach(theirs);
    }
    // And once it is gone, the file is free again.
    const h = await reg.acquire({ key: 'b', source: late, readOnly: false });
    assert.deepEqual(h.backing, scratch.inode(late));
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('loopNameOf and diskseqOf take the decoded text as well as the datagram', () => {
  const msg = 'change@/devices/virtual/block/loop7\0ACTION=change\0DEVNAME=loop7\0DISKSEQ=42\0';
  assert.equal(loopNameOf(msg), 'loop7');
  assert.equal(diskseqOf(msg), '42');
  assert.equal(loopNameOf(msg), loopNameOf(Buffer.from(msg, 'latin1')));
});
