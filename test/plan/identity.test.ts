// Table tests of the planner's small parsers: params paths, physical-device, script ownership, devid -> vdev.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vdevName, paramsPath, parseDecDev, scriptIsOurs } from '../../src/plan/index.js';
import { readPhysicalDevice as parseHexDev } from '../../src/xen/vbd.js';
import { vdevToDevid } from '../../src/config/index.js';

test('paramsPath: the path a backend params names', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['/srv/a.img', '/srv/a.img'],
    ['/srv//x/../a.img', '/srv/a.img'],
    ['aio:/srv/a.img', '/srv/a.img'],
    ['phy:/dev/vg/x', '/dev/vg/x'],
    ['raw:aio:/srv/a.img', '/srv/a.img'],
    ['relative.img', undefined],
    ['', undefined],
    ['/srv/a\0b', undefined],
    ['http://x/y', undefined],
    [undefined, undefined],
  ];
  for (const [input, want] of cases) assert.equal(paramsPath(input), want, JSON.stringify(input));
});

test('parseHexDev / parseDecDev: strict major:minor', () => {
  const hex: [string, { major: number; minor: number } | undefined][] = [
    ['7:0', { major: 7, minor: 0 }],
    ['fd:1', { major: 253, minor: 1 }],
    ['FD:1A', { major: 253, minor: 26 }],
    ['103:100000', { major: 259, minor: 0x100000 }],
    ['7', undefined],
    ['7:', undefined],
    ['-7:0', undefined],
    ['7:0:0', undefined],
    ['g:0', undefined],
    ['/dev/loop0', undefined],
  ];
  for (const [s, want] of hex) assert.deepEqual(parseHexDev(s), want, s);
  assert.deepEqual(parseDecDev('253:1'), { major: 253, minor: 1 });
  assert.equal(parseDecDev('fd:1'), undefined);
});

test('scriptIsOurs: only no script or a script path naming xvbd', () => {
  const cases: [string | undefined, boolean][] = [
    [undefined, true],
    ['', true],
    ['/etc/xen/scripts/xvbd', true],
    ['xvbd', true],
    ['/usr/lib/xvbd/hook', true],
    ['/etc/xen/scripts/block', false],
    ['/etc/xen/scripts/block-iscsi', false],
  ];
  for (const [s, want] of cases) assert.equal(scriptIsOurs(s), want, String(s));
});

test('vdevName: src/config\'s devidToVdev, never throwing (round trip with the config\'s vdevToDevid)', () => {
  const table: [number, string][] = [
    [51712, 'xvda'],
    [51713, 'xvda1'],
    [51728, 'xvdb'],
    [51952, 'xvdp'],
    [(1 << 28) | (16 << 8), 'xvdq'],
    [(1 << 28) | (26 << 8), 'xvdaa'],
    [(1 << 28) | (26 << 8) | 3, 'xvdaa3'],
    [768, 'hda'],
    [832, 'hdb'],
    [5632, 'hdc'],
    [5696, 'hdd'],
    [2048, 'sda'],
    [2065, 'sdb1'],
    // not a canonical encoding: its decimal number, which is a vdev naming that same devid
    // (`d<n>` would be the d<disk> syntax: another device)
    [12345, '12345'],
    [1, '1'],
    // minors 128..255 of majors 3 and 22 are no hd encoding (not hdc/hdd)
    [(3 << 8) | 128, '896'],
    [(3 << 8) | 200, '968'],
    [(22 << 8) | 128, '5760'],
    [(22 << 8) | 255, '5887'],
    [(3 << 8) | 127, 'hdb63'],
    [(22 << 8) | 64, 'hdd'],
    // the extended form of a disk that has a 202 << 8 form is not canonical
    [(1 << 28) | (1 << 8), String((1 << 28) | (1 << 8))],
    // reserved (2 << 28 onwards; observe accepts devids below 2^30) and invalid values: no exception
    [2 ** 29, String(2 ** 29)],
    [2 ** 30 - 1, String(2 ** 30 - 1)],
    [-1, '-1'],
    [1.5, '1.5'],
  ];
  for (const [devid, vdev] of table) assert.equal(vdevName(devid), vdev, String(devid));
  for (const vdev of ['xvda', 'xvdb3', 'xvdp15', 'xvdq', 'xvdz', 'xvdaa', 'xvdzz9', 'sda', 'sdp', 'hda', 'hdd1']) {
    assert.equal(vdevName(vdevToDevid(vdev)), vdev, vdev);
  }
});
