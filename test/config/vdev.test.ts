// vdev <-> devid, as docs/misc/vbd-interface.txt encodes them and libxl parses the names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { devidToVdev, diskToLetters, parseVdev, vdevToDevid, VdevError } from '../../src/config/vdev.js';

const EXT = 1 << 28;

// [vdev, devid, why]
const VALID: [string, number, string][] = [
  ['xvda', 51712, '202 << 8, disk 0'],
  ['xvdb', 51728, 'disk 1 << 4'],
  ['xvda1', 51713, 'partition 1'],
  ['xvda15', 51727, 'last partition of the short form'],
  ['xvdp', 51952, 'disk 15, last disk of the short form'],
  ['xvdp15', 51967, 'disk 15 partition 15'],
  ['xvdq', 268439552, 'disk 16: extended form (the doc example)'],
  ['xvda16', EXT | 16, 'partition 16 needs the extended form even for disk 0'],
  ['xvda255', EXT | 255, 'last partition of the extended form'],
  ['xvdz', EXT | (25 << 8), 'disk 25'],
  ['xvdaa', EXT | (26 << 8), 'bijective base 26: aa = 26'],
  ['xvdtq', EXT | (536 << 8), 'xvdtq = disk 536 (vbd-interface.txt)'],
  ['xvdtq37', EXT | (536 << 8) | 37, 'xvdtq37 = d536p37'],
  [`xvd${diskToLetters((1 << 20) - 1)}`, EXT + ((1 << 20) - 1) * 256, 'last disk of the extended form'],
  [`xvd${diskToLetters((1 << 20) - 1)}255`, 2 * EXT - 1, 'the highest devid'],
  ['d0p0', 51712, 'd0p0 = xvda'],
  ['d0', 51712, 'd0 = d0p0 (vbd-interface.txt lists it)'],
  ['d1p2', 51730, 'd1p2 = xvdb2'],
  ['d536p37', EXT | (536 << 8) | 37, 'd536p37 = xvdtq37'],
  ['d15p15', 51967, 'short form boundary'],
  ['d16p0', 268439552, 'extended from disk 16'],
  ['d1048575p255', 2 * EXT - 1, 'd-form maximum'],
  ['hda', 768, '3 << 8'],
  ['hda1', 769, 'hd partition 1'],
  ['hda63', 831, 'last hd partition'],
  ['hdb', 832, 'disk 1 << 6'],
  ['hdc', 5632, '22 << 8'],
  ['hdd', 5696, 'hdd = 22 << 8 | 1 << 6'],
  ['hdd63', 5759, 'the last hd device'],
  ['sda', 2048, '8 << 8'],
  ['sda1', 2049, 'sd partition 1'],
  ['sdb', 2064, 'disk 1 << 4'],
  ['sdp15', 2303, 'the last sd device'],
  ['51712', 51712, 'a plain decimal number'],
  ['0xca00', 51712, 'hex, as strtoul(…, 0)'],
  ['0XCA00', 51712, 'hex, upper case'],
  ['0145000', 51712, 'octal, as strtoul(…, 0)'],
  ['0', 0, 'zero'],
  ['536870911', 2 * EXT - 1, 'the highest number'],
  ['XVDA', 51712, 'upper case is folded'],
];

// [vdev, part of the message]
const INVALID: [string, string][] = [
  ['', 'empty'],
  ['xvd', 'no disk letter'],
  ['sd', 'no disk letter'],
  ['xvda0', 'partition 0; the whole disk is written `xvda`'],
  ['xvda01', 'leading zero'],
  ['hda0', 'partition 0'],
  ['xvda256', 'partitions 1 to 255'],
  ['sda16', 'partitions 1 to 15'],
  ['hda64', 'partitions 1 to 63'],
  ['hde', 'beyond `hdd`'],
  ['sdq', 'beyond `sdp`'],
  [`xvd${diskToLetters(1 << 20)}`, 'beyond the last Xen virtual disk'],
  ['xvda1a', 'only a partition number may follow'],
  ['xvd1', 'no disk letter'],
  ['vda', 'not a Xen device name'],
  ['nvme0n1', 'not a Xen device name'],
  ['xvda 1', 'only a partition number may follow'],
  ['d01p0', 'leading zero'],
  ['d0p256', 'partition 256'],
  ['d1048576p0', 'disk 1048576'],
  ['d0p', 'not a Xen device name'],
  ['09', 'not a number'],
  ['12abc', 'not a number'],
  ['0x', 'not a number'],
  ['536870912', 'reserved for future use'],
  ['0x20000000', 'reserved for future use'],
  ['-1', 'not a Xen device name'],
  ['x'.repeat(100), 'too long'],
];

