import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildViewModel, daemonLine, eventVM, formatClock, healthTone, planSummary, sanitizeText, stateLabel, visibleRows, type ViewMeta } from '../../src/ui/viewmodel.js';
import type { Health, SyncStatus } from '../../src/model/plan.js';
import { bigHost, cleanHost, host, IMG } from './fixtures.js';

const META: ViewMeta = { host: 'h1', socket: '/tmp/xs.sock', configDir: '/etc/xvbd', observedAt: Date.UTC(2026, 10, 25, 19, 58, 3), observeMs: 12 };

function vmOf(h = host()) {
  return buildViewModel({ ...h, meta: META });
}

test('rows follow the plan order; the domain name marks the first row of each domain', () => {
  const vm = vmOf();
  assert.deepEqual(
    vm.rows.map((r) => [r.key, r.firstOfDomain]),
    [
      ['build/xvda', true],
      ['db/xvda', true],
      ['db/xvdb', false],
      ['db/xvdc', false],
      ['web/xvda', true],
      ['web/xvdb', false],
      ['web/xvdc', false],
    ],
  );
});

test('row tone by health and sync (table)', () => {
  const cases: [Health, SyncStatus, string][] = [
    ['healthy', 'synced', 'green'],
    ['healthy', 'out-of-sync', 'yellow'],
    ['progressing', 'synced', 'cyan'],
    ['degraded', 'synced', 'red'],
    ['degraded', 'out-of-sync', 'red'],
    ['missing', 'pending', 'gray'],
    ['missing', 'out-of-sync', 'yellow'],
  ];
  for (const [h, s, tone] of cases) assert.equal(healthTone(h, s), tone, `${h}/${s}`);
  const vm = vmOf();
  const byKey = Object.fromEntries(vm.rows.map((r) => [r.key, r]));
  assert.equal(byKey['db/xvda']!.tone, 'red');
  assert.equal(byKey['web/xvda']!.tone, 'green');
  assert.equal(byKey['build/xvda']!.tone, 'gray');
});

test('row fields: reason kept, state labels, loop, diskseq, shared-by, pending sign, finding count (table)', () => {
  const vm = vmOf();
  const byKey = Object.fromEntries(vm.rows.map((r) => [r.key, r]));
  const cases: [string, keyof (typeof vm.rows)[number], unknown][] = [
    ['db/xvda', 'healthReason', 'backend error: 22 reading /local/domain/2/device/vbd/51712/event-channel'],
    ['db/xvda', 'backendState', '5 Closing'],
    ['db/xvda', 'frontendState', '3 Initialised'],
    ['db/xvda', 'loop', 'loop2'],
    ['db/xvda', 'diskseq', '102'],
    ['db/xvda', 'findingCount', 1],
    ['db/xvda', 'pending', undefined],
    ['db/xvdb', 'sharedBy', 2],
    ['db/xvdb', 'backendState', '2 InitWait'],
    ['db/xvdc', 'pending', '+'],
    ['db/xvdc', 'loop', '-'],
    ['db/xvdc', 'diskseq', '-'],
    ['db/xvdc', 'backendState', '-'],
    ['db/xvdc', 'findingCount', 1],
    ['web/xvdc', 'pending', '-'],
    ['web/xvdc', 'findingCount', 1],
    ['web/xvda', 'healthReason', undefined],
    ['web/xvda', 'findingCount', 0],
    ['build/xvda', 'findingCount', 1],
    ['build/xvda', 'domid', undefined],
    ['web/xvdb', 'mode', 'ro'],
  ];
  for (const [k, field, want] of cases) assert.deepEqual(byKey[k]![field], want, `${k}.${String(field)}`);
});

test('findings: errors first, then warnings, then info; where and row links', () => {
  const vm = vmOf();
  assert.deepEqual(
    vm.findings.map((f) => [f.severity, f.kind, f.where, f.rowKeys]),
    [
      ['error', 'backend-error', 'db/xvda', ['db/xvda']],
      ['warning', 'missing-backend', 'db/xvdc', ['db/xvdc']],
      ['warning', 'unexpected-backend', '/local/domain/0/backend/vbd/1/51744', ['web/xvdc']],
      ['warning', 'loop-leaked', 'loop7', []],
      ['info', 'domain-not-running', 'build', ['build/xvda']],
    ],
  );
  assert.equal(vm.findings[0]!.tone, 'red');
  assert.equal(vm.findings[1]!.tone, 'yellow');
  assert.equal(vm.findings[4]!.tone, 'gray');
});

