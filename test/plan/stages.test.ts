// Table tests of the planner's other stages: served devices (src/plan/backend.ts), backends nobody desires
// (orphans.ts), the free-loop decision and the loop findings (loops.ts), and the order of a plan (order.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guardLetGo, health, planServed } from '../../src/plan/backend.js';
import { freeLoopDecision, loopWants, planLoops } from '../../src/plan/loops.js';
import { indexObserved } from '../../src/plan/observed-index.js';
import { orderPlan, phase, PlanOut } from '../../src/plan/order.js';
import { planOrphans, undesiredReason } from '../../src/plan/orphans.js';
import type { Policy } from '../../src/model/desired.js';
import type { LoopObs, ObservedState } from '../../src/model/observed.js';
import type { Action, DiskStatus } from '../../src/model/plan.js';
import { backend, loop, observed, policy } from './fixtures.js';

const DOMS = [{ domid: 3, name: 'web' }];

test('planServed: offline a dangling physical-device (closed when re-bound), hold an unheld device of ours', () => {
  const l = loop(1, 1);
  const cases: { name: string; o: ObservedState; actions: string[]; findings: string[]; offlined: boolean[] }[] = [
    { name: 'held: nothing', o: observed({ domains: DOMS, loops: [l], backends: [backend(3, 'xvda', {}, l)] }), actions: [], findings: [], offlined: [] },
    { name: 'loop gone: offline', o: observed({ domains: DOMS, backends: [backend(3, 'xvda', { kernelHeld: false }, l)] }), actions: ['offline'], findings: [], offlined: [false] },
    { name: 're-bound: closed', o: observed({ domains: DOMS, loops: [l], backends: [backend(3, 'xvda', { diskseq: '5' }, l)] }), actions: ['offline'], findings: [], offlined: [true] },
    { name: 'nobody keeps it: hold', o: observed({ domains: DOMS, loops: [loop(1, 1, { keptBy: [] })], backends: [backend(3, 'xvda', {}, l)] }), actions: ['hold'], findings: ['loop-unheld'], offlined: [] },
    { name: "another tool's: never", o: observed({ domains: DOMS, backends: [backend(3, 'xvda', { ours: false }, l)] }), actions: [], findings: [], offlined: [] },
  ];
  for (const c of cases) {
    const r = planServed(indexObserved(c.o, []));
    assert.deepEqual(r.out.actions.map((a) => a.v.kind), c.actions, c.name);
    assert.deepEqual(r.out.findings.map((f) => f.v.kind), c.findings, c.name);
    assert.deepEqual([...r.offlined.values()], c.offlined, c.name);
  }
});

test('health and guardLetGo', () => {
  const l = loop(1, 1);
  const ix = indexObserved(observed({ loops: [l], backends: [backend(3, 'xvda', {}, l), backend(3, 'xvdb', { state: 6 }, l)] }), []);
  assert.deepEqual(ix.infos.map((i) => health(i).health), ['healthy', 'degraded']);
  const deleted = loop(2, 2, { backingDeleted: true });
  const cases: [LoopObs, boolean, string | undefined, string[]][] = [
    [l, false, '', []],
    [deleted, false, undefined, ['data-loss-refused']],
  ];
  for (const [lo, allow, note, kinds] of cases) {
    const out = new PlanOut();
    assert.equal(guardLetGo('free-loop', lo, 'x', {}, allow, out), note, lo.name);
    assert.deepEqual(out.findings.map((f) => f.v.kind), kinds, lo.name);
  }
  const out = new PlanOut();
  assert.match(guardLetGo('free-loop', deleted, 'x', {}, true, out) ?? '', /^ \(.+\)$/);
});

test('planOrphans: a backend of ours nobody desires is detached with prune, else reported; a nameless domain is left alone', () => {
  const l = loop(1, 1);
  const cases: { name: string; o: ObservedState; pol: Partial<Policy>; actions: string[]; findings: string[]; reason: string }[] = [
    { name: 'domain not in the config', o: observed({ domains: DOMS, loops: [l], backends: [backend(3, 'xvda', {}, l)] }), pol: {}, actions: [], findings: ['unexpected-backend'], reason: 'web is not in the config' },
    { name: 'prune', o: observed({ domains: DOMS, loops: [l], backends: [backend(3, 'xvda', {}, l)] }), pol: { prune: true }, actions: ['detach'], findings: [], reason: 'web is not in the config' },
    { name: 'frontend gone', o: observed({ loops: [l], backends: [backend(3, 'xvda', {}, l)] }), pol: { prune: true }, actions: ['detach'], findings: [], reason: 'frontend domain 3 is not running' },
    { name: 'nameless', o: observed({ domains: [{ domid: 3 }], loops: [l], backends: [backend(3, 'xvda', {}, l)] }), pol: { prune: true }, actions: [], findings: ['unexpected-backend'], reason: 'the name of domain 3 is missing or unreadable' },
    { name: "another tool's: not ours to judge", o: observed({ domains: DOMS, backends: [backend(3, 'xvda', { ours: false })] }), pol: { prune: true }, actions: [], findings: [], reason: 'web is not in the config' },
  ];
  for (const c of cases) {
    const ix = indexObserved(c.o, []);
    const r = planOrphans(ix, new Set(), new Set(), policy(c.pol));
    assert.deepEqual(r.out.actions.map((a) => a.v.kind), c.actions, c.name);
    assert.deepEqual(r.out.findings.map((f) => f.v.kind), c.findings, c.name);
    assert.equal(undesiredReason(ix.infos[0]!, ix, new Set()).reason, c.reason, c.name);
    assert.equal(r.rows.length, c.o.backends[0]!.ours ? 1 : 0, c.name);
  }
  // a matched backend is no orphan
  const ix = indexObserved(observed({ domains: DOMS, loops: [l], backends: [backend(3, 'xvda', {}, l)] }), []);
  assert.equal(planOrphans(ix, new Set(ix.infos), new Set(), policy({ prune: true })).rows.length, 0);
});

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

test('orderPlan: offline and hold first, frees last; findings by domain, devid, kind; sync explained', () => {
  const out = new PlanOut();
  const be = { path: '/b', backendDomid: 0, frontendDomid: 3, devid: 1 };
  const disk = { vdev: 'xvda', devid: 1 } as never;
  out.action({ kind: 'free-loop', loop: { name: 'loop1', diskseq: '1' } as never, reason: 'r' }, '', 0, 0, 1);
  out.action({ kind: 'attach', domain: 'web', domid: 3, disk }, 'web', 3, 1);
  out.action({ kind: 'offline', backend: be, physicalDevice: '7:1', close: false, reason: 'r' }, 'web', 3, 1);
  out.finding('loop-leaked', 'warning', 'm', 'f', { sortDomain: '\uffff\uffff' });
  out.finding('source-missing', 'error', 'm', 'f', { domain: 'web', vdev: 'xvda' });
  const row: DiskStatus = { domain: 'web', vdev: 'xvda', devid: 1, sync: 'out-of-sync', health: 'missing', sharedBy: 0 };
  const p = orderPlan([out], [row]);
  assert.deepEqual(p.actions.map((a) => a.kind), ['offline', 'attach', 'free-loop']);
  assert.deepEqual(p.findings.map((f) => f.kind), ['source-missing', 'loop-leaked']);
  assert.equal(p.disks[0]!.syncReason, 'attach planned');
  assert.deepEqual((['offline', 'hold', 'detach', 'attach', 'free-loop'] as const).map(phase), [0, 0, 1, 1, 2]);
});
