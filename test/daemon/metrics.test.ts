// The daemon's Prometheus textfile: rendered from a pass (every family, exact values), parsed by a
// strict parser of the text format (test/helpers/promtext.ts), written atomically, and written by the
// real daemon after each pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { converged, escapeLabel, MetricsWriter, renderMetrics, writeFileAtomic } from '../../src/daemon/metrics.js';
import type { PassOutcome } from '../../src/daemon/reconciler.js';
import type { Plan } from '../../src/model/plan.js';
import { parsePromText, sampleValue } from '../helpers/promtext.js';
import { cliMain, Host } from './harness.js';

const plan: Plan = {
  actions: [],
  findings: [
    { kind: 'domain-not-running', severity: 'info', message: 'db is not running', fix: 'start it', domain: 'db' },
    { kind: 'loop-leaked', severity: 'warning', message: 'loop7 is ours and unused', fix: 'apply with prune' },
    { kind: 'loop-leaked', severity: 'warning', message: 'loop8 is ours and unused', fix: 'apply with prune' },
  ],
  disks: [
    { domain: 'web1', domid: 3, vdev: 'xvda', devid: 51712, sync: 'synced', health: 'healthy', sharedBy: 1 },
    { domain: 'db', vdev: 'xvdb', devid: 51728, sync: 'pending', health: 'missing', sharedBy: 0 },
  ],
};

function pass(over: Partial<PassOutcome> = {}): PassOutcome {
  return {
    seq: 7, reasons: ['resync'], triggers: 1, startedAt: '2026-12-04T18:00:00.000Z', durationMs: 42.5, ok: true, configOk: true, configErrors: 0,
    usedLastGood: false, skipped: false, actions: 0, steps: [], findings: 3, findingKinds: {}, disks: 2, synced: 1, released: [], summary: '', plan, errorFindings: [], ...over,
  };
}

test('renderMetrics: every family, strictly parseable, with the values of the pass', () => {
  const text = renderMetrics({ pass: pass(), plan, endedAtMs: 1_800_000_000_500, lastConvergedAtMs: 1_799_999_990_000, passes: 7, loopsHeld: 4, host: 'xen-a1', configDir: '/etc/xvbd', version: '0.1.0' });
  const f = parsePromText(text);
  assert.deepEqual([...f.keys()], [
    'xvbd_info', 'xvbd_disk_sync', 'xvbd_disk_health', 'xvbd_disks', 'xvbd_findings', 'xvbd_findings_by_severity', 'xvbd_loop_devices_held',
    'xvbd_last_pass_timestamp_seconds', 'xvbd_last_pass_duration_seconds', 'xvbd_last_pass_success', 'xvbd_last_pass_converged', 'xvbd_config_valid',
    'xvbd_last_pass_actions', 'xvbd_last_pass_steps', 'xvbd_passes_total', 'xvbd_last_converged_pass_timestamp_seconds', 'xvbd_seconds_since_last_converged_pass',
  ]);
  for (const fam of f.values()) assert.ok(fam.help && fam.help.length > 10, `${fam.name} has HELP`);
  assert.equal(f.get('xvbd_passes_total')?.type, 'counter');
  assert.equal(sampleValue(f, 'xvbd_info', { host: 'xen-a1', config: '/etc/xvbd', version: '0.1.0' }), 1);
  // one-hot per disk
  assert.equal(f.get('xvbd_disk_sync')?.samples.length, 8);
  assert.equal(sampleValue(f, 'xvbd_disk_sync', { domain: 'web1', vdev: 'xvda', state: 'synced' }), 1);
  assert.equal(sampleValue(f, 'xvbd_disk_sync', { domain: 'web1', vdev: 'xvda', state: 'out-of-sync' }), 0);
  assert.equal(sampleValue(f, 'xvbd_disk_sync', { domain: 'db', vdev: 'xvdb', state: 'pending' }), 1);
  assert.equal(sampleValue(f, 'xvbd_disk_health', { domain: 'db', vdev: 'xvdb', state: 'missing' }), 1);
  assert.equal(sampleValue(f, 'xvbd_disk_health', { domain: 'web1', vdev: 'xvda', state: 'healthy' }), 1);
  assert.equal(f.get('xvbd_disk_health')?.samples.reduce((n, s) => n + s.value, 0), 2);
  assert.equal(sampleValue(f, 'xvbd_disks'), 2);
  assert.deepEqual(f.get('xvbd_findings')?.samples.map((s) => [s.labels.kind, s.labels.severity, s.value]), [
    ['domain-not-running', 'info', 1],
    ['loop-leaked', 'warning', 2],
  ]);
  assert.deepEqual(f.get('xvbd_findings_by_severity')?.samples.map((s) => [s.labels.severity, s.value]), [['info', 1], ['warning', 2], ['error', 0]]);
  assert.equal(sampleValue(f, 'xvbd_loop_devices_held'), 4);
  assert.equal(sampleValue(f, 'xvbd_last_pass_timestamp_seconds'), 1_800_000_000.5);
  assert.equal(sampleValue(f, 'xvbd_last_pass_duration_seconds'), 0.043);
  assert.equal(sampleValue(f, 'xvbd_last_pass_success'), 1);
  assert.equal(sampleValue(f, 'xvbd_last_pass_converged'), 1);
  assert.equal(sampleValue(f, 'xvbd_config_valid'), 1);
  assert.equal(sampleValue(f, 'xvbd_last_pass_steps', { result: 'failed' }), 0);
  assert.equal(sampleValue(f, 'xvbd_passes_total'), 7);
  assert.equal(sampleValue(f, 'xvbd_last_converged_pass_timestamp_seconds'), 1_799_999_990);
  assert.equal(sampleValue(f, 'xvbd_seconds_since_last_converged_pass'), 10.5);
});

