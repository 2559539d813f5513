// The pieces buildViewModel is made of, each alone: row keys and indexes, what a finding or an
// action is attached to, one row, the details' pairs, the header's counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  actionVM,
  backendNodes,
  desiredPairs,
  diskRow,
  diskRows,
  findingRowKeys,
  findingVMs,
  headerVM,
  indexRows,
  loopPairs,
  statusPairs,
  type ActionVM,
  type FindingVM,
  type ViewMeta,
} from '../../src/ui/viewmodel.js';
import type { DiskStatus, Finding } from '../../src/model/plan.js';
import { backend, disk, host, IMG, loop } from './fixtures.js';

const META: ViewMeta = { host: 'h1', socket: '/tmp/xs.sock', configDir: '/etc/xvbd', observedAt: Date.UTC(2026, 10, 25, 19, 58, 3) };

function status(domain: string, vdev: string, over: Partial<DiskStatus> = {}): DiskStatus {
  return { domain, vdev, devid: 51712, sync: 'synced', health: 'healthy', sharedBy: 0, ...over };
}

test('indexRows: keys are sanitized "<domain>/<vdev>", a vdev listed twice gets "#2"', () => {
  const a = status('web', 'xvda');
  const b = status('web', 'xvda');
  const c = status('d\u001b[31m', 'xvdb');
  const ix = indexRows([a, b, c]);
  assert.deepEqual([ix.keyOf.get(a), ix.keyOf.get(b), ix.keyOf.get(c)], ['web/xvda', 'web/xvda#2', 'd?[31m/xvdb']);
  assert.deepEqual(ix.keysByDomain.get('web'), ['web/xvda', 'web/xvda#2']);
});

test('findingRowKeys: by disk, by backend (path, else domid/devid), by domain, by loop, by source (table)', () => {
  const { plan } = host();
  const ix = indexRows(plan.disks);
  const web = plan.disks.find((d) => d.domain === 'web' && d.vdev === 'xvdc')!;
  const base: Finding = { kind: 'loop-leaked', severity: 'info', message: 'm', fix: 'f' };
  const cases: [string, Partial<Finding>, string[]][] = [
    ['disk', { domain: 'db', vdev: 'xvdc' }, ['db/xvdc']],
    ['disk not shown', { domain: 'db', vdev: 'xvdz' }, []],
    ['backend path', { backend: web.backend! }, ['web/xvdc']],
    ['backend by domid/devid', { backend: { ...web.backend!, path: '/elsewhere' } }, ['web/xvdc']],
    ['domain', { domain: 'web' }, ['web/xvda', 'web/xvdb', 'web/xvdc']],
    ['shared loop', { loops: [{ name: 'loop1', diskseq: '101', backing: { dev: '1', ino: '1' } }] }, ['db/xvdb', 'web/xvdb']],
    ['source', { source: `${IMG}/db.img` }, ['db/xvda']],
    ['source after a disk: the disk alone', { domain: 'db', vdev: 'xvdc', source: `${IMG}/db.img` }, ['db/xvdc']],
    ['host-wide', {}, []],
  ];
  for (const [what, f, keys] of cases) assert.deepEqual(findingRowKeys(ix, { ...base, ...f }), keys, what);
});

test('findingVMs: errors first, then warnings, then infos; planned order within a severity', () => {
  const { plan } = host();
  const vms = findingVMs(indexRows(plan.disks), plan.findings);
  assert.deepEqual(
    vms.map((f) => [f.severity, f.kind, f.tone]),
    [
      ['error', 'backend-error', 'red'],
      ['warning', 'missing-backend', 'yellow'],
      ['warning', 'unexpected-backend', 'yellow'],
      ['warning', 'loop-leaked', 'yellow'],
      ['info', 'domain-not-running', 'gray'],
    ],
  );
});

test('actionVM: sign, tone and the row it belongs to (table)', () => {
  const { plan } = host();
  const ix = indexRows(plan.disks);
  const got = plan.actions.map((a) => actionVM(ix, a)).map((a) => [a.kind, a.sign, a.tone, a.rowKey]);
  // loop7 is no disk's: the free-loop belongs to no row
  assert.deepEqual(got, [
    ['attach', '+', 'green', 'db/xvdc'],
    ['detach', '-', 'red', 'web/xvdc'],
    ['free-loop', '-', 'red', undefined],
  ]);
  const freeShared = actionVM(ix, { kind: 'free-loop', loop: { name: 'loop1', diskseq: '101', backing: { dev: '1', ino: '1' } }, reason: 'r' });
  assert.equal(freeShared.rowKey, 'db/xvdb');
  assert.equal(freeShared.reason, 'r');
});

