// Terraform-style text of a Plan: `+` attach/serve, `-` detach/free, `~` replace, `!` findings, each
// with its reason, then one summary line. Used by `xvbd plan`, `xvbd apply` and the TUI.
import { ACTION_SIGN, type Action, type Finding, type Plan } from '../model/plan.js';
import { vdevName } from '../plan/identity.js';
import { columns, palette, plural, type Palette, type RenderOptions } from './style.js';

export interface PlanCounts {
  /** attach + serve */
  add: number;
  /** replace */
  change: number;
  /** detach + free-loop */
  remove: number;
  /** hold: served devices taken back by the holders */
  hold: number;
  /** offline: backends whose device is gone or re-bound */
  offline: number;
  findings: number;
  errors: number;
}

export function planCounts(plan: Plan): PlanCounts {
  const c: PlanCounts = { add: 0, change: 0, remove: 0, hold: 0, offline: 0, findings: plan.findings.length, errors: 0 };
  for (const a of plan.actions) {
    if (a.kind === 'attach' || a.kind === 'serve') c.add++;
    else if (a.kind === 'replace' || a.kind === 'reprobe') c.change++;
    else if (a.kind === 'hold') c.hold++;
    else if (a.kind === 'offline') c.offline++;
    else c.remove++;
  }
  for (const f of plan.findings) if (f.severity === 'error') c.errors++;
  return c;
}

/** "Plan: 3 to attach, 0 to change, 1 to detach; 2 findings" (", 2 to take back, 1 to take offline" when any) */
export function summaryLine(plan: Plan): string {
  const c = planCounts(plan);
  const safety = `${c.hold ? `, ${c.hold} to take back` : ''}${c.offline ? `, ${c.offline} to take offline` : ''}`;
  return `Plan: ${c.add} to attach, ${c.change} to change, ${c.remove} to detach${safety}; ${plural(c.findings, 'finding')}`;
}

function modeOf(a: { disk: { mode: string } }): string {
  return a.disk.mode;
}

/**
 * Read-only disks of one plan that will share a loop device made by the plan itself (as apply does: one
 * device per file and loop options): the first one's note ("new loop device, shared read-only with 2
 * more") and the others' ("shares the new loop device of web1 xvda"). Attach and serve without a reuse only.
 */
