// Table tests of the free-loop decision and the loop findings (src/plan/loops.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freeLoopDecision, loopWants, planLoops } from '../../src/plan/loops.js';
import { indexObserved } from '../../src/plan/observed-index.js';
import { PlanOut } from '../../src/plan/order.js';
import type { Policy } from '../../src/model/desired.js';
import type { LoopObs } from '../../src/model/observed.js';
import type { Action } from '../../src/model/plan.js';
import { backend, loop, observed, policy } from './fixtures.js';

const DOMS = [{ domid: 3, name: 'web' }];

test('freeLoopDecision: kept while used or wanted, freed with prune under allowedRoots, else leaked', () => {
  const free = loop(1, 1, { backingPath: '/srv/a.img' });
  const used = loop(2, 2, { backingPath: '/srv/b.img' });
  const none = { reused: new Set<string>(), desiredDevices: new Set<string>() };
  const cases: { name: string; l: LoopObs; roots: string[]; pol: Partial<Policy>; wants?: typeof none; want: string; kinds: string[]; actions: string[] }[] = [
    { name: 'used by a backend', l: used, roots: ['/srv'], pol: { prune: true }, want: 'kept', kinds: [], actions: [] },
    { name: 'shared by this plan', l: free, roots: ['/srv'], pol: { prune: true }, wants: { ...none, reused: new Set(['loop1']) }, want: 'kept', kinds: [], actions: [] },
    { name: 'a desired block device', l: free, roots: ['/srv'], pol: { prune: true }, wants: { ...none, desiredDevices: new Set(['7:1']) }, want: 'kept', kinds: [], actions: [] },
    { name: 'mounted in dom0', l: loop(1, 1, { backingPath: '/srv/a.img', mounted: true }), roots: ['/srv'], pol: { prune: true }, want: 'kept', kinds: [], actions: [] },
    { name: 'not ours', l: loop(1, 1, { ours: false }), roots: [], pol: { prune: true }, want: 'kept', kinds: [], actions: [] },
    { name: 'prune, under allowedRoots', l: free, roots: ['/srv'], pol: { prune: true }, want: 'freed', kinds: [], actions: ['free-loop'] },
    { name: 'prune, no allowedRoots', l: free, roots: [], pol: { prune: true }, want: 'not-freed', kinds: ['loop-leaked'], actions: [] },
    { name: 'no prune', l: free, roots: ['/srv'], pol: {}, want: 'not-freed', kinds: ['loop-leaked'], actions: [] },
    { name: 'backing deleted, prune', l: loop(1, 1, { backingPath: '/srv/a.img', backingDeleted: true }), roots: ['/srv'], pol: { prune: true }, want: 'not-freed', kinds: ['data-loss-refused'], actions: [] },
  ];
  for (const c of cases) {
    const ix = indexObserved(observed({ domains: DOMS, loops: [c.l, used], backends: [backend(3, 'xvda', {}, used)] }), c.roots);
    const out = new PlanOut();
    assert.equal(freeLoopDecision(c.l, ix, c.wants ?? none, policy({ ...c.pol, allowedRoots: c.roots }), out), c.want, c.name);
    assert.deepEqual(out.findings.map((f) => f.v.kind), c.kinds, c.name);
    assert.deepEqual(out.actions.map((a) => a.v.kind), c.actions, c.name);
  }
});

test('planLoops: deleted backing files in use, read-only duplicates (a freed one is no duplicate); loopWants', () => {
  const inUse = loop(1, 1, { backingDeleted: true });
  const ro1 = loop(2, 2, { readOnly: true });
  const ro2 = loop(3, 2, { readOnly: true });
  const ix = indexObserved(observed({ domains: DOMS, loops: [inUse, ro1, ro2], backends: [backend(3, 'xvda', {}, inUse), backend(3, 'xvdb', {}, ro1)] }), ['/srv']);
  const kinds = (pol: Partial<Policy>) => {
    const out = planLoops(ix, { reused: new Set(), desiredDevices: new Set() }, policy({ allowedRoots: ['/srv'], ...pol }));
    return [...out.findings.map((f) => f.v.kind), ...out.actions.map((a) => a.v.kind)];
  };
  assert.deepEqual(kinds({}), ['loop-backing-deleted', 'loop-leaked', 'loop-duplicate']);
  assert.deepEqual(kinds({ prune: true }), ['loop-backing-deleted', 'free-loop']);
  const attach = { kind: 'attach', reuseLoop: { name: 'loop9', diskseq: '1' } } as unknown as Action;
  assert.deepEqual([...loopWants([attach], new Set()).reused], ['loop9']);
});