test('diskRow: "-" for what is unknown; optional fields only when known', () => {
  const row = diskRow(status('build', 'xvda', { sync: 'pending', health: 'missing' }), 'build/xvda', true, 0, undefined);
  assert.deepEqual(
    [row.source, row.mode, row.loop, row.diskseq, row.backendState, row.frontendState, row.tone],
    ['-', '-', '-', '-', '-', '-', 'gray'],
  );
  assert.ok(!('domid' in row) && !('pending' in row) && !('healthReason' in row) && !('syncReason' in row));
  const withBackend = diskRow(
    status('web', 'xvda', { domid: 1, backend: { path: 'p', backendDomid: 0, frontendDomid: 1, devid: 51712, diskseq: '9' }, backendState: 4, syncReason: 's' }),
    'web/xvda',
    false,
    2,
    '~',
  );
  assert.deepEqual(
    [withBackend.domid, withBackend.diskseq, withBackend.backendState, withBackend.findingCount, withBackend.pending, withBackend.syncReason],
    [1, '9', '4 Connected', 2, '~', 's'],
  );
});

test('diskRows: first of domain, findings counted per row, the first pending action wins', () => {
  const disks = [status('a', 'xvda'), status('a', 'xvdb'), status('b', 'xvda')];
  const ix = indexRows(disks);
  const f = (rowKeys: string[]): FindingVM => ({ kind: 'k', severity: 'info', tone: 'gray', where: '', message: '', fix: '', rowKeys });
  const a = (sign: ActionVM['sign'], rowKey: string): ActionVM => ({ sign, kind: 'attach', tone: 'green', summary: '', rowKey });
  const rows = diskRows(ix, disks, [f(['a/xvda', 'b/xvda']), f(['a/xvda'])], [a('+', 'b/xvda'), a('-', 'b/xvda')]);
  assert.deepEqual(
    rows.map((r) => [r.key, r.firstOfDomain, r.findingCount, r.pending]),
    [
      ['a/xvda', true, 2, undefined],
      ['a/xvdb', false, 0, undefined],
      ['b/xvda', true, 1, '+'],
    ],
  );
});

test('desiredPairs: the disk as written, options only when set; a disk not in the config says so', () => {
  assert.deepEqual(desiredPairs(undefined), [['desired', 'no (not in the config)']]);
  const d = disk('xvdb', 51728, `${IMG}/t.img`, 'ro', 7);
  const plain = desiredPairs(d);
  assert.equal(plain.find(([k]) => k === 'options'), undefined);
  assert.deepEqual(plain.at(-1), ['written at', 'host.yaml:7']);
  const opts = desiredPairs({ ...d, options: { directIo: true, discard: false, blockSize: 4096 } });
  assert.deepEqual(opts.find(([k]) => k === 'options'), ['options', 'direct-io, block-size 4096']);
});

test('backendNodes: none without a backend; the nodes observed, absent ones left out', () => {
  assert.deepEqual(backendNodes(undefined), []);
  const b = backend(1, 51712, { error: 'boom', malformed: ['mode'], hotplugStatus: undefined });
  const nodes = Object.fromEntries(backendNodes(b));
  assert.equal(nodes['physical-device'], '7:0');
  assert.equal(nodes['xvbd-inode'], '2049:11');
  assert.equal(nodes['error'], 'boom');
  assert.equal(nodes['malformed (ignored)'], 'mode');
  assert.ok(!('hotplug-status' in nodes));
});

test('loopPairs: the planned loop; the observed one, and a reused number', () => {
  const d = status('web', 'xvda', { loop: { name: 'loop0', diskseq: '100', backing: { dev: '1', ino: '10' } }, sharedBy: 1 });
  assert.deepEqual(loopPairs(status('web', 'xvda'), undefined), []);
  const same = Object.fromEntries(loopPairs(d, loop(0, '100')));
  assert.equal(same['device'], '/dev/loop0');
  assert.ok(!('now' in same));
  assert.equal(same['flags'], 'read-write, autoclear, ours');
  const reused = Object.fromEntries(loopPairs(d, loop(0, '200')));
  assert.equal(reused['now'], 'loop0 has diskseq 200 (reused)');
});

test('statusPairs: sync and health with their reasons, the xenbus states', () => {
  assert.deepEqual(statusPairs(status('web', 'xvda', { sync: 'out-of-sync', syncReason: 'to attach', backendState: 2 })), [
    ['sync', 'out-of-sync: to attach'],
    ['health', 'healthy'],
    ['backend state', '2 InitWait'],
    ['frontend state', '-'],
  ]);
});

test('headerVM: counts by health, sync and severity; domains desired and running', () => {
  const { plan, observed, desired } = host();
  const h = headerVM(plan, observed, desired, META);
  assert.deepEqual(h.health, { healthy: 3, progressing: 1, degraded: 1, missing: 2 });
  assert.deepEqual(h.sync, { synced: 4, 'out-of-sync': 2, pending: 1, unknown: 0 });
  assert.deepEqual(h.findings, { error: 1, warning: 3, info: 1 });
  assert.deepEqual([h.domainsDesired, h.domainsRunning, h.loops, h.observedAt], [3, 2, 5, '19:58:03']);
  assert.ok(!('daemon' in h) && !('observeMs' in h));
  // without a desired state: the plan's domains
  assert.equal(headerVM(plan, observed, undefined, META).domainsDesired, 3);
  const withDaemon = headerVM(plan, observed, desired, { ...META, daemon: { state: 'absent' } });
  assert.equal(withDaemon.daemonTone, 'yellow');
});