test('actions: sign, summary, reason and the row they concern', () => {
  const vm = vmOf();
  assert.deepEqual(
    vm.actions.map((a) => [a.sign, a.kind, a.summary, a.reason, a.rowKey]),
    [
      ['+', 'attach', `attach db/xvdc <- ${IMG}/db-data.img (rw, new loop device)`, undefined, 'db/xvdc'],
      ['-', 'detach', 'detach web devid 51744 (/local/domain/0/backend/vbd/1/51744)', 'not desired (prune)', 'web/xvdc'],
      ['-', 'free-loop', 'free loop7 (diskseq 107)', 'ours, unused (prune)', undefined],
    ],
  );
  assert.equal(vm.summary, 'Plan: 1 to attach, 0 to change, 2 to detach; 5 findings');
});

test('summary line (table)', () => {
  const h = host();
  const one = { ...h.plan, findings: h.plan.findings.slice(0, 1) };
  const cases: [typeof h.plan, string][] = [
    [{ actions: [], findings: [], disks: [] }, 'Plan: 0 to attach, 0 to change, 0 to detach; 0 findings'],
    [one, 'Plan: 1 to attach, 0 to change, 2 to detach; 1 finding'],
    [
      {
        ...h.plan,
        actions: [
          { kind: 'replace', domain: 'db', domid: 2, disk: h.desired.domains[1]!.disks[0]!, backend: h.plan.disks[1]!.backend!, reason: 'mode' },
          { kind: 'serve', domain: 'db', domid: 2, disk: h.desired.domains[1]!.disks[0]!, backend: h.plan.disks[1]!.backend! },
        ],
      },
      'Plan: 1 to attach, 1 to change, 0 to detach; 5 findings',
    ],
  ];
  for (const [p, want] of cases) assert.equal(planSummary(p), want);
});

test('header counts', () => {
  const vm = vmOf();
  assert.deepEqual(vm.header, {
    host: 'h1',
    socket: '/tmp/xs.sock',
    configDir: '/etc/xvbd',
    observedAt: '19:58:03',
    observeMs: 12,
    domainsDesired: 3,
    domainsRunning: 2,
    disks: 7,
    health: { healthy: 3, progressing: 1, degraded: 1, missing: 2 },
    sync: { synced: 4, 'out-of-sync': 2, pending: 1, unknown: 0 },
    findings: { error: 1, warning: 3, info: 1 },
    actions: 3,
    loops: 5,
    loopsOurs: 5,
  });
});

test('details of a degraded disk: backend nodes, loop info, its findings', () => {
  const d = vmOf().details('db/xvda')!;
  assert.equal(d.title, 'db (domid 2) xvda (devid 51712)');
  assert.equal(d.backendPath, '/local/domain/0/backend/vbd/2/51712');
  assert.deepEqual(d.status, [
    ['sync', 'synced'],
    ['health', 'degraded: backend error: 22 reading /local/domain/2/device/vbd/51712/event-channel'],
    ['backend state', '5 Closing'],
    ['frontend state', '3 Initialised'],
  ]);
  const nodes = Object.fromEntries(d.nodes);
  assert.equal(nodes['state'], '5 Closing');
  assert.equal(nodes['frontend state'], '3 Initialised');
  assert.equal(nodes['error'], '22 reading /local/domain/2/device/vbd/51712/event-channel');
  assert.equal(nodes['physical-device'], '7:2');
  assert.equal(nodes['xvbd-inode'], '2049:11');
  assert.equal(nodes['xvbd (ours)'], 'yes');
  const loop = Object.fromEntries(d.loop);
  assert.equal(loop['device'], '/dev/loop2');
  assert.equal(loop['diskseq'], '102');
  assert.equal(loop['flags'], 'read-write, autoclear, ours');
  assert.deepEqual(d.findings.map((f) => f.kind), ['backend-error']);
  assert.deepEqual(Object.fromEntries(d.desired)['written at'], 'host.yaml:8');
});

