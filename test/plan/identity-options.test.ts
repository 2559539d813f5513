// Table tests of two planner rules found in integration:
// - what a backend serves: a file through a loop device (we recorded its inode), a block device used
//   as is (ours, no inode recorded: its device number, also when that device is itself a loop
//   device), or, for another tool's backend, either;
// - loop options drift: a loop device whose direct I/O or logical block size differs from the
//   desired disk's is out of sync (options-mismatch), and read-only sharing picks only a loop with
//   the options src/linux's registry would share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/index.js';
import type { DesiredState, Policy } from '../../src/model/desired.js';
import type { ObservedState } from '../../src/model/observed.js';
import type { Plan } from '../../src/model/plan.js';
import { actionLines, backend, blockSrc, desired, disk, fileSrc, findingLines, loop, observed, policy, sources } from './fixtures.js';

const A = '/srv/a.img';
const DATA = '/srv/db-data.img';
const LOOPDEV = '/dev/loop3';
const LV = '/dev/vg0/db-data';
const DOMS = [
  { domid: 0, name: 'Domain-0' },
  { domid: 3, name: 'web' },
  { domid: 4, name: 'db' },
];
const BLOCK_SCRIPT = '/etc/xen/scripts/block';

interface Case {
  name: string;
  desired: DesiredState;
  observed: ObservedState;
  policy?: Partial<Policy>;
  actions: string[];
  findings: string[];
  /** sync of every disk row, "domain vdev sync" */
  sync?: string[];
  check?: (p: Plan) => void;
}

/** losetup's loop device of the db data file, standing in for an LVM volume: not xvbd's. */
const standIn = loop(3, 40, { ours: false, backingPath: DATA, autoclear: false, heldByUs: false });
/** The same device number after another process got it: other diskseq, other file. */
const standInReused = loop(3, 77, { ours: false, backingPath: '/srv/other.img', diskseq: '999', heldByUs: false });
const devDisk = (mode: 'ro' | 'rw' = 'rw') => disk('xvdb', LOOPDEV, mode, { sourceKind: 'block' });
/** Our backend serving /dev/loop3 as a block device: physical-device 7:3, its diskseq, no xvbd-inode. */
const devBackend = (over = {}) =>
  backend(4, 'xvdb', { params: LOOPDEV, physicalDevice: '7:3', physicalDevicePath: LOOPDEV, diskseq: standIn.diskseq, ...over });
const la = loop(0, 11, { backingPath: A });

