// What the stages of plan() produce, and the order of a plan's steps: each stage adds actions and
// findings with a sort key to its own PlanOut; orderPlan merges them into the deterministic Plan.
import type { Action, DiskStatus, Finding, FindingKind, Plan, Severity } from '../model/plan.js';
import { cmp } from './observed-index.js';

/** Findings about loop devices alone sort after every domain's. */
export const LOOP_SORT = '\uffff\uffff';

const ACTION_RANK: Record<Action['kind'], number> = { offline: 0, hold: 1, detach: 2, replace: 3, serve: 4, attach: 5, reprobe: 6, 'free-loop': 7 };

/**
 * Which actions run ahead of every domain's: taking dangling backends offline before anything is
 * allocated (so a freed number handed out in this pass is never named by a live backend), and taking
 * back unheld devices before anything else can go wrong. Loop frees run last.
 */
export function phase(kind: Action['kind']): number {
  if (kind === 'offline' || kind === 'hold') return 0;
  return kind === 'free-loop' ? 2 : 1;
}

export function cmpTuple(a: (string | number)[], b: (string | number)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const c = cmp(a[i] ?? '', b[i] ?? '');
    if (c !== 0) return c;
  }
  return 0;
}

/** A finding's fields, and where it sorts when it names no domain or vdev of its own. */
export type FindingExtra = Partial<Finding> & { sortDomain?: string; sortDevid?: number };

export interface Keyed<T> {
  readonly v: T;
  readonly key: (string | number)[];
}

/** The actions and findings of one stage, each with its sort key. */
export class PlanOut {
  readonly actions: Keyed<Action>[] = [];
  readonly findings: Keyed<Finding>[] = [];

  finding(kind: FindingKind, severity: Severity, message: string, fix: string, extra: FindingExtra = {}): void {
    const { sortDomain, sortDevid, ...rest } = extra;
    const f: Finding = { kind, severity, message, fix, ...rest };
    this.findings.push({ v: f, key: [sortDomain ?? rest.domain ?? '\uffff', sortDevid ?? -1, kind, message] });
  }

  action(a: Action, domainSort: string, fe: number, devid: number, extra = 0): void {
    this.actions.push({ v: a, key: [phase(a.kind), domainSort, fe, devid, ACTION_RANK[a.kind], extra] });
  }

  add(other: PlanOut): this {
    this.actions.push(...other.actions);
    this.findings.push(...other.findings);
    return this;
  }
}

/** The plan from its stages' outputs (in the order the stages ran) and the status rows. */
export function orderPlan(outs: readonly PlanOut[], rows: DiskStatus[]): Plan {
  const all = new PlanOut();
  for (const o of outs) all.add(o);
  const actions = [...all.actions].sort((x, y) => cmpTuple(x.key, y.key)).map((x) => x.v);
  const findings = [...all.findings].sort((x, y) => cmpTuple(x.key, y.key)).map((x) => x.v);
  const disks = [...rows];
  explainSync(disks, actions, findings);
  disks.sort((x, y) => cmp(x.domain, y.domain) || x.devid - y.devid);
  return { actions, findings, disks };
}

const SEVERITY_RANK: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Fills DiskStatus.syncReason of every row not synced: its planned action, else its worst finding. */
export function explainSync(rows: DiskStatus[], actions: Action[], findings: Finding[]): void {
  const byDisk = new Map<string, string>();
  for (const a of actions) {
    if (a.kind === 'attach' || a.kind === 'serve') byDisk.set(`${a.domain}\0${a.disk.devid}`, `${a.kind} planned`);
    else if (a.kind === 'replace') byDisk.set(`${a.domain}\0${a.disk.devid}`, `replace planned: ${a.reason}`);
    else if (a.kind === 'detach') byDisk.set(`be:${a.backend.path}`, `detach planned: ${a.reason}`);
    else if (a.kind === 'reprobe') byDisk.set(`${a.domain}\0${a.backend.devid}`, `reprobe planned: ${a.reason}`);
  }
  const worst = new Map<string, Finding>();
  const keep = (k: string, f: Finding) => {
    const prev = worst.get(k);
    if (!prev || SEVERITY_RANK[f.severity] < SEVERITY_RANK[prev.severity]) worst.set(k, f);
  };
  for (const f of findings) {
    if (f.domain !== undefined && f.vdev !== undefined) keep(`${f.domain}\0${f.vdev}`, f);
    if (f.backend) keep(`be:${f.backend.path}`, f);
  }
  for (const r of rows) {
    if (r.sync === 'synced' || r.sync === 'pending') continue; // pending: healthReason says why
    const planned = byDisk.get(`${r.domain}\0${r.devid}`) ?? (r.backend ? byDisk.get(`be:${r.backend.path}`) : undefined);
    if (planned !== undefined) {
      r.syncReason = planned;
      continue;
    }
    const f = worst.get(`${r.domain}\0${r.vdev}`) ?? (r.backend ? worst.get(`be:${r.backend.path}`) : undefined);
    if (f) r.syncReason = f.kind;
    else if (r.sync === 'unknown') r.syncReason = 'what the backend serves is unknown';
  }
}
