import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attachLayout, backendPerms, frontendPerms, servedNodes, vbdPaths } from '../../src/xenstore/layout.js';
import { formatPhysicalDevice, parseBackendPath, parseInode, parsePhysicalDevice } from '../../src/xen/vbd.js';

test('vbdPaths: libxl backend, frontend, libxl and error paths', () => {
  assert.deepEqual(vbdPaths({ backendDomid: 0, frontendDomid: 5, devid: 51712 }), {
    backend: '/local/domain/0/backend/vbd/5/51712',
    frontend: '/local/domain/5/device/vbd/51712',
    libxl: '/libxl/5/device/vbd/51712',
    error: '/local/domain/0/error/backend/vbd/5/51712',
  });
  for (const bad of [
    { backendDomid: -1, frontendDomid: 5, devid: 1 },
    { backendDomid: 0, frontendDomid: 0x7ff0, devid: 1 },
    { backendDomid: 0, frontendDomid: 1.5, devid: 1 },
    { backendDomid: 0, frontendDomid: 1, devid: 2 ** 32 },
  ]) {
    assert.throws(() => vbdPaths(bad), RangeError, JSON.stringify(bad));
  }
});

test('permissions as libxl__device_generic_add sets them', () => {
  const id = { backendDomid: 0, frontendDomid: 7, devid: 51712 };
  assert.deepEqual(backendPerms(id), [
    { domid: 0, perm: 'n' },
    { domid: 7, perm: 'r' },
  ]);
  assert.deepEqual(frontendPerms(id), [
    { domid: 7, perm: 'n' },
    { domid: 0, perm: 'r' },
  ]);
});

test('physical-device: hex major:minor like stat -c %t:%T, strict parse', () => {
  const table: [number, number, string][] = [
    [7, 0, '7:0'],
    [7, 12, '7:c'],
    [253, 1, 'fd:1'],
    [259, 65536, '103:10000'],
    [0, 0, '0:0'],
  ];
  for (const [ma, mi, s] of table) {
    assert.equal(formatPhysicalDevice(ma, mi), s);
    assert.deepEqual(parsePhysicalDevice(s), { major: ma, minor: mi });
  }
  for (const bad of ['', '7', '7:', ':0', '07:0', '7:00', 'FD:1', ' 7:0', '7:0\n', '7:0:1', '-7:0', 'g:1', '1000:0', '7:100000']) {
    assert.equal(parsePhysicalDevice(bad), undefined, JSON.stringify(bad));
  }
  assert.throws(() => formatPhysicalDevice(-1, 0), RangeError);
});

test('inode parse is strict decimal u64', () => {
  assert.deepEqual(parseInode('2049:131'), { dev: '2049', ino: '131' });
  assert.deepEqual(parseInode('0:18446744073709551615'), { dev: '0', ino: '18446744073709551615' });
  for (const bad of ['', '1', '1:', '01:2', '1:18446744073709551616', '1:2:3', 'a:b', '1 :2']) {
    assert.equal(parseInode(bad), undefined, bad);
  }
});

test('parseBackendPath accepts only canonical vbd backend paths', () => {
  assert.deepEqual(parseBackendPath('/local/domain/0/backend/vbd/3/51712'), {
    backendDomid: 0,
    frontendDomid: 3,
    devid: 51712,
  });
  for (const bad of [
    '/local/domain/0/backend/vbd/3/51712/',
    '/local/domain/0/backend/vif/3/0',
    '/local/domain/00/backend/vbd/3/51712',
    '/local/domain/0/backend/vbd/03/51712',
    '/local/domain/0/backend/vbd/32752/51712',
    '/local/domain/0/backend/vbd/3/4294967296',
    'local/domain/0/backend/vbd/3/51712',
    '/local/domain/0/backend/vbd/3/../4',
  ]) {
    assert.equal(parseBackendPath(bad), undefined, bad);
  }
});

test('servedNodes: marker, diskseq, inode, device nodes', () => {
  assert.deepEqual(
    servedNodes({ major: 7, minor: 3, devPath: '/dev/loop3', diskseq: '42', sourceInode: { dev: '2049', ino: '77' } }),
    {
      'physical-device': '7:3',
      'physical-device-path': '/dev/loop3',
      node: '/dev/loop3',
      xvbd: '1',
      diskseq: '42',
      'xvbd-inode': '2049:77',
    },
  );
  assert.deepEqual(servedNodes({ major: 253, minor: 1, devPath: '/dev/dm-1' }), {
    'physical-device': 'fd:1',
    'physical-device-path': '/dev/dm-1',
    node: '/dev/dm-1',
    xvbd: '1',
  });
  assert.throws(() => servedNodes({ major: 7, minor: 3, devPath: '/dev/loop3', diskseq: '-1' }), RangeError);
});

test('attachLayout: the nodes libxl writes for a phy disk, plus ours', () => {
  const l = attachLayout({
    backendDomid: 0,
    frontendDomid: 4,
    devid: 51728,
    vdev: 'xvdb',
    params: '/var/lib/xvbd/images/web1.img',
    mode: 'ro',
    discard: false,
    script: '/usr/local/bin/xvbd-hook',
    device: { major: 7, minor: 2, devPath: '/dev/loop2', diskseq: '9', sourceInode: { dev: '1', ino: '2' } },
  });
  assert.deepEqual(l.backend, {
    frontend: '/local/domain/4/device/vbd/51728',
    params: '/var/lib/xvbd/images/web1.img',
    script: '/usr/local/bin/xvbd-hook',
    'frontend-id': '4',
    online: '1',
    removable: '0',
    bootable: '1',
    state: '1',
    dev: 'xvdb',
    type: 'phy',
    mode: 'r',
    'device-type': 'disk',
    'discard-enable': '0',
    'physical-device': '7:2',
    'physical-device-path': '/dev/loop2',
    node: '/dev/loop2',
    xvbd: '1',
    diskseq: '9',
    'xvbd-inode': '1:2',
  });
  assert.deepEqual(l.frontend, {
    backend: '/local/domain/0/backend/vbd/4/51728',
    'backend-id': '0',
    state: '1',
    'virtual-device': '51728',
    'device-type': 'disk',
  });
  assert.equal(l.libxl.frontend, l.paths.frontend);
  assert.equal(l.libxl.backend, l.paths.backend);
  assert.equal(l.libxl.params, '/var/lib/xvbd/images/web1.img');
  assert.equal(l.libxl.mode, 'r');
  assert.equal(l.libxl['physical-device'], undefined, 'libxl keeps only its own bents');
  const rw = attachLayout({
    backendDomid: 0,
    frontendDomid: 4,
    devid: 51712,
    vdev: 'xvda',
    params: '/x',
    mode: 'rw',
    discard: true,
    device: { major: 7, minor: 2, devPath: '/dev/loop2' },
  });
  assert.equal(rw.backend.mode, 'w');
  assert.equal(rw.backend['discard-enable'], '1');
  assert.equal(rw.backend.script, undefined);
  assert.throws(() => attachLayout({ backendDomid: 0, frontendDomid: 4, devid: 1, vdev: 'xvda', params: 'rel', mode: 'rw', discard: false, device: { major: 7, minor: 0, devPath: '/dev/loop0' } }), RangeError);
  assert.throws(() => attachLayout({ backendDomid: 0, frontendDomid: 4, devid: 1, vdev: 'xv/da', params: '/a', mode: 'rw', discard: false, device: { major: 7, minor: 0, devPath: '/dev/loop0' } }), RangeError);
});
