// `xvbd status` text: a table of domains x disks (sync and health kept apart), then the findings.
import type { DiskStatus, Plan } from '../model/plan.js';
import { xenbusStateName, type ObservedState } from '../model/observed.js';
import { renderFindings } from './plan.js';
import { HEALTH_STATES } from '../plan/health.js';
import { columns, palette, plural, type Palette, type RenderOptions } from './style.js';

export const STATUS_HEADERS = ['DOMAIN', 'DOMID', 'VDEV', 'SOURCE', 'MODE', 'SYNC', 'HEALTH', 'LOOP', 'DISKSEQ', 'SHARED', 'BACKEND', 'FRONTEND', 'REASON'];

function paintSync(s: DiskStatus['sync'], p: Palette): string {
  return s === 'synced' ? p.green(s) : s === 'out-of-sync' ? p.yellow(s) : p.dim(s);
}

function paintHealth(h: DiskStatus['health'], p: Palette): string {
  return h === 'healthy' ? p.green(h) : h === 'progressing' ? p.cyan(h) : h === 'degraded' ? p.red(h) : p.yellow(h);
}

/** The cells of one row, in STATUS_HEADERS order. */
export function statusCells(d: DiskStatus, p: Palette = palette(false)): string[] {
  return [
    d.domain,
    d.domid === undefined ? '-' : String(d.domid),
    d.vdev,
    d.source ?? '-',
    d.mode ?? '-',
    paintSync(d.sync, p),
    paintHealth(d.health, p),
    d.loop ? d.loop.name : '-',
    d.loop ? d.loop.diskseq : (d.backend?.diskseq ?? '-'),
    d.sharedBy > 0 ? String(d.sharedBy) : '-',
    d.backend ? xenbusStateName(d.backendState) : '-',
    d.backend ? xenbusStateName(d.frontendState) : '-',
    [d.syncReason, d.healthReason].filter((x) => x !== undefined && x !== '').join('; '),
  ];
}

export function statusSummary(plan: Plan, observed?: ObservedState): string {
  const count = <K extends string>(key: (d: DiskStatus) => K, order: K[]): string =>
    order
      .map((k) => [k, plan.disks.filter((d) => key(d) === k).length] as const)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ');
  const parts = [
    plural(plan.disks.length, 'disk'),
    count((d) => d.sync, ['synced', 'out-of-sync', 'pending', 'unknown']),
    count((d) => d.health, [...HEALTH_STATES]),
  ].filter((s) => s.length > 0);
  let line = parts.join('; ');
  if (observed) {
    const ours = observed.loops.filter((l) => l.ours).length;
    line += ` | host: ${plural(observed.domains.length, 'domain')}, ${plural(observed.backends.length, 'vbd backend')}, ${plural(observed.loops.length, 'loop device')} (${ours} xvbd's)`;
  }
  return `${line}; ${plural(plan.findings.length, 'finding')}`;
}

export interface StatusTextOptions extends RenderOptions {
  header?: string;
  observed?: ObservedState;
}

export function renderStatus(plan: Plan, opts: StatusTextOptions = {}): string {
  const p = palette(opts.color);
  const lines: string[] = [];
  if (opts.header) lines.push(opts.header, '');
  if (plan.disks.length === 0) {
    lines.push('No disks desired and no backends of xvbd\'s found.');
  } else {
    lines.push(...columns([STATUS_HEADERS.map((h) => p.bold(h)), ...plan.disks.map((d) => statusCells(d, p))]));
  }
  if (plan.findings.length > 0) {
    lines.push('', `Findings (${plan.findings.length}):`);
    lines.push(...renderFindings(plan.findings, opts));
  }
  lines.push('', statusSummary(plan, opts.observed));
  return lines.join('\n') + '\n';
}