test('vdevToDevid: every form of vbd-interface.txt', () => {
  for (const [vdev, devid, why] of VALID) {
    assert.equal(vdevToDevid(vdev), devid, `${vdev}: ${why}`);
  }
});

test('vdevToDevid rejects what Xen rejects, with a sentence naming the vdev', () => {
  for (const [vdev, part] of INVALID) {
    assert.throws(
      () => vdevToDevid(vdev),
      (err: unknown) => err instanceof VdevError && err.message.includes(part) && !err.message.includes('\n'),
      `${JSON.stringify(vdev)} should be rejected with "${part}"`,
    );
  }
});

test('parseVdev reports disk and partition', () => {
  assert.deepEqual(parseVdev('xvdtq37'), { devid: EXT | (536 << 8) | 37, type: 'xvd', disk: 536, partition: 37 });
  assert.deepEqual(parseVdev('hdc2'), { devid: 5634, type: 'hd', disk: 2, partition: 2 });
  assert.deepEqual(parseVdev('sdb3'), { devid: 2048 + 16 + 3, type: 'sd', disk: 1, partition: 3 });
  assert.deepEqual(parseVdev('2049'), { devid: 2049, type: 'number', disk: 0, partition: 1 });
  assert.deepEqual(parseVdev('1234'), { devid: 1234, type: 'number' });
});

test('devidToVdev: canonical names', () => {
  const table: [number, string][] = [
    [51712, 'xvda'],
    [51713, 'xvda1'],
    [51967, 'xvdp15'],
    [268439552, 'xvdq'],
    [EXT | 16, 'xvda16'],
    [EXT | (536 << 8) | 37, 'xvdtq37'],
    [768, 'hda'],
    [832, 'hdb'],
    [831, 'hda63'],
    [5632, 'hdc'],
    [5759, 'hdd63'],
    [2048, 'sda'],
    [2303, 'sdp15'],
    // not canonical encodings: the number itself (round-trips through vdevToDevid)
    [EXT, String(EXT)],
    [EXT | (15 << 8) | 15, String(EXT | (15 << 8) | 15)],
    [896, '896'], // 3 << 8 with minor 128: not an hd encoding
    [5760, '5760'],
    [0, '0'],
    [1234, '1234'],
    [2 * EXT - 1, `xvd${diskToLetters((1 << 20) - 1)}255`],
  ];
  for (const [devid, vdev] of table) assert.equal(devidToVdev(devid), vdev, String(devid));
  for (const bad of [-1, 1.5, 2 * EXT, Number.NaN, 2 ** 40]) assert.throws(() => devidToVdev(bad), RangeError, String(bad));
});

test('round trip: every devid up to 65535 and a sweep of the extended range', () => {
  for (let n = 0; n < 65536; n++) assert.equal(vdevToDevid(devidToVdev(n)), n, String(n));
  for (let n = EXT; n < 2 * EXT; n += 104729) assert.equal(vdevToDevid(devidToVdev(n)), n, String(n));
  assert.equal(vdevToDevid(devidToVdev(2 * EXT - 1)), 2 * EXT - 1);
});

test('round trip: names are canonical', () => {
  for (let disk = 0; disk < 800; disk++) {
    for (const part of [0, 1, 15, 16, 255]) {
      const name = `xvd${diskToLetters(disk)}${part ? part : ''}`;
      assert.equal(devidToVdev(vdevToDevid(name)), name);
      assert.equal(vdevToDevid(`d${disk}p${part}`), vdevToDevid(name));
    }
  }
  for (const l of 'abcd') for (let p = 0; p < 64; p++) assert.equal(devidToVdev(vdevToDevid(`hd${l}${p || ''}`)), `hd${l}${p || ''}`);
  for (const l of 'abcdefghijklmnop') for (let p = 0; p < 16; p++) assert.equal(devidToVdev(vdevToDevid(`sd${l}${p || ''}`)), `sd${l}${p || ''}`);
});

test('diskToLetters is bijective base 26', () => {
  const table: [number, string][] = [[0, 'a'], [25, 'z'], [26, 'aa'], [51, 'az'], [52, 'ba'], [701, 'zz'], [702, 'aaa'], [536, 'tq']];
  for (const [n, s] of table) assert.equal(diskToLetters(n), s);
});
