// Per-disk back-off, as controller-runtime's per-key rate limiter: a step that fails holds back only the
// disk (or loop device) it was for, with capped exponential back-off, while every other disk's steps run
// in the same pass. A step that failed for a reason retrying alone cannot fix (StepError.terminal: a
// backend that is not ours, a refusal to lose data) is not retried by time at all; a config change or an
// operator's run (SIGHUP, `xvbd reconcile`) lets it run again, as does a later success. Pure: the
// reconciler keeps the map between passes.
import type { Action } from '../model/plan.js';

export interface Backoff {
  /** Consecutive failures of this key's steps. */
  failures: number;
  /** Not run again before this time (ms since epoch); Infinity for a terminal error. */
  until: number;
  error: string;
  terminal: boolean;
}

/** What a step was for: a vbd (frontend domid/devid) or a loop device (name and diskseq). */
export function actionKey(a: Action): string {
  switch (a.kind) {
    case 'attach':
      return `vbd ${a.domid}/${a.disk.devid}`;
    case 'free-loop':
      return `loop ${a.loop.name} ${a.loop.diskseq}`;
    default:
      return `vbd ${a.backend.frontendDomid}/${a.backend.devid}`;
  }
}

export interface StepOutcome {
  action?: Action;
  ok: boolean;
  error?: string;
  terminal?: boolean;
}

/** The back-off after a pass's steps: a success clears its key, a failure backs it off once more. */
export function afterSteps(prev: ReadonlyMap<string, Backoff>, steps: readonly StepOutcome[], now: number, delay: (failures: number) => number): Map<string, Backoff> {
  const next = new Map(prev);
  for (const s of steps) {
    if (!s.action) continue;
    const k = actionKey(s.action);
    if (s.ok) {
      next.delete(k);
      continue;
    }
    const failures = (prev.get(k)?.failures ?? 0) + 1;
    const terminal = s.terminal === true;
    next.set(k, { failures, until: terminal ? Infinity : now + delay(failures), error: s.error ?? 'failed', terminal });
  }
  return next;
}

/** The plan's actions that may run now, and those held back (their key still backing off). */
export function dueActions(actions: readonly Action[], backoffs: ReadonlyMap<string, Backoff>, now: number): { due: Action[]; held: { action: Action; backoff: Backoff }[] } {
  const due: Action[] = [];
  const held: { action: Action; backoff: Backoff }[] = [];
  for (const a of actions) {
    const b = backoffs.get(actionKey(a));
    if (b && b.until > now) held.push({ action: a, backoff: b });
    else due.push(a);
  }
  return { due, held };
}

/** Keys the plan no longer asks for are forgotten (the disk was fixed, removed, or its domain went). */
export function forgetUnplanned(backoffs: ReadonlyMap<string, Backoff>, actions: readonly Action[]): Map<string, Backoff> {
  const planned = new Set(actions.map(actionKey));
  return new Map([...backoffs].filter(([k]) => planned.has(k)));
}

/** When the next held-back step is due (ms since epoch), if any is due by time at all. */
export function nextDue(backoffs: ReadonlyMap<string, Backoff>): number | undefined {
  let min: number | undefined;
  for (const b of backoffs.values()) if (Number.isFinite(b.until) && (min === undefined || b.until < min)) min = b.until;
  return min;
}