export function sharingNotes(plan: Plan): Map<Action, string> {
  const groups = new Map<string, Extract<Action, { kind: 'attach' | 'serve' }>[]>();
  for (const a of plan.actions) {
    if ((a.kind !== 'attach' && a.kind !== 'serve') || a.reuseLoop || a.disk.mode !== 'ro' || a.disk.sourceKind !== 'file') continue;
    const key = `${a.disk.source}|${a.disk.options.directIo}|${a.disk.options.blockSize ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), a]);
  }
  const notes = new Map<Action, string>();
  for (const g of groups.values()) {
    if (g.length < 2) continue;
    const first = g[0]!;
    notes.set(first, `new loop device, shared read-only with ${plural(g.length - 1, 'more disk')}`);
    for (const a of g.slice(1)) notes.set(a, `shares the new loop device of ${first.domain} ${first.disk.vdev}`);
  }
  return notes;
}

/** The cells of one action: sign, verb, target, what, reason (`note`: sharingNotes' word on it). */
export function actionCells(a: Action, p: Palette = palette(false), note?: string): string[] {
  const sign = ACTION_SIGN[a.kind];
  const paint = sign === '+' ? p.green : sign === '-' ? p.red : p.yellow;
  switch (a.kind) {
    case 'attach':
      return [
        paint(sign),
        paint('attach'),
        `${a.domain} ${a.disk.vdev}`,
        `${a.disk.source} (${modeOf(a)})`,
        a.reuseLoop ? `shares /dev/${a.reuseLoop.name} (diskseq ${a.reuseLoop.diskseq})` : a.disk.sourceKind === 'block' ? 'block device, no loop' : (note ?? 'new loop device'),
      ];
    case 'serve':
      return [
        paint(sign),
        paint('serve'),
        `${a.domain} ${a.disk.vdev}`,
        `${a.disk.source} (${modeOf(a)})`,
        `toolstack backend awaits its hotplug script${a.reuseLoop ? `; shares /dev/${a.reuseLoop.name}` : note !== undefined ? `; ${note}` : ''}`,
      ];
    case 'replace':
      return [paint(sign), paint('replace'), `${a.domain} ${a.disk.vdev}`, `${a.disk.source} (${modeOf(a)})`, a.reason];
    case 'detach':
      return [
        paint(sign),
        paint('detach'),
        `${a.domain ?? `domid ${a.backend.frontendDomid}`} ${vdevName(a.backend.devid)}`,
        a.backend.path,
        a.reason,
      ];
    case 'free-loop':
      return [paint(sign), paint('free'), `/dev/${a.loop.name}`, `diskseq ${a.loop.diskseq}, inode ${a.loop.backing.dev}:${a.loop.backing.ino}`, a.reason];
    case 'hold':
      return [paint(sign), paint('hold'), `${a.domain ?? `domid ${a.backend.frontendDomid}`} ${vdevName(a.backend.devid)}`, `/dev/${a.loop.name} (diskseq ${a.loop.diskseq})`, 'served, but no holder keeps it open: the keepers take it back'];
    case 'offline':
      return [paint(sign), paint(a.close ? 'close' : 'offline'), `${a.domain ?? `domid ${a.backend.frontendDomid}`} ${vdevName(a.backend.devid)}`, `${a.backend.path} physical-device ${a.physicalDevice}`, a.reason];
    case 'reprobe':
      return [paint(sign), paint('reprobe'), `${a.domain} ${vdevName(a.backend.devid)}`, `${a.backend.path} physical-device ${a.physicalDevice}`, a.reason];
  }
}

/** One line per action (no colour): "+ attach  web xvda  /srv/a.img (rw)  new loop device". */
export function actionLine(a: Action): string {
  return actionCells(a).join('  ');
}

export function severityLabel(f: Finding, p: Palette): string {
  return f.severity === 'error' ? p.red('error') : f.severity === 'warning' ? p.yellow('warning') : p.cyan('info');
}

/** The findings block: "! warning  loop-leaked  message" and an indented "fix:" line each. */
export function renderFindings(findings: Finding[], opts: RenderOptions = {}): string[] {
  const p = palette(opts.color);
  const out: string[] = [];
  for (const f of findings) {
    const where = f.at ? ` (${f.at.file}:${f.at.line})` : '';
    out.push(`  ${p.bold('!')} ${severityLabel(f, p)} ${f.kind}: ${f.message}${p.dim(where)}`);
    out.push(`      ${p.dim('fix:')} ${f.fix}`);
  }
  return out;
}

export interface PlanTextOptions extends RenderOptions {
  /** A header line (e.g. "xvbd plan: config /etc/xvbd, 12 disks, observed in 8 ms"). */
  header?: string;
}

/** The whole plan as text, ending with the summary line and a newline. */
export function renderPlan(plan: Plan, opts: PlanTextOptions = {}): string {
  const p = palette(opts.color);
  const lines: string[] = [];
  if (opts.header) lines.push(opts.header, '');
  if (plan.actions.length === 0) {
    // an error finding is drift nothing here fixes (a refused prune, a source in use): not "matches"
    const errors = plan.findings.filter((f) => f.severity === 'error').length;
    lines.push(
      errors > 0
        ? p.green('No changes.') + ` Nothing to do here, but ${errors === 1 ? 'an error finding needs' : `${errors} error findings need`} you (see the findings).`
        : p.green('No changes.') + ' The host matches the desired state' + (plan.findings.length ? ' (see the findings).' : '.'),
    );
  } else {
    lines.push('xvbd will perform these actions (+ attach/serve, - detach/free, ~ replace):', '');
    const notes = sharingNotes(plan);
    lines.push(...columns(plan.actions.map((a) => actionCells(a, p, notes.get(a))), '  '));
  }
  if (plan.findings.length > 0) {
    lines.push('', `Findings (${plan.findings.length}):`);
    lines.push(...renderFindings(plan.findings, opts));
  }
  lines.push('', p.bold(summaryLine(plan)));
  return lines.join('\n') + '\n';
}
