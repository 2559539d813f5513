// The planner's safety actions as tables: who holds a served device (hold, loop-unheld), backends whose
// device is gone or re-bound (offline before anything is allocated), and a reused backend counting as a
// user of what its number names now (rw-shared). Plus holdVerdict itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { holdVerdict, plan } from '../../src/plan/index.js';
import { actionLines, backend, desired, disk, fileSrc, findingLines, loop, observed, sources } from './fixtures.js';

const A = '/srv/file-11.img';
const B = '/srv/file-12.img';
const DOMS = [
  { domid: 0, name: 'Domain-0' },
  { domid: 3, name: 'web' },
  { domid: 4, name: 'db' },
];

test('holdVerdict: the fd store or both keepers hold; one keeper is weak; none is unheld; not asked is unknown', () => {
  const rows: [string[] | undefined, string][] = [
    [undefined, 'unknown'],
    [[], 'unheld'],
    [['keeper-a'], 'weak'],
    [['keeper-b'], 'weak'],
    [['keeper-a', 'keeper-b'], 'held'],
    [['fd-store'], 'held'],
    [['fd-store', 'keeper-a'], 'held'],
    [['keeper-c', 'somebody'], 'unheld'],
  ];
  for (const [keptBy, want] of rows) assert.equal(holdVerdict(keptBy), want, JSON.stringify(keptBy));
});

interface Row {
  name: string;
  keptBy?: string[];
  over?: Parameters<typeof backend>[2];
  loopOver?: Parameters<typeof loop>[2];
  actions: string[];
  findings: string[];
}

const rows: Row[] = [
  { name: 'both keepers hold it: nothing to do', keptBy: ['keeper-a', 'keeper-b'], actions: [], findings: [] },
  { name: 'the fd store holds it: nothing to do', keptBy: ['fd-store'], actions: [], findings: [] },
  { name: 'the holders were not asked: no conclusion', actions: [], findings: [] },
  { name: 'one keeper only: taken back, no finding', keptBy: ['keeper-b'], actions: ['hold web 51712 loop0'], findings: [] },
  { name: 'nobody holds it: taken back, loop-unheld error', keptBy: [], actions: ['hold web 51712 loop0'], findings: ['loop-unheld error web xvda'] },
  {
    // (cannot happen for real: a diskseq is never given twice; the proof is checked all the same)
    name: 'nobody holds it but its backing is not the inode the backend recorded: no hold',
    keptBy: [],
    over: { sourceInode: { dev: '2049', ino: '99' } },
    actions: [],
    findings: [],
  },
  { name: 'nobody holds it and it carries no marker of ours: no hold', keptBy: [], loopOver: { ours: false }, actions: [], findings: [] },
];

for (const r of rows) {
  test(`plan, holders: ${r.name}`, () => {
    const l = loop(0, 11, { ...(r.keptBy ? { keptBy: r.keptBy } : {}), ...r.loopOver });
    const p = plan(
      desired({ web: [disk('xvda', A)] }),
      observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', r.over ?? {}, l)] }),
    );
    assert.deepEqual(actionLines(p), r.actions);
    assert.deepEqual(findingLines(p), r.findings);
  });
}

test('plan: an undesired backend nobody holds is taken back too (prune off: it stays served)', () => {
  const l = loop(0, 11, { keptBy: [] });
  const p = plan(desired({}), observed({ domains: DOMS, sources: {}, loops: [l], backends: [backend(3, 'xvda', {}, l)] }));
  assert.deepEqual(actionLines(p), ['hold web 51712 loop0']);
  assert.deepEqual(findingLines(p), ['loop-unheld error web xvda', 'unexpected-backend warning web xvda']);
});

test('plan: backends are taken offline before anything of any domain is attached', () => {
  // db's backend names 7:0, now bound to another device; web wants a new disk: the offline comes first
  const reused = loop(0, 12, { diskseq: '900', ours: false });
  const p = plan(
    desired({ web: [disk('xvda', A)], db: [disk('xvda', B)] }),
    observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11), fileSrc(B, 13)),
      loops: [reused],
      backends: [backend(4, 'xvda', { params: B, physicalDevice: '7:0', diskseq: '100', sourceInode: { dev: '2049', ino: '13' }, kernelHeld: false })],
    }),
  );
  assert.deepEqual(actionLines(p), ['close db 51712', 'attach web xvda']);
});

test('plan: a reused backend counts as a user of what its number names now (rw-shared)', () => {
  // web's backend recorded diskseq 100 at 7:0; 7:0 now backs db's read-write image: web may open it
  const dbLoop = loop(0, 13, { diskseq: '900' });
  const p = plan(
    desired({ web: [disk('xvda', A)], db: [disk('xvda', B)] }),
    observed({
      domains: DOMS,
      sources: sources(fileSrc(A, 11), fileSrc(B, 13)),
      loops: [dbLoop],
      backends: [
        backend(3, 'xvda', { params: A, physicalDevice: '7:0', diskseq: '100', sourceInode: { dev: '2049', ino: '11' }, kernelHeld: false }),
        backend(4, 'xvda', { params: B }, dbLoop),
      ],
    }),
  );
  assert.ok(findingLines(p).includes('rw-shared error'), findingLines(p).join('\n'));
  const rw = p.findings.find((f) => f.kind === 'rw-shared')!;
  assert.match(rw.message, /web xvda \(through reused 7:0\) \(rw\)/);
  assert.equal(actionLines(p)[0], 'close web 51712');
});

test('inScope: loop devices under the roots, and any a backend names, wherever its file lies', async () => {
  const { inScope } = await import('../../src/observe/scope.js');
  const under = loop(1, 11, { backingPath: '/srv/x/a.img' });
  const elsewhere = loop(2, 12, { backingPath: '/home/other.img', ours: false });
  const named = loop(0x1f, 13, { backingPath: '/home/named.img', ours: false });
  const b = backend(3, 'xvda', { physicalDevice: '7:1F' });
  assert.deepEqual(inScope([under, elsewhere, named], [b], ['/srv/x']).map((l) => l.name), ['loop1', 'loop31']);
  assert.deepEqual(inScope([under, elsewhere, named], [], ['/srv/x']).map((l) => l.name), ['loop1']);
});