test('renderMetrics: a failed pass, an invalid config, no converged pass yet, and label escaping', () => {
  const failed = pass({ ok: false, configOk: false, actions: 2, steps: [{ kind: 'attach', target: 'a', ok: true }, { kind: 'attach', target: 'b', ok: false, error: 'EBUSY' }] });
  assert.equal(converged(failed), false);
  assert.equal(converged(pass({ actions: 1, steps: [{ kind: 'attach', target: 'a', ok: true }] })), true);
  assert.equal(converged(pass({ skipped: true })), false);
  const f = parsePromText(renderMetrics({ pass: failed, plan: undefined, endedAtMs: 1000, passes: 1, loopsHeld: 0, host: 'h', configDir: 'a"b\\c\nd', version: '0.1.0' }));
  assert.equal(sampleValue(f, 'xvbd_info', { host: 'h', config: 'a"b\\c\nd', version: '0.1.0' }), 1);
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  assert.equal(sampleValue(f, 'xvbd_last_pass_success'), 0);
  assert.equal(sampleValue(f, 'xvbd_last_pass_converged'), 0);
  assert.equal(sampleValue(f, 'xvbd_config_valid'), 0);
  assert.equal(sampleValue(f, 'xvbd_last_pass_steps', { result: 'ok' }), 1);
  assert.equal(sampleValue(f, 'xvbd_last_pass_steps', { result: 'failed' }), 1);
  assert.equal(f.get('xvbd_disk_sync')?.samples.length, 0, 'no plan, no disks');
  assert.equal(f.has('xvbd_last_converged_pass_timestamp_seconds'), false, 'absent until a pass converges');
});

test('the strict parser refuses what the format does not allow', () => {
  const ok = '# HELP a x\n# TYPE a gauge\na 1\n';
  assert.ok(parsePromText(ok));
  for (const bad of [
    '# TYPE a gauge\na 1', // no final newline
    'a 1\n', // no TYPE
    '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n', // duplicate series
    '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n', // family split
    '# TYPE a gauge\na{x="\\t"} 1\n', // bad escape
    '# TYPE a gauge\na one\n', // bad value
    '# TYPE a counter\na -1\n', // negative counter
    '# TYPE a gauge\n\na 1\n', // empty line
    '# TYPE a gauge\n# TYPE a gauge\na 1\n', // TYPE twice
    '# TYPE 1a gauge\n', // bad name
  ]) {
    assert.throws(() => parsePromText(bad), Error, JSON.stringify(bad));
  }
});

