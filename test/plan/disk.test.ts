// Table tests of the per-disk decision (src/plan/disk.ts): attach, serve, replace, keep or hold off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { activeProblems, mayReplace, pickReuse, planDisk } from '../../src/plan/disk.js';
import { desiredDisks } from '../../src/plan/desired-disks.js';
import { indexObserved } from '../../src/plan/observed-index.js';
import { planServed } from '../../src/plan/backend.js';
import type { Policy } from '../../src/model/desired.js';
import type { BackendObs, LoopObs } from '../../src/model/observed.js';
import { backend, desired, disk, fileSrc, loop, observed, policy, sources } from './fixtures.js';

const A = '/srv/a.img';
const B = '/srv/b.img';

function decide(o: { mode?: 'rw' | 'ro'; backends?: BackendObs[]; loops?: LoopObs[]; running?: boolean; pol?: Partial<Policy> }) {
  const d = desired({ web: [disk('xvda', A, o.mode ?? 'rw')] }, o.pol ?? {});
  const obs = observed({ domains: o.running === false ? [] : [{ domid: 3, name: 'web' }], backends: o.backends ?? [], loops: o.loops ?? [], sources: sources(fileSrc(A, 1), fileSrc(B, 2)) });
  const ix = indexObserved(obs, d.policy.allowedRoots);
  const c = desiredDisks(d, obs, ix)[0]!;
  return { r: planDisk(c, ix, d.policy, planServed(ix).offlined), c, ix };
}

test('planDisk: the decision for one disk, as actions, findings and its status row', () => {
  const la = loop(1, 1, { backingPath: A });
  const lb = loop(2, 2, { backingPath: B });
  const cases: { name: string; in: Parameters<typeof decide>[0]; actions: string[]; findings: string[]; sync: string; matched: number }[] = [
    { name: 'no backend: attach', in: {}, actions: ['attach'], findings: [], sync: 'out-of-sync', matched: 0 },
    { name: 'domain not running: pending', in: { running: false }, actions: [], findings: ['domain-not-running'], sync: 'pending', matched: 0 },
    { name: 'serve=hook: left to the toolstack', in: { pol: { serve: 'hook' } }, actions: [], findings: ['missing-backend'], sync: 'out-of-sync', matched: 0 },
    { name: 'served as desired: keep', in: { backends: [backend(3, 'xvda', { params: A }, la)], loops: [la] }, actions: [], findings: [], sync: 'synced', matched: 1 },
    { name: 'toolstack backend for xvbd: serve', in: { backends: [backend(3, 'xvda', { ours: false, script: '/etc/xen/scripts/xvbd', params: A, state: 2 })] }, actions: ['serve'], findings: [], sync: 'out-of-sync', matched: 1 },
    { name: 'another source, no prune: reported', in: { backends: [backend(3, 'xvda', { params: B }, lb)], loops: [lb] }, actions: [], findings: ['source-mismatch'], sync: 'out-of-sync', matched: 1 },
    { name: 'another source, prune: replace', in: { backends: [backend(3, 'xvda', { params: B }, lb)], loops: [lb], pol: { prune: true } }, actions: ['replace'], findings: [], sync: 'out-of-sync', matched: 1 },
    { name: "another tool's, as desired: info", in: { backends: [backend(3, 'xvda', { ours: false, script: 'block', params: A, diskseq: undefined, sourceInode: undefined }, la)], loops: [la] }, actions: [], findings: ['unexpected-backend'], sync: 'synced', matched: 1 },
  ];
  for (const c of cases) {
    const { r } = decide(c.in);
    assert.deepEqual(r.out.actions.map((a) => a.v.kind), c.actions, c.name);
    assert.deepEqual(r.out.findings.map((f) => f.v.kind), c.findings, c.name);
    assert.equal(r.row.sync, c.sync, c.name);
    assert.equal(r.matched.length, c.matched, c.name);
  }
});

test('activeProblems: how an active backend differs from its disk', () => {
  const la = loop(1, 1, { backingPath: A, directIo: true });
  const cases: { name: string; mode: 'rw' | 'ro'; b: BackendObs; kinds: string[] }[] = [
    { name: 'options differ', mode: 'rw', b: backend(3, 'xvda', { params: A }, la), kinds: ['options-mismatch'] },
    { name: 'mode differs too', mode: 'ro', b: backend(3, 'xvda', { params: A }, la), kinds: ['options-mismatch', 'mode-mismatch'] },
    { name: 'loop reused', mode: 'rw', b: backend(3, 'xvda', { params: A, diskseq: '9' }, la), kinds: ['loop-reused'] },
  ];
  for (const c of cases) {
    const { c: ctx, ix } = decide({ mode: c.mode, backends: [c.b], loops: [la] });
    assert.deepEqual(activeProblems(ix.infos[0]!, ctx).problems.map((p) => p.kind), c.kinds, c.name);
  }
});

test('pickReuse shares a read-only loop of ours with the same options; mayReplace: prune or -replace', () => {
  const ro = loop(1, 1, { backingPath: A, readOnly: true });
  assert.equal(decide({ mode: 'ro', loops: [ro] }).r.out.actions[0]!.v.kind, 'attach');
  const { c, ix } = decide({ mode: 'ro', loops: [ro] });
  assert.equal(pickReuse(c, ix)?.name, 'loop1');
  assert.equal(pickReuse(decide({ mode: 'rw', loops: [ro] }).c, ix), undefined);
  assert.equal(mayReplace(policy({ prune: true }), 'web', 1), true);
  assert.equal(mayReplace(policy({ replace: new Set(['web/1']) }), 'web', 1), true);
  assert.equal(mayReplace(policy(), 'web', 1), false);
});
