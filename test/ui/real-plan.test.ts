// The ViewModel and the screen on the REAL planner's output (src/plan), scenario by scenario: every
// finding lands on the row it is about (or is host-wide), reasons and states reach the screen,
// details exist for every row, and nothing throws. The planner's builders come from test/plan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createElement as h } from 'react';
import { renderToString } from 'ink';
import { plan } from '../../src/plan/index.js';
import { TuiView } from '../../src/ui/components/TuiView.js';
import { buildViewModel } from '../../src/ui/viewmodel.js';
import type { DesiredState } from '../../src/model/desired.js';
import type { ObservedState } from '../../src/model/observed.js';
import { backend, converged, desired, disk, fileSrc, loop, observed, sources } from '../plan/fixtures.js';
import { stripAnsi } from './harness.js';

const A = '/srv/a.img';
const B = '/srv/b.img';
const DOMS = [
  { domid: 0, name: 'Domain-0' },
  { domid: 3, name: 'web' },
  { domid: 4, name: 'db' },
];
const META = { host: 'h', socket: '/s', configDir: '/etc/xvbd' };

interface Scenario {
  name: string;
  desired: DesiredState;
  observed: ObservedState;
  /** finding kind -> the row key it must be linked to ('' = host-wide, no row). */
  links: Record<string, string>;
  /** row key -> [tone, text the screen must show for it]. */
  rows: Record<string, [string, RegExp?]>;
}

function scenarios(): Scenario[] {
  const la = loop(0, 11, { backingPath: A });
  const d1 = desired({ web: [disk('xvda', A)], db: [disk('xvdb', B, 'ro')] });
  const conv = converged(d1, { web: 3, db: 4 }, { [A]: 11, [B]: 12 });
  const broken = converged(d1, { web: 3, db: 4 }, { [A]: 11, [B]: 12 });
  broken.backends[0] = { ...broken.backends[0]!, error: '22 reading /local/domain/3/device/vbd/51712/event-channel', state: 5 };
  return [
    {
      name: 'converged: all green, nothing linked',
      desired: d1,
      observed: conv,
      links: {},
      rows: { 'web/xvda': ['green'], 'db/xvdb': ['green'] },
    },
    {
      name: 'backend error: degraded, red, reason on screen',
      desired: d1,
      observed: broken,
      links: { 'backend-error': 'web/xvda' },
      rows: { 'web/xvda': ['red', /↳ degraded: .*22 reading/], 'db/xvdb': ['green'] },
    },
    {
      name: 'nothing there yet: attach planned, missing',
      desired: desired({ web: [disk('xvda', A)] }),
      observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
      links: {},
      rows: { 'web/xvda': ['yellow', /\+ attach web\/xvda/] },
    },
    {
      name: 'domain not running: pending, grey',
      desired: desired({ mail: [disk('xvda', A)] }),
      observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)) }),
      links: { 'domain-not-running': 'mail/xvda' },
      rows: { 'mail/xvda': ['gray'] },
    },
    {
      name: 'source missing: an error on the row',
      desired: desired({ web: [disk('xvda', A)] }),
      observed: observed({ domains: DOMS, sources: { [A]: { path: A, exists: false, mounted: false } } }),
      links: { 'source-missing': 'web/xvda' },
      rows: { 'web/xvda': ['yellow', /source-missing \[web\/xvda\]/] },
    },
    {
      name: 'a leaked loop device of ours: host-wide',
      desired: desired({}),
      observed: observed({ domains: DOMS, loops: [la] }),
      links: { 'loop-leaked': '' },
      rows: {},
    },
    {
      name: 'mode differs: a finding on the row',
      desired: desired({ web: [disk('xvda', A, 'ro')] }),
      observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [la], backends: [backend(3, 'xvda', { params: A }, la)] }),
      links: { 'mode-mismatch': 'web/xvda' },
      rows: {},
    },
  ];
}

test('real plans: findings linked to their rows, tones, reasons, details, screens (table)', () => {
  for (const sc of scenarios()) {
    const p = plan(sc.desired, sc.observed, sc.desired.policy);
    const vm = buildViewModel({ plan: p, observed: sc.observed, desired: sc.desired, meta: META });
    assert.equal(vm.rows.length, p.disks.length, sc.name);
    assert.equal(new Set(vm.rows.map((r) => r.key)).size, vm.rows.length, `${sc.name}: unique keys`);
    for (const r of vm.rows) {
      const d = vm.details(r.key);
      assert.ok(d, `${sc.name}: details of ${r.key}`);
      assert.equal(d.status[0]![0], 'sync');
    }
    for (const [kind, key] of Object.entries(sc.links)) {
      const f = vm.findings.find((x) => x.kind === kind);
      assert.ok(f, `${sc.name}: a ${kind} finding (got ${vm.findings.map((x) => x.kind).join(', ')})`);
      assert.deepEqual(f.rowKeys, key === '' ? [] : [key], `${sc.name}: ${kind} linked to ${key || 'no row'}`);
      if (key !== '') assert.ok(vm.details(key)!.findings.some((x) => x.kind === kind), `${sc.name}: ${kind} in the details of ${key}`);
    }
    if (Object.keys(sc.links).length === 0) assert.equal(vm.findings.length, 0, `${sc.name}: no findings`);
    const screen = stripAnsi(renderToString(h(TuiView, { vm, ui: { mode: 'list', selected: 0 }, width: 140, height: 50, canApply: true }), { columns: 140 }));
    for (const [key, [tone, text]] of Object.entries(sc.rows)) {
      const r = vm.rows.find((x) => x.key === key);
      assert.ok(r, `${sc.name}: row ${key}`);
      assert.equal(r.tone, tone, `${sc.name}: tone of ${key}`);
      if (text) assert.match(screen, text, `${sc.name}: screen for ${key}`);
    }
    for (const [i] of vm.rows.entries()) {
      const s = stripAnsi(renderToString(h(TuiView, { vm, ui: { mode: 'details', selected: i }, width: 140, height: 60, canApply: true }), { columns: 140 }));
      assert.match(s, /Status\n\s+sync\s+\S+/, `${sc.name}: details screen of row ${i}`);
    }
  }
});