test('writeFileAtomic replaces the file by a rename and leaves no temp file; MetricsWriter logs a failing write once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-metrics-'));
  try {
    const p = join(dir, 'xvbd.prom');
    writeFileAtomic(p, 'one\n');
    const ino1 = statSync(p).ino;
    writeFileAtomic(p, 'two\n');
    assert.equal(readFileSync(p, 'utf8'), 'two\n');
    assert.notEqual(statSync(p).ino, ino1, 'a new inode: renamed over, never written in place');
    assert.deepEqual(readdirSync(dir), ['xvbd.prom']);
    assert.throws(() => writeFileAtomic(join(dir, 'nope', 'x.prom'), 'x'));

    const logs: string[] = [];
    const w = new MetricsWriter(join(dir, 'gone', 'x.prom'), { host: 'h', configDir: '/c', version: '0' }, (l) => logs.push(l));
    w.afterPass(pass(), { passes: 1, loopsHeld: 0, nowMs: 1000 });
    w.afterPass(pass(), { passes: 2, loopsHeld: 0, nowMs: 2000 });
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /^metrics: cannot write .*gone\/x\.prom: ENOENT/);

    // The converged time survives a failing pass.
    const good = new MetricsWriter(p, { host: 'h', configDir: '/c', version: '0' }, (l) => logs.push(l));
    good.afterPass(pass(), { passes: 1, loopsHeld: 0, nowMs: 10_000 });
    good.afterPass(pass({ ok: false }), { passes: 2, loopsHeld: 0, nowMs: 25_000 });
    const f = parsePromText(readFileSync(p, 'utf8'));
    assert.equal(sampleValue(f, 'xvbd_last_converged_pass_timestamp_seconds'), 10);
    assert.equal(sampleValue(f, 'xvbd_seconds_since_last_converged_pass'), 15);
    assert.equal(sampleValue(f, 'xvbd_last_pass_success'), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reconcile --metrics-file: refused unless absolute, ending in .prom, with --watch', () => {
  for (const [args, msg] of [
    [['--watch', '--metrics-file', 'rel.prom'], /must be an absolute path ending in \.prom/],
    [['--watch', '--metrics-file', '/var/lib/x.txt'], /must be an absolute path ending in \.prom/],
    [['--metrics-file', '/var/lib/x.prom'], /is for the daemon \(--watch\)/],
  ] as const) {
    const p = spawnSync(process.execPath, [cliMain, 'reconcile', '--config', '/nonexistent', ...args], { encoding: 'utf8' });
    assert.equal(p.status, 1);
    assert.match(p.stderr, msg);
  }
});

test('the daemon writes the metrics file after each pass', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: true });
    h.domain('web1', [{ vdev: 'xvda', image: 'web1.img' }]);
    const prom = join(h.dir, 'xvbd.prom');
    h.startDaemon(['--metrics-file', prom, '--host', 'Metrics-Host']);
    const read = () => (existsSync(prom) ? parsePromText(readFileSync(prom, 'utf8')) : undefined);
    const first = await h.waitFor('the metrics file with web1 synced', () => {
      const f = read();
      return f && sampleValue(f, 'xvbd_disk_sync', { domain: 'web1', vdev: 'xvda', state: 'synced' }) === 1 && f;
    });
    assert.equal(sampleValue(first, 'xvbd_info', { host: 'metrics-host', config: h.cfgDir, version: '0.1.0' }), 1);
    assert.equal(sampleValue(first, 'xvbd_loop_devices_held'), 1);
    assert.equal(sampleValue(first, 'xvbd_config_valid'), 1);
    assert.ok((sampleValue(first, 'xvbd_last_converged_pass_timestamp_seconds') ?? 0) > 1.7e9);
    const passes = sampleValue(first, 'xvbd_passes_total')!;
    // A new disk: the next passes rewrite the file, with the disk in it.
    h.domain('web1', [{ vdev: 'xvda', image: 'web1.img' }, { vdev: 'xvdb', image: 'web1b.img' }]);
    const later = await h.waitFor('the metrics file updated with xvdb', () => {
      const f = read();
      return f && sampleValue(f, 'xvbd_disk_sync', { domain: 'web1', vdev: 'xvdb', state: 'synced' }) === 1 && f;
    });
    assert.ok(sampleValue(later, 'xvbd_passes_total')! > passes);
    assert.equal(sampleValue(later, 'xvbd_loop_devices_held'), 2);
    // Bad YAML: the next pass says so.
    h.writeRaw('web1.yaml', 'apiVersion: xvbd/v1\nkind: Domain\nname: [\n');
    await h.waitFor('config_valid 0 in the metrics', () => sampleValue(read() ?? new Map(), 'xvbd_config_valid') === 0);
    assert.deepEqual(readdirSync(h.dir).filter((n) => n.includes('xvbd.prom')), ['xvbd.prom'], 'no temp file left beside it');
  } finally {
    await h.cleanup();
  }
});
