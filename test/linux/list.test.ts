// listLoops: every field against the kernel's own view (sysfs, losetup), deleted backing files,
// mounts and holders, and a speed figure.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { listLoops } from '../../src/linux/list.js';
import { LoopRegistry, RegistryError } from '../../src/linux/registry.js';
import { Scratch, losetup, losetupDetach, sysfs } from './helpers.js';

const scratch = new Scratch('list');

after(() => scratch.finish());

test('our device as LoopObs: every field matches sysfs and the file', async () => {
  const img = scratch.image('ours.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const h = await reg.acquire({ key: 'k', source: img, readOnly: true, blockSize: 4096 });
    const l = reg.listLoops().find((x) => x.name === h.name);
    assert.ok(l);
    assert.deepEqual(l, {
      name: h.name,
      number: h.number,
      major: 7,
      minor: Number(sysfs(h.name, 'dev').split(':')[1]),
      diskseq: sysfs(h.name, 'diskseq'),
      backing: scratch.inode(img),
      backingPath: img,
      backingDeleted: false,
      readOnly: true,
      autoclear: true,
      directIo: false,
      blockSize: 4096,
      offset: '0',
      sizeLimit: '0',
      ours: true,
      mounted: false,
      holders: [],
      heldByUs: true,
    });
    assert.equal(sysfs(h.name, 'dev'), `${l.major}:${l.minor}`);
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('a foreign device: not ours, its flags and offsets as losetup set them', () => {
  const img = scratch.image('theirs.img', 8);
  const theirs = losetup(img, '-r', '-o', '1048576', '--sizelimit', '2097152');
  try {
    const l = listLoops().find((x) => x.name === theirs);
    assert.ok(l);
    assert.equal(l.ours, false);
    assert.equal(l.heldByUs, false);
    assert.equal(l.readOnly, true);
    assert.equal(l.autoclear, false);
    assert.equal(l.offset, '1048576');
    assert.equal(l.sizeLimit, '2097152');
    assert.deepEqual(l.backing, scratch.inode(img));
    assert.equal(l.backingPath, img);
    assert.equal(l.diskseq, sysfs(theirs, 'diskseq'));
    assert.equal(String(l.blockSize), sysfs(theirs, 'queue/logical_block_size'));
  } finally {
    losetupDetach(theirs);
  }
  assert.equal(listLoops().find((x) => x.name === theirs), undefined, 'unbound devices are not listed');
});

test('deleted backing file is seen as stale; a file really named "... (deleted)" is not', async () => {
  const img = scratch.image('gone.img');
  const tricky = scratch.image('tricky (deleted)');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const h = await reg.acquire({ key: 'g', source: img, readOnly: true });
    const t = await reg.acquire({ key: 't', source: tricky, readOnly: true });
    unlinkSync(img);
    const all = reg.listLoops();
    const l = all.find((x) => x.name === h.name);
    assert.equal(l?.backingDeleted, true);
    assert.equal(l?.backingPath, `${img} (deleted)`);
    const lt = all.find((x) => x.name === t.name);
    assert.equal(lt?.backingDeleted, false);
    assert.equal(lt?.backingPath, tricky);
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('mounted in dom0: the device itself, or one of its partitions', { timeout: 30_000 }, () => {
  const img = scratch.image('fs.img', 16);
  execFileSync('mkfs.ext4', ['-q', '-F', img]);
  const parted = scratch.image('parted.img', 16);
  const whole = losetup(img);
  const withParts = losetup(parted, '-P');
  const mnt = `${scratch.dir}/mnt`;
  mkdirSync(mnt);
  let mounted = false;
  try {
    execFileSync('mount', ['-t', 'ext4', `/dev/${whole}`, mnt]);
    mounted = true;
    assert.equal(listLoops().find((x) => x.name === whole)?.mounted, true);
    execFileSync('umount', [mnt]);
    mounted = false;
    assert.equal(listLoops().find((x) => x.name === whole)?.mounted, false);

    // This kernel may parse no partition table at all: add the partition by BLKPG (addpart), and make
    // its node ourselves from sysfs in case udev is not running.
    execFileSync('addpart', [`/dev/${withParts}`, '1', '2048', String(16 * 2048 - 2048)]);
    const dev = readFileSync(`/sys/block/${withParts}/${withParts}p1/dev`, 'utf8').trim();
    const part = `${scratch.dir}/part1`;
    execFileSync('mknod', [part, 'b', ...dev.split(':')]);
    execFileSync('mkfs.ext4', ['-q', '-F', part]);
    execFileSync('mount', ['-t', 'ext4', part, mnt]);
    mounted = true;
    const l = listLoops().find((x) => x.name === withParts);
    assert.equal(l?.mounted, true, 'a mounted partition counts as mounted');
    assert.equal(listLoops().find((x) => x.name === whole)?.mounted, false);
  } finally {
    if (mounted) execFileSync('umount', [mnt]);
    losetupDetach(whole);
    losetupDetach(withParts);
    rmSync(mnt, { recursive: true, force: true });
  }
});

test('holders (device-mapper on top) are seen', { timeout: 30_000 }, (t) => {
  if (!readFileSync('/proc/misc', 'utf8').includes('device-mapper')) {
    t.skip('no device-mapper in this kernel (not in /proc/misc)');
    return;
  }
  const img = scratch.image('dm.img', 8);
  const theirs = losetup(img);
  const dmName = `xvbd-test-${process.pid}`;
  let dm = false;
  try {
    assert.deepEqual(listLoops().find((x) => x.name === theirs)?.holders, []);
    execFileSync('dmsetup', ['create', dmName, '--table', `0 ${sysfs(theirs, 'size')} linear /dev/${theirs} 0`]);
    dm = true;
    const l = listLoops().find((x) => x.name === theirs);
    assert.equal(l?.holders.length, 1);
    assert.match(l!.holders[0]!, /^dm-\d+$/);
  } finally {
    if (dm) execFileSync('dmsetup', ['remove', dmName]);
    losetupDetach(theirs);
  }
});


test('registry.listLoops (bound set kept by uevents) sees devices come and go like a full sweep', async () => {
  const img = scratch.image('sweep.img');
  const ours = scratch.image('sweep-ours.img');
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const mine = (ls: Array<{ backingPath: string; name: string }>) => ls.filter((l) => l.backingPath.startsWith(scratch.dir)).map((l) => l.name).sort();
    assert.deepEqual(mine(reg.listLoops()), []);
    const theirs = losetup(img);
    const h = await reg.acquire({ key: 'k', source: ours, readOnly: true });
    assert.deepEqual(mine(reg.listLoops()), [theirs, h.name].sort());
    assert.deepEqual(mine(reg.listLoops()), mine(listLoops()));
    losetupDetach(theirs);
    reg.release('k');
    // Freed at the last close, which may be a passer-by's (another observer) a moment later.
    for (let i = 0; i < 100 && mine(reg.listLoops()).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(mine(reg.listLoops()), []);
  } finally {
    reg.closeAll();
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});

test('registry.listLoops on a stale host index: its own sweep is the full scan, and the index it leaves is right', async () => {
  const img = scratch.image('stale.img');
  const theirs = losetup(img);
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir] });
  try {
    const first = reg.listLoops();
    assert.ok(first.some((l) => l.name === theirs));
    assert.equal(reg.hostStats.fullScans, 1, 'one scan: the sweep itself');
    if (reg.hostStats.uevents) {
      // Current now: the next listing looks only at the devices the index knows, and still sees theirs.
      assert.ok(reg.listLoops().some((l) => l.name === theirs));
      assert.equal(reg.hostStats.fullScans, 1);
    }
    // The index (not a fresh scan) is what first flags the writable device of the same file.
    await assert.rejects(reg.acquire({ key: 'k', source: img, readOnly: true }), (e) => e instanceof RegistryError && e.reason === 'rw-conflict');
  } finally {
    reg.closeAll();
    losetupDetach(theirs);
  }
  assert.deepEqual(await scratch.waitNoneBound(), []);
});