test('details of an undesired backend and of a disk with no backend', () => {
  const vm = vmOf();
  const web = vm.details('web/xvdc')!;
  assert.deepEqual(web.actions.map((a) => a.kind), ['detach']);
  assert.deepEqual(web.findings.map((f) => f.kind), ['unexpected-backend']);
  assert.deepEqual(Object.fromEntries(web.desired), { desired: 'no (not in the config)' });
  const miss = vm.details('db/xvdc')!;
  assert.equal(miss.backendPath, undefined);
  assert.deepEqual(miss.nodes, []);
  assert.deepEqual(miss.loop, []);
  assert.deepEqual(miss.actions.map((a) => a.kind), ['attach']);
});

test('sync reason and malformed nodes reach the details', () => {
  const h = host();
  h.plan.disks[3] = { ...h.plan.disks[3]!, syncReason: 'attach planned' };
  h.observed.backends[3] = { ...h.observed.backends[3]!, malformed: ['state', 'frontend-state'] };
  const vm = buildViewModel({ ...h, meta: META });
  assert.equal(vm.rows[3]!.syncReason, 'attach planned');
  assert.deepEqual(vm.details('db/xvdc')!.status[0], ['sync', 'out-of-sync: attach planned']);
  assert.equal(Object.fromEntries(vm.details('db/xvda')!.nodes)['malformed (ignored)'], 'state, frontend-state');
});

test('a loop device reused under a recorded name shows its new diskseq', () => {
  const h = host();
  h.observed.loops = h.observed.loops.map((l) => (l.name === 'loop2' ? { ...l, diskseq: '999' } : l));
  const d = buildViewModel({ ...h, meta: META }).details('db/xvda')!;
  assert.equal(Object.fromEntries(d.loop)['now'], 'loop2 has diskseq 999 (reused)');
});

test('state labels (table)', () => {
  const cases: [number | undefined, string][] = [
    [undefined, '-'],
    [0, '0 Unknown'],
    [1, '1 Initialising'],
    [2, '2 InitWait'],
    [4, '4 Connected'],
    [6, '6 Closed'],
    [8, '8 Reconfigured'],
    [42, '42'],
  ];
  for (const [s, want] of cases) assert.equal(stateLabel(s), want);
});

test('clock formatting', () => {
  assert.equal(formatClock(undefined), 'never');
  assert.equal(formatClock(NaN), 'never');
  assert.equal(formatClock(Date.UTC(2026, 0, 2, 3, 4, 5)), '03:04:05');
});

test('control characters from xenstore or file names never reach the view model', () => {
  const h = host();
  const evil = '\u001b[2J\u001b]0;pwned\u0007';
  h.observed.backends[3] = { ...h.observed.backends[3]!, error: `boom${evil}` };
  h.plan.disks[1] = { ...h.plan.disks[1]!, healthReason: `err ${evil}`, domain: 'd\u0001b' };
  const vm = buildViewModel({ ...h, meta: META });
  const json = JSON.stringify(vm);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(json.replace(/\\u00[0-9a-f]{2}/gi, (m) => String.fromCharCode(parseInt(m.slice(2), 16))), /[\u0000-\u001f]/);
  const row = vm.rows[1]!;
  assert.equal(row.key, 'd?b/xvda');
  const det = vm.details(row.key);
  assert.ok(det, 'details keyed like the row');
  assert.doesNotMatch(JSON.stringify(det), /\\u00(0|1)[0-9a-f]/i, 'details sanitized too');
  assert.equal(vm.details('no/such'), undefined);
  assert.equal(row.healthReason, 'err ?[2J?]0;pwned?');
  assert.equal(sanitizeText('a\tb\u009bc'), 'a?b?c');
});

test('pure: same input, same output; the input is not modified', () => {
  const h = host();
  const before = JSON.stringify(h);
  const a = buildViewModel({ ...h, meta: META });
  const b = buildViewModel({ ...h, meta: META });
  const { details: da, ...ra } = a;
  const { details: db, ...rb } = b;
  assert.deepEqual(ra, rb);
  for (const r of a.rows) assert.deepEqual(da(r.key), db(r.key), r.key);
  assert.equal(da('db/xvda'), da('db/xvda'), 'cached');
  assert.equal(JSON.stringify(h), before);
});

