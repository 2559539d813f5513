// The crash checker's invariants on canned `xenstore-ls -f` and `losetup --json` text: each passes on a
// healthy host and names the backend or device when it breaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backendsOf,
  checkHeld,
  checkNamesOwnDevice,
  checkNoLeak,
  checkNoSharedWritable,
  checkPendingExpired,
  isOffline,
  makedev,
  parseLosetup,
  parseXenstoreLs,
  pdMajMin,
  pendingKey,
  unescapeXs,
  type Holder,
  type HostSnapshot,
} from './checker.js';

const IMG = '/tmp/c/images';
const BE = '/local/domain/0/backend/vbd';

/** One backend as `xenstore-ls -f` prints it (only the nodes the checker reads, plus a few it ignores). */
function backendLs(domid: number, devid: number, n: { params: string; mode: string; pd?: string; diskseq: string; inode: string; online?: string; hotplug?: string }): string {
  const p = `${BE}/${domid}/${devid}`;
  return [
    `${p} = ""`,
    `${p}/frontend = "/local/domain/${domid}/device/vbd/${devid}"`,
    `${p}/params = "${n.params}"`,
    `${p}/frontend-id = "${domid}"`,
    `${p}/online = "${n.online ?? '1'}"`,
    `${p}/state = "4"`,
    `${p}/mode = "${n.mode}"`,
    ...(n.pd ? [`${p}/physical-device = "${n.pd}"`, `${p}/physical-device-path = "/dev/loop${Number.parseInt(n.pd.split(':')[1]!, 16)}"`] : []),
    `${p}/xvbd = "1"`,
    `${p}/diskseq = "${n.diskseq}"`,
    `${p}/xvbd-inode = "${n.inode}"`,
    `${p}/hotplug-status = "${n.hotplug ?? 'connected'}"`,
  ].join('\n');
}

function losetupJson(devs: { n: number; file: string; ino: number; ro?: boolean; autoclear?: boolean }[]): string {
  return JSON.stringify({
    loopdevices: devs.map((d) => ({
      name: `/dev/loop${d.n}`,
      'maj:min': `  7:${d.n}  `,
      'back-file': d.file,
      'back-ino': d.ino,
      'back-maj:min': '     254:0  ',
      ro: d.ro ?? false,
      autoclear: d.autoclear ?? true,
    })),
  });
}

const DEV = makedev(254, 0); // 65024
const TEMPLATE = `${IMG}/template.img`;
const A = `${IMG}/g1-xvdb.img`;
const B = `${IMG}/g2-xvdb.img`;
const ino = (n: number) => `${DEV}:${n}`;
const SEQ: Record<number, string> = { 0: '100', 1: '101', 2: '102', 3: '103' };

/** A healthy host: g1 and g2 share the read-only template (loop0), each has its own read-write image. */
function healthy(): { ls: string; lo: string; holders: Map<string, Holder[]> } {
  return {
    ls: [
      backendLs(1, 51712, { params: TEMPLATE, mode: 'r', pd: '7:0', diskseq: '100', inode: ino(10) }),
      backendLs(1, 51728, { params: A, mode: 'w', pd: '7:1', diskseq: '101', inode: ino(11) }),
      backendLs(2, 51712, { params: TEMPLATE, mode: 'r', pd: '7:0', diskseq: '100', inode: ino(10) }),
      backendLs(2, 51728, { params: B, mode: 'w', pd: '7:2', diskseq: '102', inode: ino(12) }),
    ].join('\n') + '\n',
    lo: losetupJson([
      { n: 0, file: TEMPLATE, ino: 10, ro: true },
      { n: 1, file: A, ino: 11 },
      { n: 2, file: B, ino: 12 },
    ]),
    holders: new Map([
      ['7:0', [{ pid: 50, role: 'keeper' }, { pid: 99, role: 'simulator' }]],
      ['7:1', [{ pid: 50, role: 'keeper' }, { pid: 99, role: 'simulator' }]],
      ['7:2', [{ pid: 50, role: 'keeper' }, { pid: 99, role: 'simulator' }]],
    ]),
  };
}

function snap(ls: string, lo: string, holders: Map<string, Holder[]>): HostSnapshot {
  return {
    backends: backendsOf(parseXenstoreLs(ls)),
    loops: parseLosetup(lo, (name) => SEQ[Number(name.slice(4))]),
    holders,
    simulatorPid: 99,
    sources: new Map([
      [TEMPLATE, ino(10)],
      [A, ino(11)],
      [B, ino(12)],
    ]),
    imagesDir: IMG,
  };
}

