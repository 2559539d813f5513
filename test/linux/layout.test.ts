// struct loop_info64 / loop_config layouts, checked against the running kernel's behaviour (sysfs,
// LOOP_GET_STATUS64, and util-linux's losetup as an independent reader and writer), not only the header.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import {
  LOOP_CONFIG_OFFSETS,
  LOOP_CONFIG_SIZE,
  LOOP_INFO64_OFFSETS,
  LOOP_INFO64_SIZE,
  attachLoop,
  decodeLoopInfo64,
  encodeLoopConfig,
  encodeLoopInfo64,
  getStatus,
  isOurMarker,
  makeMarker,
  parseMarker,
} from '../../src/linux/loopdev.js';
import { LO_FLAGS_AUTOCLEAR, LO_FLAGS_READ_ONLY, O_CLOEXEC, O_RDONLY, readDirNames, sysClose, sysOpen } from '../../src/linux/ffi.js';
import { closeSource, openSource } from '../../src/linux/source.js';
import { Scratch, losetup, losetupDetach, sysfs } from './helpers.js';

const scratch = new Scratch('layout');
after(() => scratch.finish());

test('struct sizes and offsets match linux/loop.h', () => {
  assert.equal(LOOP_INFO64_SIZE, 232);
  assert.equal(LOOP_CONFIG_SIZE, 304);
  // Each field ends where the next begins (u64 x5, u32 x4, u8[64] x2, u8[32], u64[2]).
  const o = LOOP_INFO64_OFFSETS;
  const sizes: Array<[keyof typeof o, number]> = [
    ['lo_device', 8], ['lo_inode', 8], ['lo_rdevice', 8], ['lo_offset', 8], ['lo_sizelimit', 8],
    ['lo_number', 4], ['lo_encrypt_type', 4], ['lo_encrypt_key_size', 4], ['lo_flags', 4],
    ['lo_file_name', 64], ['lo_crypt_name', 64], ['lo_encrypt_key', 32], ['lo_init', 16],
  ];
  let at = 0;
  for (const [f, n] of sizes) {
    assert.equal(o[f], at, f);
    at += n;
  }
  assert.equal(at, LOOP_INFO64_SIZE);
  assert.equal(LOOP_CONFIG_OFFSETS.info, 8);
  assert.equal(LOOP_CONFIG_OFFSETS.reserved, 8 + LOOP_INFO64_SIZE);
  assert.equal(LOOP_CONFIG_OFFSETS.reserved + 8 * 8, LOOP_CONFIG_SIZE);
});

test('encode/decode loop_info64 round trips (table)', () => {
  const cases = [
    { device: 0n, inode: 0n, rdevice: 0n, offset: 0n, sizeLimit: 0n, number: 0, flags: 0, fileName: '' },
    { device: 65024n, inode: 15343636n, rdevice: 0n, offset: 4096n, sizeLimit: 1n << 20n, number: 7, flags: 5, fileName: 'xvbd:v1:1:2:ro' },
    { device: (1n << 64n) - 1n, inode: (1n << 64n) - 2n, rdevice: 3n, offset: 1n << 62n, sizeLimit: 12345n, number: 0xffffffff, flags: 0xffffffff, fileName: 'x'.repeat(63) },
  ];
  for (const c of cases) {
    const buf = encodeLoopInfo64(c);
    assert.equal(buf.length, LOOP_INFO64_SIZE);
    assert.deepEqual(decodeLoopInfo64(buf), c);
  }
  assert.throws(() => encodeLoopInfo64({ fileName: 'x'.repeat(64) }), RangeError);
  const cfg = encodeLoopConfig(9, 4096, cases[1]!);
  assert.equal(cfg.readUInt32LE(0), 9);
  assert.equal(cfg.readUInt32LE(4), 4096);
  assert.deepEqual(decodeLoopInfo64(cfg, 8), cases[1]);
  assert.ok(cfg.subarray(LOOP_CONFIG_OFFSETS.reserved).every((b) => b === 0));
});