test('a clean host: all green, nothing pending', () => {
  const vm = buildViewModel({ ...cleanHost(), meta: { host: 'h', socket: 's', configDir: 'c' } });
  assert.deepEqual(vm.rows.map((r) => r.tone), ['green', 'green']);
  assert.equal(vm.actions.length, 0);
  assert.equal(vm.findings.length, 0);
  assert.equal(vm.header.observedAt, 'never');
  assert.equal(vm.header.domainsRunning, 1);
});

// Its speed is a benchmark's business; here only that a large host is shown whole.
test('1,000 disks across 100 domains: every disk is a row', () => {
  const h = bigHost(100, 10);
  const vm = buildViewModel({ ...h, meta: META });
  assert.equal(vm.rows.length, 1000);
  assert.equal(new Set(vm.rows.map((r) => r.key)).size, 1000);
});


test('row keys stay unique when the plan lists a vdev twice (e.g. a foreign backend on a desired vdev)', () => {
  const h = host();
  const dup = { ...h.plan.disks[4]!, source: '/other.img', sync: 'out-of-sync' as const };
  h.plan.disks.splice(5, 0, dup);
  const vm = buildViewModel({ ...h, meta: META });
  const keys = vm.rows.map((r) => r.key);
  assert.equal(new Set(keys).size, keys.length);
  assert.ok(keys.includes('web/xvda') && keys.includes('web/xvda#2'), keys.join(' '));
  assert.equal(vm.details('web/xvda#2')!.nodes.find(([k]) => k === 'params')![1], h.observed.backends[0]!.params);
  assert.deepEqual(Object.fromEntries(vm.details('web/xvda#2')!.desired), { desired: 'no (not in the config)' });
  assert.equal(Object.fromEntries(vm.details('web/xvda')!.desired)['source'], `${IMG}/web.img`);
});

test('visible rows: f, the / text and the sort, pure and stable (table)', () => {
  const vm = vmOf();
  const keys = (v: Parameters<typeof visibleRows>[1]) => visibleRows(vm, v).map((r) => r.key);
  const all = vm.rows.map((r) => r.key);
  const cases: [string, Parameters<typeof visibleRows>[1], string[]][] = [
    ['nothing: the plan order', {}, all],
    ['blank text: all', { query: '  ' }, all],
    ['text in the key', { query: 'db/' }, ['db/xvda', 'db/xvdb', 'db/xvdc']],
    ['case-insensitive', { query: 'DB-DATA' }, ['db/xvdc']],
    ['text in the source', { query: 'template' }, ['db/xvdb', 'web/xvdb']],
    ['text in the loop', { query: 'loop1' }, ['db/xvdb', 'web/xvdb']],
    ['text in the health reason', { query: 'event-channel' }, ['db/xvda']],
    ['text in the sync', { query: 'out-of-sync' }, ['db/xvdc', 'web/xvdc']],
    ['no match', { query: 'nope' }, []],
    ['with f', { filter: true, query: 'web' }, ['web/xvdc']],
    ['sync: out of sync, pending, then synced; ties in plan order', { sort: { col: 'sync' } }, ['db/xvdc', 'web/xvdc', 'build/xvda', 'db/xvda', 'db/xvdb', 'web/xvda', 'web/xvdb']],
    ['sync reversed; ties still in plan order', { sort: { col: 'sync', desc: true } }, ['db/xvda', 'db/xvdb', 'web/xvda', 'web/xvdb', 'build/xvda', 'db/xvdc', 'web/xvdc']],
    ['health: degraded first', { sort: { col: 'health' } }, ['db/xvda', 'db/xvdb', 'build/xvda', 'db/xvdc', 'web/xvda', 'web/xvdb', 'web/xvdc']],
    ['source', { sort: { col: 'source' } }, ['build/xvda', 'db/xvdc', 'db/xvda', 'web/xvdc', 'db/xvdb', 'web/xvdb', 'web/xvda']],
    ['loop: by number, none last', { sort: { col: 'loop' } }, ['web/xvda', 'db/xvdb', 'web/xvdb', 'db/xvda', 'web/xvdc', 'build/xvda', 'db/xvdc']],
    ['domain reversed', { sort: { col: 'domain', desc: true } }, ['web/xvdc', 'web/xvdb', 'web/xvda', 'db/xvdc', 'db/xvdb', 'db/xvda', 'build/xvda']],
    ['text and sort', { query: 'db/', sort: { col: 'health' } }, ['db/xvda', 'db/xvdb', 'db/xvdc']],
  ];
  for (const [name, v, want] of cases) assert.deepEqual(keys(v), want, name);
  assert.deepEqual(vm.rows.map((r) => r.key), all, 'the view model is not reordered');
});

