// The pure parts of the hook-xl scenario (test/xen/lib/xl.ts, lib/blkguest.ts), without a VM:
// node --test dist/test/xen/hook-xl.test.js
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GUEST_WROTE, guestConfig, guestInit } from './lib/blkguest.js';
import { diskPhase, hotplugCalls, hotplugErrors, nodeHookWrapper, parseVbdPath, type BackendSample } from './lib/xl.js';

// lines as xl -vvv prints them (Xen 4.17), stamped on arrival
const XL = [
  'libxl: debug: libxl_device.c:1264:device_hotplug: Domain 3:calling hotplug script: /etc/xen/scripts/xvbd add',
  'libxl: debug: libxl_device.c:1265:device_hotplug: Domain 3:extra args:',
  'libxl: debug: libxl_device.c:1264:device_hotplug: Domain 3:calling hotplug script: /etc/xen/scripts/xvbd add',
  'libxl: error: libxl_exec.c:117:libxl_report_child_exitstatus: /etc/xen/scripts/xvbd add [1234] exited with error status 1',
  'libxl: error: libxl_device.c:1300:device_hotplug_child_death_cb: Domain 0:script: params /i/o.img is not the desired source /i/d.img of Domain-0 xvdp',
  'libxl: debug: libxl_device.c:1264:device_hotplug: Domain 3:calling hotplug script: /etc/xen/scripts/block remove',
].map((line, i) => ({ ms: 100 * i, line }));

test('hotplugCalls: libxl\'s "calling hotplug script" lines, in order, with their stamps', () => {
  assert.deepEqual(hotplugCalls(XL), [
    { ms: 0, script: '/etc/xen/scripts/xvbd', op: 'add' },
    { ms: 200, script: '/etc/xen/scripts/xvbd', op: 'add' },
    { ms: 500, script: '/etc/xen/scripts/block', op: 'remove' },
  ]);
  assert.deepEqual(hotplugCalls([{ ms: 0, line: 'libxl: debug: something else: calling hotplug scripts' }]), []);
});

test('hotplugErrors: the hotplug-error text libxl relays after a failed script', () => {
  assert.deepEqual(hotplugErrors(XL), ['params /i/o.img is not the desired source /i/d.img of Domain-0 xvdp']);
  assert.deepEqual(hotplugErrors(XL.slice(0, 3)), []);
});

test('parseVbdPath: dom0 backend paths only, with the node below the dir', () => {
  assert.deepEqual(parseVbdPath('/local/domain/0/backend/vbd/3/51712/hotplug-status'), { frontendDomid: 3, devid: 51712, node: 'hotplug-status' });
  assert.deepEqual(parseVbdPath('/local/domain/0/backend/vbd/3/51712'), { frontendDomid: 3, devid: 51712, node: '' });
  assert.equal(parseVbdPath('/local/domain/0/backend/vbd/3'), undefined);
  assert.equal(parseVbdPath('/local/domain/1/backend/vbd/3/51712'), undefined);
  assert.equal(parseVbdPath('/local/domain/0/backend/vif/3/0'), undefined);
});

test('diskPhase: first backend dir seen -> last hotplug-status=connected, per disk too; other domains ignored', () => {
  const s: BackendSample[] = [
    { at: 1000, frontendDomid: 2, devid: 51712, what: 'seen' }, // an older domain
    { at: 1100, frontendDomid: 3, devid: 51712, what: 'seen' },
    { at: 1150, frontendDomid: 3, devid: 51728, what: 'seen' },
    { at: 1300, frontendDomid: 2, devid: 51712, what: 'connected' },
    { at: 1600, frontendDomid: 3, devid: 51728, what: 'connected' },
    { at: 1900, frontendDomid: 3, devid: 51712, what: 'connected' },
    { at: 2500, frontendDomid: 3, devid: 51712, what: 'connected' }, // a later rewrite does not count
  ];
  assert.deepEqual(diskPhase(s, 3, [51712, 51728]), { phaseMs: 800, perDiskMs: { 51712: 800, 51728: 450 }, firstAt: 1100, lastAt: 1900 });
  assert.throws(() => diskPhase(s.slice(0, 5), 3, [51712, 51728]), /domain 3: no hotplug-status=connected seen for devid 51712/);
  assert.throws(() => diskPhase(s, 4, [51712]), /devid 51712/);
  const err: BackendSample[] = [
    { at: 1, frontendDomid: 3, devid: 51712, what: 'seen' },
    { at: 2, frontendDomid: 3, devid: 51712, what: 'error' },
  ];
  assert.throws(() => diskPhase(err, 3, [51712]), /51712/);
});

test('guestConfig: every disk gets script= when given, none otherwise; target last', () => {
  const disks = [
    { vdev: 'xvda', access: 'ro' as const, target: '/i/base.img' },
    { vdev: 'xvdb', access: 'rw' as const, target: '/i/data.img' },
  ];
  const withHook = guestConfig({ name: 'g', kernel: '/k', ramdisk: '/r.cpio', disks, script: 'xvbd' });
  assert.match(withHook, /^disk = \[ 'format=raw,vdev=xvda,access=ro,script=xvbd,target=\/i\/base.img', 'format=raw,vdev=xvdb,access=rw,script=xvbd,target=\/i\/data.img' \]$/m);
  assert.match(withHook, /^name = "g"$/m);
  assert.match(withHook, /^ramdisk = "\/r.cpio"$/m);
  assert.match(withHook, /^kernel = "\/k"$/m);
  const plain = guestConfig({ name: 'g', kernel: '/k', ramdisk: '/r.cpio', disks });
  assert.doesNotMatch(plain, /script=/);
  assert.match(plain, /'format=raw,vdev=xvda,access=ro,target=\/i\/base.img'/);
});

test('guestInit: loads blkfront, reads the first disk, writes the tagged line to the second', () => {
  const s = guestInit('xvda', 'xvdb');
  assert.match(s, /^#!\/bin\/busybox sh\n/);
  assert.match(s, /insmod \/xen-blkfront.ko/);
  assert.match(s, /dd if=\/dev\/xvda bs=512 count=1/);
  assert.ok(s.includes(`echo "${GUEST_WROTE} $line" | /bin/busybox dd of=/dev/xvdb bs=512 count=1 conv=sync,fsync`));
});

test('nodeHookWrapper: execs the CLI\'s hook with the arguments libxl gives', () => {
  assert.equal(nodeHookWrapper('/usr/bin/node', '/repo'), '#!/bin/sh\nexec /usr/bin/node /repo/dist/src/cli/main.js hook "$@"\n');
});