test('marker: format and recognition (table)', () => {
  const m = makeMarker({ dev: (1n << 64n) - 1n, ino: (1n << 64n) - 1n }, false);
  assert.ok(m.length <= 63, `${m.length}`);
  assert.deepEqual(parseMarker(m), { dev: (1n << 64n) - 1n, ino: (1n << 64n) - 1n, readOnly: false });
  const table: Array<[string, boolean]> = [
    ['xvbd:v1:65024:12:ro', true],
    ['xvbd:v1:65024:12:rw', true],
    ['xvbd:v1:65024:12:rx', false],
    ['xvbd:v1:65024:12', false],
    ['xvbd:v1::12:ro', false],
    ['xvbd:v2:1:2:ro', false],
    ['/var/tmp/disk.img', false],
    ['', false],
    [' xvbd:v1:1:2:ro', false],
    ['xvbd:v1:1:2:ro\n', false],
    ['xvbd:v1:-1:2:ro', false],
    ['xvbd:v1:123456789012345678901:2:ro', false],
  ];
  for (const [name, ours] of table) assert.equal(isOurMarker(name, undefined), ours, JSON.stringify(name));
  // With an instance tag (XVBD_INSTANCE): ours only for the same instance.
  const longest = makeMarker({ dev: (1n << 64n) - 1n, ino: (1n << 64n) - 1n }, true, 'abcdefghij');
  assert.equal(longest.length, 63, 'fits lo_file_name (63 bytes + NUL)');
  assert.deepEqual(parseMarker(longest)?.instance, 'abcdefghij');
  const tagged: Array<[string, string | undefined, boolean]> = [
    ['xvbd:v1:1:2:ro:t1', 't1', true],
    ['xvbd:v1:1:2:ro:t1', undefined, false],
    ['xvbd:v1:1:2:ro', 't1', false],
    ['xvbd:v1:1:2:ro:t2', 't1', false],
    ['xvbd:v1:1:2:ro:', undefined, false],
    ['xvbd:v1:1:2:ro:T1', 'T1', false],
    ['xvbd:v1:1:2:ro:-a', '-a', false],
    ['xvbd:v1:1:2:ro:abcdefghijk', 'abcdefghijk', false],
  ];
  for (const [name, inst, ours] of tagged) assert.equal(isOurMarker(name, inst), ours, `${name} as ${inst}`);
  assert.throws(() => makeMarker({ dev: 1n, ino: 2n }, true, 'Bad!'), RangeError);
});

function losetupJson(name: string): Record<string, unknown> {
  const out = execFileSync(
    'losetup',
    ['--json', '-l', '-O', 'NAME,BACK-INO,BACK-MAJ:MIN,OFFSET,SIZELIMIT,RO,AUTOCLEAR,LOG-SEC,DIO', `/dev/${name}`],
    { encoding: 'utf8' },
  );
  const j = JSON.parse(out) as { loopdevices: Array<Record<string, unknown>> };
  assert.equal(j.loopdevices.length, 1);
  return j.loopdevices[0]!;
}

