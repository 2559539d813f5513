// Table tests of the desired disks' stage (src/plan/desired-disks.ts): domids, identities, rw-shared, source checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSource, desiredDisks, rwConflicts, rwSharedFindings } from '../../src/plan/desired-disks.js';
import { indexObserved } from '../../src/plan/observed-index.js';
import type { DesiredState } from '../../src/model/desired.js';
import type { ObservedState } from '../../src/model/observed.js';
import { backend, blockSrc, desired, disk, fileSrc, loop, observed, sources } from './fixtures.js';

const A = '/srv/a.img';
const DOMS = [{ domid: 3, name: 'web' }, { domid: 4, name: 'db' }, { domid: 5, name: 'db' }];

function ctxs(d: DesiredState, o: ObservedState) {
  const ix = indexObserved(o, d.policy.allowedRoots);
  return { ix, disks: desiredDisks(d, o, ix) };
}

test('desiredDisks: by domain then devid; domid, ambiguity, identity and data keys', () => {
  const d = desired({ web: [disk('xvdb', A), disk('xvda', '/dev/loop3', 'ro', { sourceKind: 'block' })], db: [disk('xvda', A, 'ro')], off: [disk('xvda', A, 'ro')] });
  const o = observed({ domains: DOMS, loops: [loop(3, 77)], sources: sources(fileSrc(A, 1), blockSrc('/dev/loop3', '7:3')) });
  const { disks } = ctxs(d, o);
  assert.deepEqual(disks.map((c) => `${c.dom.name} ${c.disk.vdev} ${c.domid ?? c.ambiguous?.join('+') ?? '-'} ${c.dataKeys.join(',')}`), [
    'db xvda 4+5 f:2049:1',
    'off xvda - f:2049:1',
    'web xvda 3 b:7:3,f:2049:77',
    'web xvdb 3 f:2049:1',
  ]);
  // web's xvdb wants a read-write use of a file others want too
  assert.deepEqual(disks.map((c) => c.conflict), ['f:2049:1', 'f:2049:1', undefined, 'f:2049:1']);
});

test('rwConflicts and rwSharedFindings: a writable user among several; reported once, by the first disk', () => {
  const l = loop(1, 1);
  const cases: { name: string; d: DesiredState; o: ObservedState; conflicts: string[]; findings: number }[] = [
    { name: 'all read-only', d: desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', A, 'ro')] }), o: observed({ domains: DOMS.slice(0, 2), sources: sources(fileSrc(A, 1)) }), conflicts: [], findings: 0 },
    { name: 'two desired, one rw', d: desired({ web: [disk('xvda', A, 'rw')], db: [disk('xvda', A, 'ro')] }), o: observed({ domains: DOMS.slice(0, 2), sources: sources(fileSrc(A, 1)) }), conflicts: ['f:2049:1'], findings: 1 },
    { name: "a backend's rw use and a desired ro one", d: desired({ db: [disk('xvda', A, 'ro')] }), o: observed({ domains: DOMS.slice(0, 2), loops: [l], backends: [backend(3, 'xvdc', {}, l)], sources: sources(fileSrc(A, 1)) }), conflicts: ['f:2049:1'], findings: 1 },
    { name: 'one disk and its own backend', d: desired({ web: [disk('xvda', A, 'rw')] }), o: observed({ domains: DOMS.slice(0, 1), loops: [l], backends: [backend(3, 'xvda', {}, l)], sources: sources(fileSrc(A, 1)) }), conflicts: [], findings: 0 },
  ];
  for (const c of cases) {
    const { ix, disks } = ctxs(c.d, c.o);
    assert.deepEqual([...rwConflicts(ix, disks).keys()], c.conflicts, c.name);
    const out = rwSharedFindings(ix, disks);
    assert.equal(out.findings.length, c.findings, c.name);
    for (const f of out.findings) assert.equal(f.v.kind, 'rw-shared');
  }
});

test('checkSource: the first problem that blocks a new use, with its finding', () => {
  const cases: { name: string; src?: Parameters<typeof sources>[0]; loops?: ReturnType<typeof loop>[]; sourceKind?: 'file' | 'block'; problem?: string; kind?: string }[] = [
    { name: 'fine', src: fileSrc(A, 1) },
    { name: 'missing', problem: 'source missing', kind: 'source-missing' },
    { name: 'a block device, a file desired', src: blockSrc(A, '8:1'), problem: 'source is a block device', kind: 'source-missing' },
    { name: 'no inode', src: fileSrc(A, 1, { inode: undefined }), problem: 'source identity unknown', kind: 'source-missing' },
    { name: 'mounted', src: fileSrc(A, 1, { mounted: true }), problem: 'source mounted in dom0', kind: 'source-mounted' },
    { name: 'a loop device of losetup', src: fileSrc(A, 1), loops: [loop(2, 1, { ours: false })], problem: 'source in use by /dev/loop2', kind: 'source-in-use' },
  ];
  for (const c of cases) {
    const d = desired({ web: [disk('xvda', A, 'rw', c.sourceKind ? { sourceKind: c.sourceKind } : {})] });
    const o = observed({ domains: DOMS.slice(0, 1), loops: c.loops ?? [], sources: c.src ? sources(c.src) : {} });
    const { ix, disks } = ctxs(d, o);
    const r = checkSource(disks[0]!, ix);
    assert.equal(r.problem, c.problem, c.name);
    assert.deepEqual(r.out.findings.map((f) => f.v.kind), c.kind ? [c.kind] : [], c.name);
  }
});
