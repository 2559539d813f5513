// The TUI's apply: the same session `xvbd apply` runs (lock, fresh observation, plan, execute with
// the keeper holding the fds), approved only if the fresh plan is exactly the one the user saw and
// confirmed: if anything changed in between, nothing is done and the screen shows the new plan.
import { applyOnce } from '../wire/session.js';
import { stepLine as stepLineOf, type StepEvent } from '../apply/execute.js';
import type { Action } from '../model/plan.js';
import type { ApplyFn } from './xen-source.js';

/** A step event as the TUI shows it. */
export function stepLine(e: StepEvent): string {
  return stepLineOf(e, '…');
}

/** Two plans' actions are the same (order included). */
export function sameActions(a: readonly Action[], b: readonly Action[]): boolean {
  return a.length === b.length && JSON.stringify(a) === JSON.stringify(b);
}

export function makeApply(configDir: string, host?: string): ApplyFn {
  return async (shown, _desired, onLine, opts = {}) => {
    let changed: number | undefined;
    const prune = opts.prune === true;
    const out = await applyOnce({
      configDir,
      // as `xvbd apply --prune`: the same planner and data guard; the TUI never passes --allow-data-loss
      ...(prune ? { prune: true } : {}),
      ...(host !== undefined ? { host } : {}),
      approve: async (fresh) => {
        if (sameActions(fresh.actions, shown.actions)) return true;
        changed = fresh.actions.length;
        return false;
      },
      onEvent: (e) => onLine(stepLine(e)),
    });
    if (changed !== undefined) {
      return { ok: false, summary: `Nothing done: the plan changed since it was shown (${changed === 1 ? '1 action' : `${changed} actions`} now). Review it and press ${prune ? 'p' : 'a'} again.` };
    }
    if (!out.result) return { ok: true, summary: 'Nothing to do: the host already matches the config.' };
    const done = out.result.steps.filter((s) => s.ok).length;
    const failed = out.result.steps.length - done;
    return {
      ok: out.result.ok,
      summary: `${out.result.ok ? 'Apply complete' : 'Apply FAILED'}: ${done} done, ${failed} failed.`,
    };
  };
}
