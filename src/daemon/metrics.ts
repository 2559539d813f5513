// What monitoring reads: the daemon's state as a Prometheus text-format file for node_exporter's
// textfile collector (`--collector.textfile.directory`), written after every pass. The file is replaced
// atomically (a temp file in the same directory, then rename), so the collector never reads half of it;
// the temp name does not end in `.prom`, so the collector never reads it either.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Plan, Severity, SyncStatus } from '../model/plan.js';
import type { PassOutcome } from './reconciler.js';
import { HEALTH_STATES } from '../plan/health.js';

export const SYNC_STATES: readonly SyncStatus[] = ['synced', 'out-of-sync', 'pending', 'unknown'];
export { HEALTH_STATES };
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'error'];

export interface MetricsState {
  /** The pass just finished. */
  pass: PassOutcome;
  /** Its plan (the disks and findings as the pass observed them, before it acted). */
  plan?: Plan | undefined;
  /** When the pass ended (wall clock, ms). */
  endedAtMs: number;
  /** When the last converged pass ended (ms), if any has. */
  lastConvergedAtMs?: number | undefined;
  /** Passes run since the daemon started. */
  passes: number;
  /** Loop devices whose fds the daemon holds. */
  loopsHeld: number;
  /** The host this daemon acts for, and its config dir. */
  host: string;
  configDir: string;
  version: string;
}

/**
 * A pass converged when it ran with a valid config, failed nothing, and left nothing to do: either
 * nothing was planned, or every planned step succeeded.
 */
export function converged(p: PassOutcome): boolean {
  return p.ok && p.configOk && !p.skipped && p.error === undefined && p.steps.every((s) => s.ok);
}

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

const labels = (l: Record<string, string>) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

const num = (n: number) => (Number.isInteger(n) ? String(n) : String(Math.round(n * 1000) / 1000));

/** The text of the `.prom` file: every family with HELP and TYPE, families and series in a stable order. */
export function renderMetrics(s: MetricsState): string {
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string, series: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of series) out.push(`${name}${labels(l)} ${num(v)}`);
  };
  const p = s.pass;
  const disks = s.plan?.disks ?? [];
  const findings = s.plan?.findings ?? [];
  const diskLabels = (d: (typeof disks)[number]) => ({ domain: d.domain, vdev: d.vdev });

  family('xvbd_info', 'gauge', 'The xvbd daemon: the host it acts for, its config directory and version; always 1.', [[{ host: s.host, config: s.configDir, version: s.version }, 1]]);
  family(
    'xvbd_disk_sync',
    'gauge',
    'Per desired disk (and backend of xvbd nobody desires): 1 for its sync state (synced, out-of-sync, pending: domain not running, unknown), 0 for the others, as the last pass observed it.',
    disks.flatMap((d) => SYNC_STATES.map((st): [Record<string, string>, number] => [{ ...diskLabels(d), state: st }, d.sync === st ? 1 : 0])),
  );
  family(
    'xvbd_disk_health',
    'gauge',
    'Per desired disk: 1 for its health (healthy: both ends Connected, progressing, degraded, missing), 0 for the others, as the last pass observed it.',
    disks.flatMap((d) => HEALTH_STATES.map((st): [Record<string, string>, number] => [{ ...diskLabels(d), state: st }, d.health === st ? 1 : 0])),
  );
  family('xvbd_disks', 'gauge', 'Disks the last pass reported on.', [[{}, disks.length]]);
  const byKind = new Map<string, number>();
  for (const f of findings) {
    const k = `${f.kind}\0${f.severity}`;
    byKind.set(k, (byKind.get(k) ?? 0) + 1);
  }
  family(
    'xvbd_findings',
    'gauge',
    'Drift findings of the last pass, by kind and severity (only the kinds present).',
    [...byKind].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, n]) => {
      const [kind, severity] = k.split('\0') as [string, string];
      return [{ kind, severity }, n];
    }),
  );
  family(
    'xvbd_findings_by_severity',
    'gauge',
    'Drift findings of the last pass, by severity (every severity, 0 when none).',
    SEVERITIES.map((sev) => [{ severity: sev }, findings.filter((f) => f.severity === sev).length]),
  );
  family('xvbd_loop_devices_held', 'gauge', 'Loop devices whose file descriptors the daemon holds.', [[{}, s.loopsHeld]]);
  family('xvbd_last_pass_timestamp_seconds', 'gauge', 'When the last pass ended (Unix time).', [[{}, s.endedAtMs / 1000]]);
  family('xvbd_last_pass_duration_seconds', 'gauge', 'How long the last pass took.', [[{}, p.durationMs / 1000]]);
  family('xvbd_last_pass_success', 'gauge', '1 when the last pass failed nothing (no step failed, xenstore reachable), else 0.', [[{}, p.ok ? 1 : 0]]);
  family('xvbd_last_pass_converged', 'gauge', '1 when the last pass converged: valid config, nothing failed, nothing left to do.', [[{}, converged(p) ? 1 : 0]]);
  family('xvbd_config_valid', 'gauge', '1 when the config loaded cleanly at the last pass; 0 when the daemon keeps the last good state (or has none).', [[{}, p.configOk ? 1 : 0]]);
  family('xvbd_last_pass_actions', 'gauge', 'Actions the last pass planned.', [[{}, p.actions]]);
  family('xvbd_last_pass_steps', 'gauge', 'Steps the last pass carried out, by result.', [
    [{ result: 'ok' }, p.steps.filter((x) => x.ok).length],
    [{ result: 'failed' }, p.steps.filter((x) => !x.ok).length],
  ]);
  family('xvbd_passes_total', 'counter', 'Passes since the daemon started.', [[{}, s.passes]]);
  if (s.lastConvergedAtMs !== undefined) {
    family('xvbd_last_converged_pass_timestamp_seconds', 'gauge', 'When the last converged pass ended (Unix time); absent until one has. Alert on time() minus this.', [[{}, s.lastConvergedAtMs / 1000]]);
    family('xvbd_seconds_since_last_converged_pass', 'gauge', 'Seconds from the end of the last converged pass to the end of the last pass (when this file was written).', [
      [{}, Math.max(0, s.endedAtMs - s.lastConvergedAtMs) / 1000],
    ]);
  }
  return out.join('\n') + '\n';
}

/** Replaces `path` with `text` atomically: `.<name>.tmp.<pid>` in the same directory, fsync, rename. */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp.${process.pid}`);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Keeps what the file needs across passes and writes it after each one. */
export class MetricsWriter {
  private lastConvergedAtMs: number | undefined;
  private lastError: string | undefined;

  constructor(
    readonly path: string,
    private readonly info: { host: string; configDir: string; version: string },
    private readonly log: (line: string) => void,
  ) {}

  /** After a pass: render and replace the file. A write error is logged (once until it changes), never thrown. */
  afterPass(pass: PassOutcome, extra: { passes: number; loopsHeld: number; nowMs?: number }): void {
    const endedAtMs = extra.nowMs ?? Date.now();
    if (converged(pass)) this.lastConvergedAtMs = endedAtMs;
    const text = renderMetrics({ pass, plan: pass.plan, endedAtMs, lastConvergedAtMs: this.lastConvergedAtMs, passes: extra.passes, loopsHeld: extra.loopsHeld, ...this.info });
    try {
      writeFileAtomic(this.path, text);
      if (this.lastError !== undefined) this.log(`metrics: ${this.path} written again`);
      this.lastError = undefined;
    } catch (err) {
      const msg = `metrics: cannot write ${this.path}: ${(err as Error).message}`;
      if (msg !== this.lastError) this.log(msg);
      this.lastError = msg;
    }
  }
}