const healthySnap = () => {
  const h = healthy();
  return snap(h.ls, h.lo, h.holders);
};

test('parsing: xenstore-ls escapes, backends with their nodes, losetup columns, physical-device, st_dev', () => {
  assert.equal(unescapeXs('a\\tb\\001c\\\\d'), 'a\tb\x01c\\d');
  const tree = parseXenstoreLs('/a = ""\n/a/b = "x "y" z"\n');
  assert.equal(tree.get('/a/b'), 'x "y" z');
  assert.throws(() => parseXenstoreLs('garbage\n'), /cannot parse line "garbage"/);
  const s = healthySnap();
  assert.equal(s.backends.length, 4);
  assert.deepEqual(s.backends[1], {
    path: `${BE}/1/51728`, domid: 1, devid: 51728, params: A, mode: 'w', physicalDevice: '7:1',
    diskseq: '101', inode: ino(11), online: '1', hotplugStatus: 'connected',
  });
  assert.deepEqual(s.loops[0], { name: 'loop0', majMin: '7:0', backFile: TEMPLATE, backing: '65024:10', ro: true, autoclear: true, diskseq: '100' });
  assert.deepEqual(parseLosetup(''), []);
  assert.equal(pdMajMin('7:1e'), '7:30');
  assert.equal(pdMajMin('loop3'), undefined);
  assert.equal(makedev(254, 0), 65024);
  assert.equal(makedev(7, 300), 7 * 256 + 44 + 2 ** 20); // minors above 255 go to the high bits
  assert.equal(isOffline({ path: 'p', domid: 1, devid: 1 }), true);
  assert.equal(isOffline({ path: 'p', domid: 1, devid: 1, physicalDevice: '7:1', online: '0', hotplugStatus: 'error' }), true);
  assert.equal(isOffline({ path: 'p', domid: 1, devid: 1, physicalDevice: '7:1', online: '0' }), false);
});

test('a healthy host breaks no invariant', () => {
  const s = healthySnap();
  assert.deepEqual(checkNamesOwnDevice(s), []);
  assert.deepEqual(checkNoSharedWritable(s), []);
  assert.deepEqual(checkNoLeak(s), { leaked: [], pending: [], freeing: [] });
  assert.deepEqual(checkHeld(s), []);
});

test('(a) a freed device, a re-bound one (diskseq), another disk\'s device; an offline backend is accepted', () => {
  const h = healthy();
  // loop1 freed, then taken for B (diskseq 103): g1's backend names it still; loop2 gone
  const lo = losetupJson([
    { n: 0, file: TEMPLATE, ino: 10, ro: true },
    { n: 1, file: B, ino: 12 },
  ]);
  const s = snap(h.ls, lo, h.holders);
  s.loops[1]!.diskseq = '103';
  const v = checkNamesOwnDevice(s);
  assert.equal(v.length, 2);
  assert.equal(v[0]!.subject, `${BE}/1/51728`);
  assert.match(v[0]!.message, /physical-device 7:1 is \/dev\/loop1: its diskseq is 103, the backend records 101; it backs inode 65024:12, the backend records xvbd-inode 65024:11; it is the loop of \/tmp\/c\/images\/g2-xvdb.img, not of its params/);
  assert.match(v[1]!.message, new RegExp(`^${BE}/2/51728 .*physical-device 7:2 \\(7:2\\) names a freed device`));
  // same diskseq but another file (a recorded inode that lies): still caught by params
  const s2 = healthySnap();
  s2.sources.set(A, ino(99));
  assert.match(checkNamesOwnDevice(s2)[0]!.message, /it is the loop of .*g1-xvdb.img, not of its params \(65024:99\)/);
  // taken offline: physical-device removed, or online=0 with hotplug-status error
  const offline = h.ls
    .replace(`${BE}/1/51728/physical-device = "7:1"\n`, '')
    .replace(`${BE}/2/51728/online = "1"`, `${BE}/2/51728/online = "0"`)
    .replace(`${BE}/2/51728/hotplug-status = "connected"`, `${BE}/2/51728/hotplug-status = "error"`);
  assert.deepEqual(checkNamesOwnDevice(snap(offline, lo, h.holders)), []);
});

