// Table tests of the stage for backends nobody desires (src/plan/orphans.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { indexObserved } from '../../src/plan/observed-index.js';
import { planOrphans, undesiredReason } from '../../src/plan/orphans.js';
import type { Policy } from '../../src/model/desired.js';
import type { ObservedState } from '../../src/model/observed.js';
import { backend, loop, observed, policy } from './fixtures.js';

const DOMS = [{ domid: 3, name: 'web' }];

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
