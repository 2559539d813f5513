// Table tests of the served-device stage, health and the data guard (src/plan/backend.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guardLetGo, health, planServed } from '../../src/plan/backend.js';
import { indexObserved } from '../../src/plan/observed-index.js';
import { PlanOut } from '../../src/plan/order.js';
import type { LoopObs, ObservedState } from '../../src/model/observed.js';
import { backend, loop, observed } from './fixtures.js';

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