test('(b) a read-write image used by two backends (a reused device, or two devices of one file); read-only sharing is fine', () => {
  const h = healthy();
  // g2's backend names loop1, which is g1's read-write image
  const ls = h.ls.replace(`${BE}/2/51728/physical-device = "7:2"`, `${BE}/2/51728/physical-device = "7:1"`);
  const v = checkNoSharedWritable(snap(ls, h.lo, h.holders));
  assert.equal(v.length, 1);
  assert.equal(v[0]!.invariant, 'b');
  assert.match(v[0]!.message, /read-write image .*g1-xvdb.img \(inode 65024:11\) is used by \(1,51728,w\) via \/dev\/loop1 and \(2,51728,w\) via \/dev\/loop1/);
  // two loop devices of one read-write file, one per backend
  const lo = losetupJson([
    { n: 0, file: TEMPLATE, ino: 10, ro: true },
    { n: 1, file: A, ino: 11 },
    { n: 2, file: A, ino: 11 },
  ]);
  assert.match(checkNoSharedWritable(snap(h.ls, lo, h.holders))[0]!.message, /\(1,51728,w\) via \/dev\/loop1 and \(2,51728,w\) via \/dev\/loop2/);
  // an offline backend uses nothing
  const off = ls.replace(`${BE}/2/51728/physical-device = "7:1"\n`, '');
  assert.deepEqual(checkNoSharedWritable(snap(off, h.lo, h.holders)), []);
});

test('(c) a device of ours no live backend names: leaked when a non-keeper holds it or it has no autoclear, pending with a keeper, freeing with nobody', () => {
  const h = healthy();
  const lo = losetupJson([
    { n: 0, file: TEMPLATE, ino: 10, ro: true },
    { n: 1, file: A, ino: 11 },
    { n: 2, file: B, ino: 12 },
    { n: 3, file: A, ino: 11 }, // a second device of A: held by the fake systemd only
    { n: 4, file: B, ino: 12 }, // held by a keeper, no backend yet
    { n: 5, file: B, ino: 12 }, // nobody: the kernel is clearing it
    { n: 6, file: A, ino: 11, autoclear: false }, // nobody and no autoclear: stays forever
    { n: 7, file: '/srv/other/x.img', ino: 77 }, // not ours: never judged
  ]);
  const holders = new Map(h.holders);
  holders.set('7:3', [{ pid: 1, role: 'test' }]);
  holders.set('7:4', [{ pid: 50, role: 'keeper' }]);
  const s = snap(h.ls, lo, holders);
  const r = checkNoLeak(s);
  assert.deepEqual(r.leaked.map((v) => v.message), [
    `/dev/loop3 (7:3, diskseq 103) backs ${A}, no live backend names it; held by test 1`,
    `/dev/loop6 (7:6, diskseq ?) backs ${A}, no live backend names it; without autoclear`,
  ]);
  assert.deepEqual(r.pending.map((l) => l.name), ['loop4']);
  assert.deepEqual(r.freeing.map((l) => l.name), ['loop5']);
  // a keeper may hold it for its grace period, not longer
  const first = new Map([[pendingKey(r.pending[0]!), 1_000]]);
  assert.deepEqual(checkPendingExpired(r.pending, first, 50_000, 60_000), []);
  const late = checkPendingExpired(r.pending, first, 70_000, 60_000);
  assert.equal(late.length, 1);
  assert.match(late[0]!.message, /\/dev\/loop4 .* a keeper still holds it 69 s after it was first seen \(grace 60 s\)/);
  // a backend taken offline no longer names its device: that device is then judged too
  const off = h.ls.replace(`${BE}/1/51728/physical-device = "7:1"\n`, '');
  assert.deepEqual(checkNoLeak(snap(off, h.lo, h.holders)).pending.map((l) => l.name), ['loop1']);
});

test('(d) a device a live backend names, held by blkback alone or by nobody', () => {
  const h = healthy();
  const holders = new Map(h.holders);
  holders.set('7:1', [{ pid: 99, role: 'simulator' }]);
  holders.delete('7:2');
  const v = checkHeld(snap(h.ls, h.lo, holders));
  assert.deepEqual(v.map((x) => x.message), [
    `${BE}/1/51728: /dev/loop1 (diskseq 101) is held by blkback (the simulator) only`,
    `${BE}/2/51728: /dev/loop2 (diskseq 102) is held by nobody`,
  ]);
  // the fake systemd in the test process is a holder like any other in dom0
  holders.set('7:1', [{ pid: 99, role: 'simulator' }, { pid: 1, role: 'test' }]);
  holders.set('7:2', [{ pid: 7, role: 'daemon' }]);
  assert.deepEqual(checkHeld(snap(h.ls, h.lo, holders)), []);
});
