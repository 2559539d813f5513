// One apply session, shared by `xvbd apply`, the demo, the benchmark and the tests: load the config,
// take the lock, observe, plan, execute with the keeper as the fd holder.
import { loadDesired } from '../config/index.js';
import type { DesiredState, Policy } from '../model/desired.js';
import type { Plan } from '../model/plan.js';
import { plan as makePlan } from '../plan/index.js';
import { desiredDigest, observedDigest } from '../plan/saved.js';
import { AddressError, checkAddresses, replaceKey, targetActions, type DiskAddress } from '../plan/target.js';
import type { XsClient } from '../xenstore/api.js';
import { execute, type ExecuteResult, type StepEvent } from '../apply/execute.js';
import { KeeperHolder, type FdHolder } from '../hold/holder.js';
import { acquireApplyLock, type ApplyLock } from '../apply/lock.js';
import { wire } from './wire.js';

export interface ApplyOptions {
  configDir: string;
  /** In a fleet directory: the host whose desired state to apply (default: this machine's name). */
  host?: string;
  prune?: boolean;
  /** --allow-data-loss (never from the config): see Policy.allowDataLoss. */
  allowDataLoss?: boolean;
  /** -target: only the actions for these domains / disks (src/plan/target.ts targetActions). */
  targets?: DiskAddress[];
  /** -replace: these disks are replaced when they differ from the config, without prune (Policy.replace). */
  replace?: DiskAddress[];
  /**
   * `apply FILE`: the saved plan's actions and digests (src/plan/saved.ts). The config must digest the
   * same, a fresh plan (same flags, under the lock) must have exactly these actions, and what they touch
   * must digest the same; else StalePlanError and nothing is done.
   */
  saved?: { actions: Plan['actions']; desiredDigest: string; observedDigest: string };
  /** Plan only. */
  dryRun?: boolean;
  /** Called with the plan before executing; return false to stop (the CLI asks here). */
  approve?: (plan: Plan, desired: DesiredState, info: { leftOut: number }) => Promise<boolean>;
  /**
   * `approve` may wait on a human for as long as they like: call it WITHOUT the apply lock (checked free
   * first, so a held lock still fails at once), then take the lock, observe and plan again, and refuse
   * (PlanChangedError, nothing done) unless the actions are the ones approved. Without it the lock is
   * held from the first observation to the last step (--auto-approve: nobody waits).
   */
  approveUnlocked?: boolean;
  onEvent?: (e: StepEvent) => void;
  /** Default: the keeper in $XVBD_RUN_DIR. */
  holder?: FdHolder;
  xs?: XsClient;
  /** Wait for the apply lock this long (default 0: fail at once). */
  lockWaitMs?: number;
}

export interface ApplyOutcome {
  desired: DesiredState;
  policy: Policy;
  plan: Plan;
  /** How many actions of the host's plan -target left out. */
  leftOut: number;
  result?: ExecuteResult;
  approved: boolean;
}

const n = (k: number): string => (k === 1 ? '1 action' : `${k} actions`);

/** The host changed between the plan that was approved and the one made under the lock: nothing was done. */
export class PlanChangedError extends Error {
  constructor(
    readonly approved: Plan,
    readonly fresh: Plan,
  ) {
    super(
      `the host changed while you were asked: the plan is now ${n(fresh.actions.length)}, ${fresh.actions.length === approved.actions.length ? 'other ones than' : 'not'} the ${n(approved.actions.length)} approved; nothing was changed (run apply again to see the new plan)`,
    );
    this.name = 'PlanChangedError';
  }
}

/** `apply FILE`: the saved plan no longer holds (the config or the host changed since): nothing was done. */
export class StalePlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StalePlanError';
  }
}

/** Whether two plans would do the same: the same actions in the same order, field for field. */
export function sameActions(a: Plan['actions'], b: Plan['actions']): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export async function applyOnce(opts: ApplyOptions): Promise<ApplyOutcome> {
  const desired = await loadDesired(opts.configDir, opts.host !== undefined ? { host: opts.host } : {});
  if (opts.saved && desiredDigest(desired) !== opts.saved.desiredDigest) {
    throw new StalePlanError('the saved plan is stale: the desired state (the config) changed since it was made; nothing was changed (plan again)');
  }
  const replace = opts.replace?.length ? new Set(opts.replace.map((a) => replaceKey(a.domain, a.devid!))) : undefined;
  const policy: Policy = { ...desired.policy, prune: opts.prune || desired.policy.prune, allowDataLoss: opts.allowDataLoss === true, ...(replace ? { replace } : {}) };
  const unlocked = opts.approveUnlocked === true && opts.approve !== undefined;
  const w = wire();
  let lock: ApplyLock | undefined;
  if (!opts.dryRun) lock = await acquireApplyLock({ dir: w.host.runDir, waitMs: opts.lockWaitMs ?? 0 });
  if (unlocked) {
    // only a check that no applier runs now (fail at once, as before); not held while asking
    lock?.release();
    lock = undefined;
  }
  const xs = opts.xs ?? (await w.xenstore());
  const registry = w.registry({ allowedRoots: policy.allowedRoots });
  const holder = opts.holder ?? w.keeperHolder();
  const observe = w.observe(registry, { holders: true });
  let leftOut = 0;
  const look = async (): Promise<Plan> => {
    const observed = await observe(xs, desired);
    const wrong = checkAddresses(desired, observed, opts.targets ?? [], opts.replace ?? []);
    if (wrong !== undefined) throw new AddressError(wrong);
    const full = makePlan(desired, observed, policy);
    const t = targetActions(full.actions, opts.targets ?? []);
    leftOut = t.left;
    if (opts.saved) {
      if (!sameActions(opts.saved.actions, t.actions)) {
        throw new StalePlanError(`the saved plan is stale: the host changed since it was made (a plan now has ${n(t.actions.length)}, ${t.actions.length === opts.saved.actions.length ? 'other ones than' : 'not'} the ${n(opts.saved.actions.length)} saved); nothing was changed (plan again)`);
      }
      if (observedDigest(opts.saved.actions, observed) !== opts.saved.observedDigest) {
        throw new StalePlanError('the saved plan is stale: a backend, loop device, source or domain its actions touch changed since it was made; nothing was changed (plan again)');
      }
      return { ...full, actions: opts.saved.actions };
    }
    return { ...full, actions: t.actions };
  };
  try {
    let plan = await look();
    if (opts.dryRun || plan.actions.length === 0) return { desired, policy, plan, leftOut, approved: false };
    const approved = opts.approve ? await opts.approve(plan, desired, { leftOut }) : true;
    if (!approved) return { desired, policy, plan, leftOut, approved };
    if (unlocked) {
      lock = await acquireApplyLock({ dir: w.host.runDir, waitMs: opts.lockWaitMs ?? 0 });
      const fresh = await look();
      if (!sameActions(plan.actions, fresh.actions)) throw new PlanChangedError(plan, fresh);
      plan = fresh;
    }
    const result = await execute(plan, {
      xs,
      devices: w.devices(registry),
      policy,
      holder,
      hookScript: w.host.hookScript,
      xenBackendSysfs: w.host.xenBackendSysfs,
      onEvent: opts.onEvent,
    });
    return { desired, policy, plan, leftOut, result, approved };
  } finally {
    if (holder instanceof KeeperHolder) holder.close();
    // the keeper has its own fds for everything committed; ours go (autoclear frees what nobody holds)
    registry.closeAll();
    if (!opts.xs) await xs.close();
    lock?.release();
  }
}