for (const legacy of [false, true]) {
  test(`kernel reads back what we set: offset, size limit, flags, block size, marker (${legacy ? 'LOOP_SET_FD+SET_STATUS64' : 'LOOP_CONFIGURE'})`, async () => {
    const img = scratch.image(`layout-${legacy}.img`, 8);
    const src = openSource(img, { allowedRoots: [scratch.dir], readOnly: true });
    const offset = 8192n;
    const sizeLimit = 3n << 20n;
    const blockSize = 4096;
    const stats = { attempts: 0, retries: {}, ctlAdd: 0, legacy: 0 };
    const loop = await attachLoop({ fd: src.fd, dev: src.devB, ino: src.inoB }, { readOnly: true, offset, sizeLimit, blockSize, legacy, stats });
    closeSource(src);
    try {
      assert.equal(stats.legacy, legacy ? 1 : 0);
      // sysfs: the kernel's own view
      assert.equal(sysfs(loop.name, 'loop/offset'), String(offset));
      assert.equal(sysfs(loop.name, 'loop/sizelimit'), String(sizeLimit));
      assert.equal(sysfs(loop.name, 'loop/autoclear'), '1');
      assert.equal(sysfs(loop.name, 'ro'), '1');
      assert.equal(sysfs(loop.name, 'loop/dio'), '0');
      assert.equal(sysfs(loop.name, 'queue/logical_block_size'), String(blockSize));
      assert.equal(BigInt(sysfs(loop.name, 'size')) * 512n, sizeLimit);
      assert.equal(sysfs(loop.name, 'loop/backing_file'), img);
      assert.equal(sysfs(loop.name, 'diskseq'), String(loop.diskseq));
      assert.equal(sysfs(loop.name, 'dev'), `${loop.major}:${loop.minor}`);
      // LOOP_GET_STATUS64 through a second fd
      const fd = sysOpen(loop.devPath, O_RDONLY | O_CLOEXEC);
      try {
        const st = getStatus(fd);
        const fst = statSync(img, { bigint: true });
        assert.equal(st.device, fst.dev);
        assert.equal(st.inode, fst.ino);
        assert.equal(st.number, loop.number);
        assert.equal(st.offset, offset);
        assert.equal(st.sizeLimit, sizeLimit);
        assert.equal(st.flags & (LO_FLAGS_AUTOCLEAR | LO_FLAGS_READ_ONLY), LO_FLAGS_AUTOCLEAR | LO_FLAGS_READ_ONLY);
        assert.equal(st.fileName, loop.marker);
        assert.ok(isOurMarker(st.fileName));
      } finally {
        sysClose(fd);
      }
      // util-linux as an independent reader
      const j = losetupJson(loop.name);
      const fst = statSync(img);
      assert.equal(String(j['back-ino']), String(fst.ino));
      assert.equal(j['offset'], Number(offset));
      assert.equal(j['sizelimit'], Number(sizeLimit));
      assert.equal(j['ro'], true);
      assert.equal(j['autoclear'], true);
      assert.equal(j['log-sec'], blockSize);
    } finally {
      sysClose(loop.fd);
    }
    assert.deepEqual(await scratch.waitNoneBound(), [], 'autoclear freed the device at our close');
  });
}

test('decode lo_file_name written by an independent writer (losetup sets it to the path)', async () => {
  const img = scratch.image('by-losetup.img', 4);
  const name = losetup(img, '-o', '512');
  try {
    const fd = sysOpen(`/dev/${name}`, O_RDONLY | O_CLOEXEC);
    try {
      const st = getStatus(fd);
      assert.equal(st.fileName, img.slice(0, 63));
      assert.equal(st.offset, 512n);
      assert.equal(st.inode, statSync(img, { bigint: true }).ino);
      assert.equal(st.flags & LO_FLAGS_AUTOCLEAR, 0);
      assert.equal(isOurMarker(st.fileName), false);
    } finally {
      sysClose(fd);
    }
  } finally {
    losetupDetach(name);
  }
});

test('readDirNames (getdents64) lists what readdir lists, across several getdents batches', () => {
  const dir = `${scratch.dir}/many`;
  mkdirSync(dir);
  const names = Array.from({ length: 700 }, (_, i) => `f${i}-${'x'.repeat(i % 40)}${i % 7 === 0 ? '-é✓' : ''}`);
  for (const n of names) writeFileSync(`${dir}/${n}`, '');
  const small = Buffer.alloc(1024); // forces many getdents64 calls
  assert.deepEqual(readDirNames(dir, small)?.sort(), readdirSync(dir).sort());
  assert.deepEqual(readDirNames('/sys/block', Buffer.alloc(65536))?.sort(), readdirSync('/sys/block').sort());
  assert.equal(readDirNames(`${dir}/missing`, small), undefined);
  assert.equal(readDirNames(`${dir}/${names[0]}`, small), undefined, 'not a directory');
  rmSync(dir, { recursive: true });
});