const cases: Case[] = [
  // ---- identity ----------------------------------------------------------------------------------
  {
    name: 'file source on a loop device of ours: synced',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: [],
    findings: [],
    sync: ['web xvda synced'],
  },
  {
    name: 'device source that is a loop device (the demo db xvdb): synced by device number, even with prune',
    desired: desired({ db: [devDisk()] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(blockSrc(LOOPDEV, '7:3')), loops: [standIn], backends: [devBackend()] }),
    actions: [],
    findings: [],
    sync: ['db xvdb synced'],
    check: (p) => {
      assert.equal(p.disks[0]!.health, 'healthy');
      assert.equal(p.disks[0]!.sharedBy, 1);
    },
  },
  {
    name: 'device source that is a loop device, no prune: synced, no finding',
    desired: desired({ db: [devDisk()] }),
    observed: observed({ domains: DOMS, sources: sources(blockSrc(LOOPDEV, '7:3')), loops: [standIn], backends: [devBackend()] }),
    actions: [],
    findings: [],
    sync: ['db xvdb synced'],
  },
  {
    name: 'device source that is a loop device of ours, read-only: synced, never freed (a backend records its diskseq)',
    desired: desired({ db: [devDisk('ro')] }),
    policy: { prune: true },
    observed: (() => {
      const l = loop(3, 40, { backingPath: DATA, readOnly: true });
      return observed({
        domains: DOMS,
        sources: sources(blockSrc(LOOPDEV, '7:3')),
        loops: [l],
        backends: [devBackend({ mode: 'r', diskseq: l.diskseq })],
      });
    })(),
    actions: [],
    findings: [],
    sync: ['db xvdb synced'],
  },
  {
    name: 'device source that is an unused loop device of ours, domain not running: not freed (it is desired)',
    desired: desired({ mail: [disk('xvdb', LOOPDEV, 'rw', { sourceKind: 'block' })] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(blockSrc(LOOPDEV, '7:3')), loops: [loop(3, 40, { backingPath: DATA })] }),
    actions: [],
    findings: ['domain-not-running info mail xvdb'],
    sync: ['mail xvdb pending'],
  },
  {
    name: 'device source that is a loop device, the device re-bound since (diskseq differs): closed at once, loop-reused, replaced with prune',
    desired: desired({ db: [devDisk()] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(blockSrc(LOOPDEV, '7:3')), loops: [standInReused], backends: [devBackend()] }),
    actions: ['close db 51728', 'replace db xvdb'],
    findings: ['loop-reused error db xvdb'],
    sync: ['db xvdb out-of-sync'],
    check: (p) => assert.equal(p.disks[0]!.health, 'degraded'),
  },
  {
    name: 'device source that is a loop device, another device at physical-device: source-mismatch',
    desired: desired({ db: [devDisk()] }),
    observed: observed({
      domains: DOMS,
      sources: sources(blockSrc(LOOPDEV, '7:3')),
      loops: [standIn, loop(5, 41, { ours: false })],
      backends: [devBackend({ physicalDevice: '7:5', diskseq: '105' })],
    }),
    actions: [],
    findings: ['source-mismatch warning db xvdb'],
    sync: ['db xvdb out-of-sync'],
    check: (p) => assert.match(p.findings[0]!.message, /serves device \/dev\/loop5 \(7:5\), desired \/dev\/loop3/),
  },
  {
    name: 'device source that is dm/LVM (253:1 at fd:1): synced',
    desired: desired({ db: [disk('xvdb', LV, 'rw', { sourceKind: 'block' })] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(blockSrc(LV, '253:1')), backends: [backend(4, 'xvdb', { params: LV, physicalDevice: 'fd:1' })] }),
    actions: [],
    findings: [],
    sync: ['db xvdb synced'],
  },
  {
    name: 'device source that is dm/LVM, backend at another dm device: source-mismatch',
    desired: desired({ db: [disk('xvdb', LV, 'rw', { sourceKind: 'block' })] }),
    observed: observed({ domains: DOMS, sources: sources(blockSrc(LV, '253:1')), backends: [backend(4, 'xvdb', { params: LV, physicalDevice: 'fd:2' })] }),
    actions: [],
    findings: ['source-mismatch warning db xvdb'],
  },
  {
    name: "another tool's backend at a loop device, file source (block script): synced, info",
    desired: desired({ db: [disk('xvdb', DATA)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(DATA, 40)),
      loops: [standIn],
      backends: [backend(4, 'xvdb', { ours: false, script: BLOCK_SCRIPT, diskseq: undefined, sourceInode: undefined, params: DATA }, standIn)],
    }),
    actions: [],
    findings: ['unexpected-backend info db xvdb'],
    sync: ['db xvdb synced'],
  },
  {
    name: "another tool's backend at a loop device, device source naming that loop device (phy:): synced, info",
    desired: desired({ db: [devDisk()] }),
    policy: { prune: true },
    observed: observed({
      domains: DOMS,
      sources: sources(blockSrc(LOOPDEV, '7:3')),
      loops: [standIn],
      backends: [backend(4, 'xvdb', { ours: false, script: BLOCK_SCRIPT, diskseq: undefined, sourceInode: undefined, params: LOOPDEV }, standIn)],
    }),
    actions: [],
    findings: ['unexpected-backend info db xvdb'],
    sync: ['db xvdb synced'],
  },
  {
    name: "another tool's backend at a dm device, device source: synced, info",
    desired: desired({ db: [disk('xvdb', LV, 'rw', { sourceKind: 'block' })] }),
    observed: observed({
      domains: DOMS,
      sources: sources(blockSrc(LV, '253:1')),
      backends: [backend(4, 'xvdb', { ours: false, script: BLOCK_SCRIPT, params: LV, physicalDevice: 'fd:1' })],
    }),
    actions: [],
    findings: ['unexpected-backend info db xvdb'],
    sync: ['db xvdb synced'],
  },
  {
    name: "another tool's backend at a loop device of another file, device source: warning, never replaced",
    desired: desired({ db: [devDisk()] }),
    policy: { prune: true },
    observed: (() => {
      const other = loop(5, 55, { ours: false });
      return observed({
        domains: DOMS,
        sources: sources(blockSrc(LOOPDEV, '7:3')),
        loops: [standIn, other],
        backends: [backend(4, 'xvdb', { ours: false, script: BLOCK_SCRIPT, diskseq: undefined, sourceInode: undefined }, other)],
      });
    })(),
    actions: [],
    findings: ['unexpected-backend warning db xvdb'],
    sync: ['db xvdb out-of-sync'],
  },
  {
    name: 'config changed from file to the device of its loop (ours, xvbd-inode recorded): source-mismatch, replace with prune',
    desired: desired({ web: [disk('xvda', '/dev/loop0', 'rw', { sourceKind: 'block' })] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(blockSrc('/dev/loop0', '7:0')), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: ['replace web xvda'],
    findings: [],
  },
  {
    name: 'config changed from a device that is a loop device to its backing file: source-mismatch',
    desired: desired({ db: [disk('xvdb', DATA)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(DATA, 40)), loops: [standIn], backends: [devBackend()] }),
    actions: [],
    findings: ['source-mismatch warning db xvdb'],
    check: (p) => assert.match(p.findings[0]!.message, /serves device \/dev\/loop3 \(7:3\), desired \/srv\/db-data\.img/),
  },
  {
    name: 'rw-shared across the two names of one data: device /dev/loop3 rw in db, its backing file ro in web',
    desired: desired({ db: [devDisk()], web: [disk('xvdb', DATA, 'ro')] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(blockSrc(LOOPDEV, '7:3'), fileSrc(DATA, 40)), loops: [standIn], backends: [devBackend()] }),
    actions: [],
    findings: ['rw-shared error'],
    check: (p) => {
      assert.match(p.findings[0]!.message, /db xvdb \(rw\), web xvdb \(ro\)/);
      assert.equal(p.disks.find((d) => d.domain === 'db')!.health, 'degraded');
    },
  },
  // ---- loop options --------------------------------------------------------------------------
  {
    name: 'loop with direct I/O, desired off, no prune: options-mismatch',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: (() => {
      const l = loop(0, 11, { backingPath: A, directIo: true });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', {}, l)] });
    })(),
    actions: [],
    findings: ['options-mismatch warning web xvda'],
    sync: ['web xvda out-of-sync'],
    check: (p) => {
      assert.match(p.findings[0]!.message, /\/dev\/loop0 has direct I\/O on, desired off/);
      assert.match(p.findings[0]!.fix, /apply with prune replaces/);
      assert.equal(p.disks[0]!.syncReason, 'options-mismatch');
    },
  },
  {
    name: 'loop without direct I/O, desired on, prune: replace',
    desired: desired({ web: [disk('xvda', A, 'rw', { options: { directIo: true, discard: false } })] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: ['replace web xvda'],
    findings: [],
    check: (p) => {
      const a = p.actions[0]!;
      assert.equal(a.kind === 'replace' && a.reason, '/dev/loop0 has direct I/O off, desired on');
    },
  },
  {
    name: 'block size 4096, desired the default: options-mismatch',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: (() => {
      const l = loop(0, 11, { backingPath: A, blockSize: 4096 });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', {}, l)] });
    })(),
    actions: [],
    findings: ['options-mismatch warning web xvda'],
    check: (p) => assert.match(p.findings[0]!.message, /block size 4096, desired the default \(512\)/),
  },
  {
    name: 'block size 512, desired 4096, prune: replace',
    desired: desired({ web: [disk('xvda', A, 'rw', { options: { directIo: false, blockSize: 4096, discard: true } })] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: ['replace web xvda'],
    findings: [],
  },
  {
    name: 'block size 4096 as desired: synced',
    desired: desired({ web: [disk('xvda', A, 'rw', { options: { directIo: false, blockSize: 4096, discard: true } })] }),
    policy: { prune: true },
    observed: (() => {
      const l = loop(0, 11, { backingPath: A, blockSize: 4096 });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', {}, l)] });
    })(),
    actions: [],
    findings: [],
    sync: ['web xvda synced'],
  },
  {
    name: 'direct I/O as desired, no block size desired, 4096 (the kernel matches the backing disk): synced',
    desired: desired({ web: [disk('xvda', A, 'rw', { options: { directIo: true, discard: false } })] }),
    policy: { prune: true },
    observed: (() => {
      const l = loop(0, 11, { backingPath: A, directIo: true, blockSize: 4096 });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', {}, l)] });
    })(),
    actions: [],
    findings: [],
    sync: ['web xvda synced'],
  },
  {
    name: 'block size unknown: no evidence of drift, synced',
    desired: desired({ web: [disk('xvda', A, 'rw', { options: { directIo: false, blockSize: 4096, discard: false } })] }),
    policy: { prune: true },
    observed: (() => {
      const l = loop(0, 11, { backingPath: A, blockSize: undefined });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', {}, l)] });
    })(),
    actions: [],
    findings: [],
  },
  {
    name: 'direct I/O and block size both differ: one finding naming both',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: (() => {
      const l = loop(0, 11, { backingPath: A, directIo: true, blockSize: 4096 });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', {}, l)] });
    })(),
    actions: [],
    findings: ['options-mismatch warning web xvda'],
    check: (p) => assert.match(p.findings[0]!.message, /direct I\/O on, desired off/),
  },
  {
    name: 'options mismatch and a read-write conflict: finding, no replace',
    desired: desired({ web: [disk('xvda', A)], db: [disk('xvda', A, 'ro')] }),
    policy: { prune: true },
    observed: (() => {
      const l = loop(0, 11, { backingPath: A, directIo: true });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', {}, l)] });
    })(),
    actions: [],
    findings: ['rw-shared error', 'options-mismatch warning web xvda'],
  },
  {
    name: "another tool's loop (block script) without the desired direct I/O: out of sync, never replaced",
    desired: desired({ db: [disk('xvdb', DATA, 'rw', { options: { directIo: true, discard: false } })] }),
    policy: { prune: true },
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(DATA, 40)),
      loops: [standIn],
      backends: [backend(4, 'xvdb', { ours: false, script: BLOCK_SCRIPT, diskseq: undefined, sourceInode: undefined, params: DATA }, standIn)],
    }),
    actions: [],
    findings: ['unexpected-backend warning db xvdb'],
    sync: ['db xvdb out-of-sync'],
    check: (p) => assert.match(p.findings[0]!.message, /direct I\/O off, desired on/),
  },
  {
    name: 'device source that is a loop device with direct I/O: loop options are not checked (no loop of ours)',
    desired: desired({ db: [devDisk()] }),
    observed: (() => {
      const l = loop(3, 40, { ours: false, backingPath: DATA, directIo: true, blockSize: 4096 });
      return observed({ domains: DOMS, sources: sources(blockSrc(LOOPDEV, '7:3')), loops: [l], backends: [devBackend({ diskseq: l.diskseq })] });
    })(),
    actions: [],
    findings: [],
    sync: ['db xvdb synced'],
  },
  // ---- read-only sharing agrees with the registry's rule -----------------------------------
  {
    name: 'read-only disk, default options: shares the ro loop with 512-byte blocks, not the one with 4096',
    desired: desired({ db: [disk('xvda', A, 'ro')] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [loop(1, 11, { backingPath: A, readOnly: true, blockSize: 4096 }), loop(2, 11, { backingPath: A, readOnly: true })],
    }),
    // two ro loops of one file with different options are no duplicates; both unused: leaked
    actions: ['attach db xvda reuse=loop2'],
    findings: ['loop-leaked warning'],
  },
  {
    name: 'read-only disk with blockSize 4096: shares the 4096 loop',
    desired: desired({ db: [disk('xvda', A, 'ro', { options: { directIo: false, blockSize: 4096, discard: false } })] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [loop(1, 11, { backingPath: A, readOnly: true, blockSize: 4096 }), loop(2, 11, { backingPath: A, readOnly: true })],
    }),
    actions: ['attach db xvda reuse=loop1'],
    findings: ['loop-leaked warning'],
  },
  {
    name: 'read-only disk with direct I/O: no ro loop with direct I/O, a new one',
    desired: desired({ db: [disk('xvda', A, 'ro', { options: { directIo: true, discard: false } })] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [loop(2, 11, { backingPath: A, readOnly: true })],
    }),
    actions: ['attach db xvda'],
    findings: ['loop-leaked warning'],
  },
  {
    name: 'read-only disk: a ro loop whose block size is unknown is never chosen',
    desired: desired({ db: [disk('xvda', A, 'ro')] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [loop(2, 11, { backingPath: A, readOnly: true, blockSize: undefined })],
    }),
    actions: ['attach db xvda'],
    findings: ['loop-leaked warning'],
  },
  {
    name: 'two ro loops of one file with equal options, both used: loop-duplicate still reported',
    desired: desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', A, 'ro')] }),
    observed: (() => {
      const l1 = loop(1, 11, { backingPath: A, readOnly: true });
      const l2 = loop(2, 11, { backingPath: A, readOnly: true });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l1, l2], backends: [backend(3, 'xvda', {}, l1), backend(4, 'xvda', {}, l2)] });
    })(),
    actions: [],
    findings: ['loop-duplicate warning'],
  },
];

for (const c of cases) {
  test(`plan: ${c.name}`, () => {
    const pol = policy({ ...c.desired.policy, ...(c.policy ?? {}) });
    const p = plan(c.desired, c.observed, pol);
    assert.deepEqual(actionLines(p), c.actions, 'actions');
    assert.deepEqual(findingLines(p), c.findings, `findings: ${JSON.stringify(p.findings.map((f) => f.message))}`);
    for (const f of p.findings) assert.ok(f.message.length > 0 && f.fix.length > 0, 'every finding says what and how to fix');
    if (c.sync) assert.deepEqual(p.disks.map((d) => `${d.domain} ${d.vdev} ${d.sync}`), c.sync, 'sync');
    c.check?.(p);
    const before = JSON.stringify([c.desired, c.observed]);
    assert.deepEqual(plan(c.desired, c.observed, pol), p);
    assert.equal(JSON.stringify([c.desired, c.observed]), before);
  });
}