test('the plan with prune: its actions and summary, linked to rows; absent without one', () => {
  const h = host();
  const plain = { ...h.plan, actions: h.plan.actions.filter((a) => a.kind === 'attach') };
  const vm = buildViewModel({ ...h, plan: plain, prunePlan: h.plan, meta: META });
  assert.deepEqual(vm.actions.map((a) => a.kind), ['attach']);
  assert.deepEqual(
    vm.prune?.actions.map((a) => [a.sign, a.kind, a.rowKey]),
    [
      ['+', 'attach', 'db/xvdc'],
      ['-', 'detach', 'web/xvdc'],
      ['-', 'free-loop', undefined],
    ],
  );
  assert.match(vm.prune?.summary ?? '', /Plan: 1 to attach, 0 to change, 2 to detach/);
  assert.equal(buildViewModel({ ...h, meta: META }).prune, undefined);
});

test('the daemon in the header and its events, newest first (table)', () => {
  const pass = { at: '2026-12-04T19:58:03.000Z', kind: 'pass' as const, seq: 4, ok: true, summary: 'pass 4: 1 step ok', durationMs: 12.4, steps: [{ kind: 'attach', target: '/local/domain/0/backend/vbd/5/51712', label: 'web/xvda', ok: true }] };
  const failed = { ...pass, at: '2026-12-04T19:59:00.000Z', seq: 5, ok: false, summary: 'pass 5: 1 failed', steps: [{ kind: 'free-loop', target: 'loop7', ok: false, error: 'EBUSY' }] };
  const hook = { at: '2026-12-04T19:59:30.000Z', kind: 'hook-serve' as const, backend: 'backend/vbd/5/51728', ok: false, summary: 'domain web1 has no disk with devid 51728' };
  const lines: [string, Parameters<typeof daemonLine>[0], string, string][] = [
    ['absent', { state: 'absent' }, 'daemon not running (xvbd reconcile --watch): nothing reconciles by itself', 'yellow'],
    ['unknown', { state: 'unknown', error: 'EACCES' }, 'daemon unknown: EACCES', 'yellow'],
    ['no pass yet', { state: 'running', pid: 9, events: [] }, 'daemon pid 9, no pass yet', 'cyan'],
    ['last pass ok', { state: 'running', pid: 9, events: [], lastPass: { seq: 4, at: pass.at, ok: true, summary: '' } }, 'daemon pid 9, last pass #4 at 19:58:03 ok', 'green'],
    ['last pass failed', { state: 'running', pid: 9, events: [], lastPass: { seq: 5, at: failed.at, ok: false, summary: '' } }, 'daemon pid 9, last pass #5 at 19:59:00 FAILED', 'red'],
  ];
  for (const [name, d, text, tone] of lines) assert.deepEqual(daemonLine(d), { text, tone }, name);
  const cases: [string, Parameters<typeof eventVM>[0], ReturnType<typeof eventVM>][] = [
    ['a pass with a step', pass, { at: '19:58:03', tone: 'cyan', text: 'pass #4 (12 ms): pass 4: 1 step ok', steps: ['ok attach web/xvda'] }],
    ['a failed pass', failed, { at: '19:59:00', tone: 'red', text: 'pass #5 (12 ms): pass 5: 1 failed', steps: ['FAILED free-loop loop7: EBUSY'] }],
    ['a refused hook request', hook, { at: '19:59:30', tone: 'red', text: 'hook serve backend/vbd/5/51728: refused: domain web1 has no disk with devid 51728', steps: [] }],
  ];
  for (const [name, e, want] of cases) assert.deepEqual(eventVM(e), want, name);
  const vm = buildViewModel({ ...host(), meta: { ...META, daemon: { state: 'running', pid: 9, events: [pass, failed, hook] } } });
  assert.deepEqual(vm.events.map((e) => e.at), ['19:59:30', '19:59:00', '19:58:03']);
  assert.equal(vm.header.daemon, 'daemon pid 9, no pass yet');
  assert.equal(vmOf().header.daemon, undefined, 'not asked: nothing said');
  assert.deepEqual(vmOf().events, []);
});
