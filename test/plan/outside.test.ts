// detachedOutside (src/plan/outside.ts): which vbds the daemon does not put back, as a table; and the
// planner's side: such a disk gets a finding, not an attach.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detachedOutside, oursAfterPass, vbdKey } from '../../src/plan/outside.js';
import { plan } from '../../src/plan/index.js';
import { actionLines, backend, desired, disk, fileSrc, findingLines, observed, sources } from './fixtures.js';

const DOMS = [
  { domid: 0, name: 'Domain-0' },
  { domid: 3, name: 'web' },
  { domid: 4, name: 'db' },
];
const b3 = backend(3, 'xvdb');
const b4 = backend(4, 'xvdb');
const theirs = backend(3, 'xvdc', { ours: false });

const cases: { name: string; had?: string[]; known?: string[]; now: Parameters<typeof observed>[0]; want: string[] }[] = [
  { name: 'no pass done yet: nothing new', now: { domains: DOMS, backends: [] }, want: [] },
  { name: 'ours after the last pass, gone now, its domain runs: remembered', known: ['3/51728', '4/51728'], now: { domains: DOMS, backends: [b4] }, want: ['3/51728'] },
  { name: 'gone together with its domain: not remembered', known: ['3/51728'], now: { domains: DOMS.filter((d) => d.domid !== 3), backends: [] }, want: [] },
  { name: 'still there (or another backend at that vdev): nothing', known: ['3/51728'], now: { domains: DOMS, backends: [backend(3, 'xvdb', { ours: false })] }, want: [] },
  { name: 'kept while the domain runs, even when a backend comes back', had: ['3/51728'], known: [], now: { domains: DOMS, backends: [b3] }, want: ['3/51728'] },
  { name: 'forgotten when the domain is gone', had: ['3/51728', '4/51728'], now: { domains: DOMS.filter((d) => d.domid !== 4), backends: [] }, want: ['3/51728'] },
];

for (const c of cases) {
  test(`detachedOutside: ${c.name}`, () => {
    const got = detachedOutside(new Set(c.had ?? []), c.known ? new Set(c.known) : undefined, observed(c.now));
    assert.deepEqual([...got].sort(), c.want);
  });
}

test('oursAfterPass: observed ours, less own detaches (even failed) and replaced halves, plus what succeeded', () => {
  const o = observed({ domains: DOMS, backends: [b3, b4, theirs] });
  const ref = (b: typeof b3) => ({ path: b.path, backendDomid: 0, frontendDomid: b.frontendDomid, devid: b.devid });
  const d = disk('xvdd', '/srv/d.img');
  const steps = [
    { action: { kind: 'detach' as const, backend: ref(b4), reason: 'x' }, ok: false },
    { action: { kind: 'attach' as const, domain: 'web', domid: 3, disk: d }, ok: true },
    { action: { kind: 'attach' as const, domain: 'db', domid: 4, disk: d }, ok: false },
  ];
  assert.deepEqual([...oursAfterPass(o, steps)].sort(), ['3/51728', '3/51760']);
  assert.deepEqual([...oursAfterPass(o, [])].sort(), ['3/51728', '4/51728'], 'another tool\'s backend is not ours');
});

test('the planner: a disk detached outside xvbd gets a finding, not an attach; the others attach', () => {
  const d = desired({ web: [disk('xvdb', '/srv/a.img')], db: [disk('xvdb', '/srv/b.img')] });
  const o = observed({ domains: DOMS, backends: [], sources: sources(fileSrc('/srv/a.img', 11), fileSrc('/srv/b.img', 12)) });
  const p = plan(d, o, { ...d.policy, detachedOutside: new Set([vbdKey(3, 51728)]) });
  assert.deepEqual(actionLines(p).map((l) => l.split(' ').slice(0, 3).join(' ')), ['attach db xvdb']);
  assert.ok(findingLines(p).some((l) => /^detached-outside warning web xvdb/.test(l)), findingLines(p).join('\n'));
  const row = p.disks.find((r) => r.domain === 'web')!;
  assert.equal(row.sync, 'out-of-sync');
  assert.equal(row.healthReason, 'detached outside xvbd');
  // without the memory (apply, an operator's reconcile), both attach
  assert.equal(plan(d, o, d.policy).actions.length, 2);
});
