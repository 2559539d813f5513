// Table tests of the pure planner: (desired, observed, policy) -> actions + findings (+ disk status).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/index.js';
import type { DesiredState, Policy } from '../../src/model/desired.js';
import type { ObservedState } from '../../src/model/observed.js';
import type { Plan } from '../../src/model/plan.js';
import {
  actionLines,
  backend,
  bigConvergedHost,
  blockSrc,
  converged,
  desired,
  disk,
  fileSrc,
  findingLines,
  loop,
  observed,
  policy,
  shuffled,
  sources,
  xvd,
} from './fixtures.js';

const A = '/srv/a.img';
const B = '/srv/b.img';
const C = '/srv/c.img';
const DOMS = [
  { domid: 0, name: 'Domain-0' },
  { domid: 3, name: 'web' },
  { domid: 4, name: 'db' },
];

interface Case {
  name: string;
  desired: DesiredState;
  observed: ObservedState;
  policy?: Partial<Policy>;
  actions: string[];
  findings: string[];
  /** Extra checks on the whole plan. */
  check?: (p: Plan) => void;
}

const la = loop(0, 11, { backingPath: A });
const laRo = loop(0, 11, { backingPath: A, readOnly: true });

const cases: Case[] = [
  {
    name: 'nothing desired, nothing observed: empty plan',
    desired: desired({}),
    observed: observed({ domains: DOMS }),
    actions: [],
    findings: [],
  },
  {
    name: 'attach a desired disk to a running domain (serve=both)',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
    actions: ['attach web xvda'],
    findings: [],
    check: (p) => {
      assert.equal(p.disks[0]!.sync, 'out-of-sync');
      assert.equal(p.disks[0]!.syncReason, 'attach planned');
      assert.equal(p.disks[0]!.health, 'missing');
      const a = p.actions[0]!;
      assert.equal(a.kind === 'attach' && a.domid, 3);
    },
  },
  {
    name: 'serve=attach attaches too',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { serve: 'attach' },
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
    actions: ['attach web xvda'],
    findings: [],
  },
  {
    name: 'serve=hook never attaches: missing-backend',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { serve: 'hook' },
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
    actions: [],
    findings: ['missing-backend warning web xvda'],
  },
  {
    name: 'domain not running: pending, no action',
    desired: desired({ mail: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
    actions: [],
    findings: ['domain-not-running info mail xvda'],
    check: (p) => assert.equal(p.disks[0]!.sync, 'pending'),
  },
  {
    name: 'two domains with one name: ambiguous, no action',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: [...DOMS, { domid: 9, name: 'web' }], sources: sources(fileSrc(A, 11)) }),
    actions: [],
    findings: ['domain-not-running warning web xvda'],
    check: (p) => assert.equal(p.disks[0]!.sync, 'unknown'),
  },
  {
    name: 'source missing: finding, no attach',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: { [A]: { path: A, exists: false, mounted: false } } }),
    actions: [],
    findings: ['source-missing error web xvda'],
  },
  {
    name: 'source not observed at all: source-missing',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS }),
    actions: [],
    findings: ['source-missing error web xvda'],
  },
  {
    name: 'source is a directory: source-missing',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11, { kind: 'other' })) }),
    actions: [],
    findings: ['source-missing error web xvda'],
  },
  {
    name: 'source is a symlink: source-missing, saying so',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11, { kind: 'other', error: 'is a symlink (xvbd never follows symlinks)' })) }),
    actions: [],
    findings: ['source-missing error web xvda'],
    check: (p) => assert.match(p.findings[0]!.message, /is a symlink/),
  },
  {
    name: 'source mounted in dom0: finding, no attach',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11, { mounted: true })) }),
    actions: [],
    findings: ['source-mounted error web xvda'],
  },
  {
    name: 'toolstack backend pending with script=xvbd: serve (serve=hook)',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { serve: 'hook' },
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { ours: false, params: A, script: '/etc/xen/scripts/xvbd', state: 2, frontendState: 1, hotplugStatus: undefined, kernelHeld: false })],
    }),
    actions: ['serve web xvda'],
    findings: [],
    check: (p) => {
      assert.equal(p.disks[0]!.sync, 'out-of-sync');
      assert.equal(p.disks[0]!.health, 'progressing');
      const a = p.actions[0]!;
      assert.equal(a.kind === 'serve' && a.backend.path, '/local/domain/0/backend/vbd/3/51712');
    },
  },
  {
    name: 'toolstack backend pending, serve=both: serve; params with a format prefix',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { ours: false, params: `aio:${A}`, script: 'xvbd', state: 1, frontendState: 1, hotplugStatus: undefined })],
    }),
    actions: ['serve web xvda'],
    findings: [],
  },
  {
    name: 'toolstack backend pending, serve=attach: not served, unexpected-backend',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { serve: 'attach' },
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { ours: false, params: A, script: '/etc/xen/scripts/xvbd', state: 2, frontendState: 1, hotplugStatus: undefined })],
    }),
    actions: [],
    findings: ['unexpected-backend warning web xvda'],
  },
  {
    name: "toolstack backend pending with Xen's block script: never served",
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { ours: false, params: A, script: '/etc/xen/scripts/block', state: 2, frontendState: 1, hotplugStatus: undefined })],
    }),
    policy: { prune: true },
    actions: [],
    findings: ['unexpected-backend warning web xvda'],
  },
  {
    name: 'toolstack backend pending naming another file: source-mismatch, not served',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { ours: false, params: B, script: 'xvbd', state: 2, frontendState: 1, hotplugStatus: undefined })],
    }),
    policy: { prune: true },
    actions: [],
    findings: ['source-mismatch warning web xvda'],
  },
  {
    name: 'toolstack backend pending with mode w for a ro disk: mode-mismatch, not served',
    desired: desired({ web: [disk('xvda', A, 'ro')] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { ours: false, params: A, mode: 'w', script: 'xvbd', state: 2, frontendState: 1, hotplugStatus: undefined })],
    }),
    actions: [],
    findings: ['mode-mismatch warning web xvda'],
  },
  {
    name: 'our own interrupted attach (no physical-device yet) is served even with serve=attach',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { serve: 'attach' },
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { ours: true, params: A, state: 1, frontendState: 1, hotplugStatus: undefined })],
    }),
    actions: ['serve web xvda'],
    findings: [],
  },
  {
    name: 'pending backend with hotplug-status error: backend-error, not re-served',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { ours: false, params: A, script: 'xvbd', state: 2, frontendState: 1, hotplugStatus: 'error' })],
    }),
    actions: [],
    findings: ['backend-error error web xvda'],
  },
  {
    name: 'undesired backend of ours without prune: unexpected-backend, its loop is not leaked',
    desired: desired({}),
    observed: observed({ domains: DOMS, loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: [],
    findings: ['unexpected-backend warning web xvda'],
    check: (p) => {
      assert.equal(p.disks.length, 1);
      assert.equal(p.disks[0]!.sync, 'out-of-sync');
      assert.equal(p.disks[0]!.vdev, 'xvda');
    },
  },
  {
    name: 'undesired backend of ours with prune: detach',
    desired: desired({ web: [] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: ['detach web 51712'],
    findings: [],
    check: (p) => {
      const a = p.actions[0]!;
      assert.ok(a.kind === 'detach' && /no longer in web's config/.test(a.reason), JSON.stringify(a));
      assert.equal(p.disks[0]!.syncReason, "detach planned: xvda is no longer in web's config");
      assert.equal(a.kind === 'detach' && a.backend.diskseq, la.diskseq);
    },
  },
  {
    name: "backend of ours for a dead domain, prune: detach (domain unknown)",
    desired: desired({}),
    policy: { prune: true },
    observed: observed({ domains: DOMS, loops: [la], backends: [backend(17, 'xvda', { frontendState: undefined }, la)] }),
    actions: ['detach #17 51712'],
    findings: [],
  },
  {
    name: 'ambiguous domain name, prune: the backends of both domids on the desired vdev are not detached',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { prune: true },
    observed: observed({
      domains: [...DOMS, { domid: 9, name: 'web' }],
      sources: sources(fileSrc(A, 11)),
      loops: [la, loop(1, 11)],
      backends: [backend(3, 'xvda', {}, la), backend(9, 'xvda', {}, loop(1, 11)), backend(9, 'xvdc', {}, la)],
    }),
    actions: ['detach web 51744'],
    findings: ['domain-not-running warning web xvda', 'rw-shared error'],
  },
  {
    name: 'a running domain whose name is unreadable: its backends of ours are not detached, even with prune',
    desired: desired({ web: [] }),
    policy: { prune: true },
    observed: observed({ domains: [...DOMS, { domid: 12 }], loops: [la], backends: [backend(12, 'xvda', {}, la)] }),
    actions: [],
    findings: ['unexpected-backend warning xvda'],
  },
  {
    name: 'read-write disk served by a read-only loop device: mode-mismatch',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [laRo], backends: [backend(3, 'xvda', { mode: 'w' }, laRo)] }),
    actions: [],
    findings: ['mode-mismatch warning web xvda'],
  },
  {
    name: "other tools' backends on undesired vdevs are ignored, even with prune",
    desired: desired({ web: [disk('xvdb', B)] }),
    policy: { prune: true },
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(B, 12)),
      loops: [loop(5, 99, { ours: false }), loop(1, 12, { backingPath: B })],
      backends: [
        backend(3, 'xvda', { ours: false, script: '/etc/xen/scripts/block', diskseq: undefined, sourceInode: undefined }, loop(5, 99, { ours: false })),
        backend(3, 'xvdb', { params: B }, loop(1, 12, { backingPath: B })),
      ],
    }),
    actions: [],
    findings: [],
    check: (p) => assert.equal(p.disks.length, 1),
  },
  {
    name: "another tool's backend on a desired vdev serving the same file: synced, info, never touched",
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { prune: true },
    observed: (() => {
      const l = loop(5, 11, { ours: false });
      return observed({
        domains: DOMS,
        sources: sources(fileSrc(A, 11)),
        loops: [l],
        backends: [backend(3, 'xvda', { ours: false, script: '/etc/xen/scripts/block', diskseq: undefined, sourceInode: undefined }, l)],
      });
    })(),
    actions: [],
    findings: ['unexpected-backend info web xvda'],
    check: (p) => assert.equal(p.disks[0]!.sync, 'synced'),
  },
  {
    name: "another tool's backend on a desired vdev serving another file: warning, never replaced",
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { prune: true },
    observed: (() => {
      const l = loop(5, 55, { ours: false });
      return observed({
        domains: DOMS,
        sources: sources(fileSrc(A, 11)),
        loops: [l],
        backends: [backend(3, 'xvda', { ours: false, script: '/etc/xen/scripts/block', diskseq: undefined, sourceInode: undefined }, l)],
      });
    })(),
    actions: [],
    findings: ['unexpected-backend warning web xvda'],
    check: (p) => assert.equal(p.disks[0]!.sync, 'out-of-sync'),
  },
  {
    name: 'mode differs, no prune: mode-mismatch finding',
    desired: desired({ web: [disk('xvda', A, 'ro')] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: [],
    findings: ['mode-mismatch warning web xvda'],
    check: (p) => assert.equal(p.disks[0]!.syncReason, 'mode-mismatch'),
  },
  {
    name: 'mode differs, prune: replace',
    desired: desired({ web: [disk('xvda', A, 'ro')] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: ['replace web xvda'],
    findings: [],
    check: (p) => {
      const a = p.actions[0]!;
      assert.ok(a.kind === 'replace' && /mode rw, desired ro/.test(a.reason));
      assert.equal(p.disks[0]!.syncReason, 'replace planned: mode rw, desired ro');
    },
  },
  {
    name: 'same path, new inode (file replaced under the same name): source-mismatch',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 12)), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: [],
    findings: ['source-mismatch warning web xvda'],
  },
  {
    name: 'same path, new inode, prune: replace; the old loop is not freed (recorded diskseq)',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 12)), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: ['replace web xvda'],
    findings: [],
  },
  {
    name: 'renamed path, same inode (identity by inode): synced',
    desired: desired({ web: [disk('xvda', '/srv/renamed.img')] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc('/srv/renamed.img', 11)),
      loops: [la],
      backends: [backend(3, 'xvda', {}, la)],
    }),
    actions: [],
    findings: [],
    check: (p) => assert.equal(p.disks[0]!.sync, 'synced'),
  },
  {
    name: 'unused loop of ours, no prune: loop-leaked',
    desired: desired({}),
    observed: observed({ domains: DOMS, loops: [loop(2, 30)] }),
    actions: [],
    findings: ['loop-leaked warning'],
  },
  {
    name: 'unused loop of ours, prune: free-loop; loops not ours and loops whose diskseq a backend records stay',
    desired: desired({}),
    policy: { prune: true, allowedRoots: ['/srv'] },
    observed: observed({
      domains: DOMS,
      loops: [loop(2, 30), loop(3, 31, { ours: false }), loop(4, 32), loop(6, 33, { mounted: true })],
      // A backend that records loop4's diskseq but whose physical-device points elsewhere.
      backends: [backend(9, 'xvda', { ours: false, physicalDevice: 'fd:0', diskseq: '104' })],
    }),
    actions: ['free-loop loop2'],
    findings: [],
    check: (p) => {
      const a = p.actions[0]!;
      assert.equal(a.kind === 'free-loop' && a.loop.diskseq, '102');
    },
  },
  {
    name: 'with allowedRoots, marked loops of files elsewhere are never ours: not shared, reported or freed',
    desired: desired({ web: [disk('xvda', A, 'ro')] }),
    policy: { prune: true, allowedRoots: ['/srv/'] },
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [
        loop(1, 11, { readOnly: true, backingPath: '/elsewhere/a-hardlink.img' }),
        loop(2, 30, { backingPath: '/tmp/other-test/x.img' }),
        loop(3, 31, { backingPath: '/srv/old.img (deleted)' }),
        loop(4, 32, { backingPath: '/srvx/y.img' }),
      ],
    }),
    actions: ['attach web xvda', 'free-loop loop3'],
    findings: [],
  },
  {
    name: 'read-only disk shares the existing read-only loop of its inode',
    desired: desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', A, 'ro')] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [laRo],
      backends: [backend(4, 'xvda', { params: A }, laRo)],
    }),
    actions: ['attach web xvda reuse=loop0'],
    findings: [],
    check: (p) => {
      const db = p.disks.find((d) => d.domain === 'db')!;
      assert.equal(db.sync, 'synced');
      assert.equal(db.sharedBy, 1);
    },
  },
  {
    name: 'read-only loop not reused: read-write loop, deleted backing, other direct-io setting',
    desired: desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvdb', B, 'ro', { options: { directIo: true, discard: false } })] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11), fileSrc(B, 12)),
      loops: [loop(1, 11, { readOnly: false }), loop(2, 11, { readOnly: true, backingDeleted: true }), loop(3, 12, { readOnly: true })],
    }),
    policy: { prune: true, allowedRoots: ['/srv'] },
    // loop2 holds the only copy of a deleted file: prune never frees it without --allow-data-loss
    actions: ['attach db xvdb', 'attach web xvda', 'free-loop loop1', 'free-loop loop3'],
    findings: ['data-loss-refused error'],
  },
  {
    name: 'duplicate read-only loops for one file, both used: loop-duplicate; new guest shares the busier one',
    desired: desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', A, 'ro'), disk('xvdb', A, 'ro')], mail: [] }),
    observed: (() => {
      const l1 = loop(1, 11, { readOnly: true });
      const l2 = loop(2, 11, { readOnly: true });
      return observed({
        domains: DOMS,
        sources: sources(fileSrc(A, 11)),
        loops: [l1, l2],
        backends: [backend(4, 'xvda', { params: A }, l1), backend(4, 'xvdb', { params: A }, l2), backend(8, 'xvda', { params: A }, l2)],
      });
    })(),
    actions: ['attach web xvda reuse=loop2'],
    findings: ['unexpected-backend warning xvda', 'loop-duplicate warning'],
  },
  {
    name: 'loop in use whose backing file was deleted: loop-backing-deleted',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: (() => {
      const l = loop(0, 11, { backingDeleted: true, backingPath: `${A} (deleted)` });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', {}, l)] });
    })(),
    actions: [],
    findings: ['loop-backing-deleted warning'],
  },
  {
    name: 'loop device at physical-device has another diskseq: closed at once (blkback may open what the number names now), loop-reused (error), no prune: no replace',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [loop(0, 77, { diskseq: '555', ours: false })],
      backends: [backend(3, 'xvda', { physicalDevice: '7:0', diskseq: '100', sourceInode: { dev: '2049', ino: '11' }, kernelHeld: false })],
    }),
    actions: ['close web 51712'],
    findings: ['loop-reused error web xvda'],
    check: (p) => {
      assert.equal(p.disks[0]!.health, 'degraded');
      assert.equal(p.disks[0]!.loop, undefined);
      const a = p.actions[0]!;
      assert.ok(a.kind === 'offline' && a.close && a.physicalDevice === '7:0');
    },
  },
  {
    name: 'loop device gone, params unchanged: its physical-device taken away first, then served again (no prune needed)',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { params: A, physicalDevice: '7:0', diskseq: '100', sourceInode: { dev: '2049', ino: '11' }, kernelHeld: false })],
    }),
    actions: ['offline web 51712', 'serve web xvda'],
    findings: [],
  },
  {
    name: 'loop device gone, another source recorded, prune: taken offline, then replaced',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { prune: true },
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      backends: [backend(3, 'xvda', { physicalDevice: '7:0', diskseq: '100', sourceInode: { dev: '2049', ino: '11' }, kernelHeld: false })],
    }),
    actions: ['offline web 51712', 'replace web xvda'],
    findings: [],
  },
  {
    name: 'a read-write file desired by two domains: rw-shared, neither attached',
    desired: desired({ web: [disk('xvda', A)], db: [disk('xvda', A, 'ro')] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
    actions: [],
    findings: ['rw-shared error'],
  },
  {
    name: 'a read-write file desired twice, once in a domain that is not running: still refused',
    desired: desired({ web: [disk('xvda', A)], mail: [disk('xvda', A)] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
    actions: [],
    findings: ['domain-not-running info mail xvda', 'rw-shared error'],
  },
  {
    name: "a file another tool's backend uses read-write: rw-shared, the ro attach is refused",
    desired: desired({ web: [disk('xvda', A, 'ro')] }),
    observed: (() => {
      const l = loop(5, 11, { ours: false });
      return observed({
        domains: DOMS,
        sources: sources(fileSrc(A, 11)),
        loops: [l],
        backends: [backend(4, 'xvdc', { ours: false, script: '/etc/xen/scripts/block', diskseq: undefined, sourceInode: undefined }, l)],
      });
    })(),
    actions: [],
    findings: ['rw-shared error'],
    check: (p) => assert.match(p.findings[0]!.message, /db xvdc \(not xvbd's\) \(rw\)/),
  },
  {
    name: 'rw file attached to web (ours), config adds it to db: db refused, web keeps it but degraded',
    desired: desired({ web: [disk('xvda', A)], db: [disk('xvdb', A)] }),
    policy: { prune: true },
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [la], backends: [backend(3, 'xvda', {}, la)] }),
    actions: [],
    findings: ['rw-shared error'],
    check: (p) => {
      const web = p.disks.find((d) => d.domain === 'web')!;
      assert.equal(web.sync, 'synced');
      assert.equal(web.health, 'degraded');
    },
  },
  {
    name: 'read-only file for two domains: both attached',
    desired: desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', A, 'ro')] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
    actions: ['attach db xvda', 'attach web xvda'],
    findings: [],
  },
  {
    name: 'error node: backend-error, degraded',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [la],
      backends: [backend(3, 'xvda', { state: 5, frontendState: 3, error: '22 reading /local/domain/3/device/vbd/51712/event-channel' }, la)],
    }),
    actions: [],
    findings: ['backend-error error web xvda'],
    check: (p) => {
      assert.equal(p.disks[0]!.health, 'degraded');
      assert.match(p.disks[0]!.healthReason!, /^error: 22 reading/);
      assert.equal(p.disks[0]!.sync, 'synced');
    },
  },
  {
    name: 'guest wrote garbage as its state: backend-error warning, degraded',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [la],
      backends: [backend(3, 'xvda', { frontendState: undefined, malformed: ['frontend state "4; rm -rf /" is not 1..8'] }, la)],
    }),
    actions: [],
    findings: ['backend-error warning web xvda'],
    check: (p) => assert.equal(p.disks[0]!.health, 'degraded'),
  },
  {
    name: 'a second backend for a desired vdev from another backend domain (ours, prune): detached',
    desired: desired({ web: [disk('xvda', A)] }),
    policy: { prune: true },
    observed: observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11)),
      loops: [la],
      backends: [backend(3, 'xvda', {}, la), backend(3, 'xvda', { backendDomid: 7, physicalDevice: 'fd:9' })],
    }),
    actions: ['detach web 51712'],
    findings: [],
  },
  {
    name: 'block device source: synced by device number; another device is a source-mismatch',
    desired: desired({ web: [disk('xvda', '/dev/vg/web', 'rw', { sourceKind: 'block' })], db: [disk('xvda', '/dev/vg/db', 'rw', { sourceKind: 'block' })] }),
    observed: observed({
      domains: DOMS,
      sources: sources(blockSrc('/dev/vg/web', '253:1'), blockSrc('/dev/vg/db', '253:2')),
      backends: [backend(3, 'xvda', { physicalDevice: 'fd:1' }), backend(4, 'xvda', { physicalDevice: 'fd:3' })],
    }),
    actions: [],
    findings: ['source-mismatch warning db xvda'],
    check: (p) => {
      assert.equal(p.disks.find((d) => d.domain === 'web')!.sync, 'synced');
    },
  },
  {
    name: 'config says block device, the path is a regular file: source-missing',
    desired: desired({ web: [disk('xvda', A, 'rw', { sourceKind: 'block' })] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
    actions: [],
    findings: ['source-missing error web xvda'],
  },
];

for (const c of cases) {
  test(`plan: ${c.name}`, () => {
    const pol = policy({ ...c.desired.policy, ...(c.policy ?? {}) });
    const p = plan(c.desired, c.observed, pol);
    assert.deepEqual(actionLines(p), c.actions, 'actions');
    assert.deepEqual(findingLines(p), c.findings, `findings: ${JSON.stringify(p.findings.map((f) => f.message))}`);
    for (const f of p.findings) {
      assert.ok(f.message.length > 0 && f.fix.length > 0, 'every finding says what and how to fix');
    }
    c.check?.(p);
    // Pure: same inputs, same plan; inputs not mutated.
    const before = JSON.stringify([c.desired, c.observed]);
    assert.deepEqual(plan(c.desired, c.observed, pol), p);
    assert.equal(JSON.stringify([c.desired, c.observed]), before);
  });
}

// ---- idempotence: observed after a perfect apply -> empty plan ------------------------------
const bigDesired = desired(
  {
    web: [disk('xvda', A), disk('xvdb', C, 'ro')],
    db: [disk('xvda', B), disk('xvdb', C, 'ro')],
    mail: [disk('xvda', '/srv/mail.img')],
  },
  { prune: true },
);
const inodes = { [A]: 11, [B]: 12, [C]: 13, '/srv/mail.img': 14 };

for (const serve of ['attach', 'hook', 'both'] as const) {
  for (const prune of [false, true]) {
    test(`idempotence: converged state gives an empty plan (serve=${serve}, prune=${prune})`, () => {
      const obs = converged(bigDesired, { web: 3, db: 4, mail: 5 }, inodes);
      const p = plan(bigDesired, obs, policy({ serve, prune }));
      assert.deepEqual(p.actions, []);
      assert.deepEqual(p.findings, []);
      assert.equal(p.disks.length, 5);
      for (const d of p.disks) {
        assert.equal(d.sync, 'synced', `${d.domain} ${d.vdev}`);
        assert.equal(d.health, 'healthy', `${d.domain} ${d.vdev}`);
      }
      // The ro file is shared by one loop between web and db.
      const shared = p.disks.filter((d) => d.vdev === 'xvdb');
      assert.deepEqual(shared.map((d) => [d.sharedBy, d.loop?.name]), [
        [2, shared[0]!.loop!.name],
        [2, shared[0]!.loop!.name],
      ]);
    });
  }
}

test('convergence: from nothing, the plan attaches every disk; the converged state then plans nothing', () => {
  const start = converged(bigDesired, {}, inodes);
  start.domains.push({ domid: 3, name: 'web' }, { domid: 4, name: 'db' }, { domid: 5, name: 'mail' });
  const p1 = plan(bigDesired, start, bigDesired.policy);
  assert.deepEqual(actionLines(p1), ['attach db xvda', 'attach db xvdb', 'attach mail xvda', 'attach web xvda', 'attach web xvdb']);
  const p2 = plan(bigDesired, converged(bigDesired, { web: 3, db: 4, mail: 5 }, inodes), bigDesired.policy);
  assert.equal(p2.actions.length + p2.findings.length, 0);
});

// ---- ordering and determinism ---------------------------------------------------------------
test('ordering: actions by domain then devid, detaches before attaches on one vdev, free-loop last', () => {
  const d = desired({ zeta: [disk('xvdc', A), disk('xvda', B)], alpha: [disk('xvdb', C)], db: [disk('xvda', '/srv/db.img', 'ro')] }, { prune: true, allowedRoots: ['/srv'] });
  const obs = observed({
    domains: [...DOMS, { domid: 7, name: 'zeta' }, { domid: 8, name: 'alpha' }],
    sources: sources(fileSrc(A, 11), fileSrc(B, 12), fileSrc(C, 13), fileSrc('/srv/db.img', 20)),
    loops: [loop(9, 90), loop(1, 91)],
    backends: [backend(4, 'xvda', { params: '/srv/db.img' }, loop(3, 21, { readOnly: false }))],
  });
  obs.loops.push(loop(3, 21));
  const p = plan(d, obs, d.policy);
  assert.deepEqual(actionLines(p), ['attach alpha xvdb', 'replace db xvda', 'attach zeta xvda', 'attach zeta xvdc', 'free-loop loop1', 'free-loop loop9']);
});

test('determinism: shuffled inputs give the same plan', () => {
  const d = desired(
    {
      web: [disk('xvda', A), disk('xvdb', C, 'ro'), disk('xvdc', '/srv/missing.img')],
      db: [disk('xvda', B), disk('xvdb', C, 'ro')],
      mail: [disk('xvda', '/srv/mail.img')],
      off: [disk('xvda', '/srv/off.img')],
    },
    { prune: true, allowedRoots: ['/srv'] },
  );
  const obs = converged(d, { web: 3, db: 4, mail: 5 }, { ...inodes, '/srv/missing.img': 1, '/srv/off.img': 2 });
  delete obs.sources['/srv/missing.img'];
  obs.backends = obs.backends.filter((b) => !(b.frontendDomid === 5));
  obs.backends.push(backend(3, 'xvdf', {}, loop(40, 400)), backend(9, 'xvdg', {}, loop(41, 401)));
  obs.loops.push(loop(40, 400), loop(41, 401), loop(42, 402), loop(43, 403, { readOnly: true }), loop(44, 403, { readOnly: true }));
  const ref = plan(d, obs, d.policy);
  assert.ok(ref.actions.length >= 4 && ref.findings.length >= 2, JSON.stringify(actionLines(ref)));
  for (let seed = 1; seed <= 20; seed++) {
    const d2: DesiredState = { ...d, domains: shuffled(d.domains, seed).map((x) => ({ ...x, disks: shuffled(x.disks, seed + 7) })) };
    const o2: ObservedState = {
      ...obs,
      domains: shuffled(obs.domains, seed + 1),
      backends: shuffled(obs.backends, seed + 2),
      loops: shuffled(obs.loops, seed + 3),
      sources: Object.fromEntries(shuffled(Object.entries(obs.sources), seed + 4)),
    };
    assert.deepEqual(plan(d2, o2, d2.policy), ref, `seed ${seed}`);
  }
});

// ---- health table -----------------------------------------------------------------------------
const healthCases: [string, Partial<Parameters<typeof backend>[2]>, string, RegExp | undefined][] = [
  ['both Connected', { state: 4, frontendState: 4 }, 'healthy', undefined],
  ['InitWait / Initialising', { state: 2, frontendState: 1 }, 'progressing', /InitWait.*Initialising/],
  ['InitWait, blkback not holding yet', { state: 2, frontendState: 1, kernelHeld: false }, 'progressing', /not opened/],
  ['backend Closing', { state: 5, frontendState: 4 }, 'degraded', /backend Closing/],
  ['frontend Closed', { state: 4, frontendState: 6 }, 'degraded', /frontend Closed/],
  ['Reconfiguring', { state: 7, frontendState: 4 }, 'progressing', /Reconfiguring/],
  ['backend state missing', { state: undefined }, 'degraded', /backend state missing/],
  ['frontend gone', { frontendState: undefined, frontendPath: undefined }, 'degraded', /no frontend/],
];
for (const [name, over, h, reason] of healthCases) {
  test(`health: ${name} -> ${h}`, () => {
    const d = desired({ web: [disk('xvda', A)] });
    const obs = observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [la], backends: [backend(3, 'xvda', over, la)] });
    const row = plan(d, obs, d.policy).disks[0]!;
    assert.equal(row.health, h);
    assert.equal(row.sync, 'synced', 'sync is kept apart from health');
    if (reason) assert.match(row.healthReason ?? '', reason);
  });
}

// ---- performance: no-op plan at 1,000 disks across 100 domains --------------------------------
// Its speed is measured by `npm run bench -- attach` (noop_plan_ms), not here.
test('a converged host of 1,000 disks across 100 domains plans nothing', () => {
  const { desired: d, observed: obs } = bigConvergedHost();
  assert.equal(obs.backends.length, 1000);
  const first = plan(d, obs, d.policy);
  assert.equal(first.actions.length + first.findings.length, 0);
  assert.equal(xvd('xvdj'), 51856);
});

