// One apply session, shared by `xvbd apply`, the demo, the benchmark and the tests: load the config,
// take the lock, observe, plan, execute with the keeper as the fd holder.
import { existsSync } from 'node:fs';
import { loadDesired } from '../config/index.js';
import { LoopRegistry } from '../linux/index.js';
import type { DesiredState, Policy } from '../model/desired.js';
import type { Plan } from '../model/plan.js';
import { observeWith } from '../daemon/wiring.js';
import { durableHoldings } from '../daemon/holdings.js';
import { plan as makePlan } from '../plan/index.js';
import type { XsClient } from '../xenstore/api.js';
import { connect } from '../xenstore/client.js';
import { execute, type ExecuteResult, type FdHolder, type StepEvent } from './execute.js';
import { KeeperHolder } from './holder.js';
import { RegistryDevices } from './linux-devices.js';
import { acquireApplyLock, runDir, type ApplyLock } from './lock.js';

export const DEFAULT_HOOK_SCRIPT = '/usr/local/bin/xvbd-hook';
/** Where `xvbd hook install` puts the C hook (a bare script=xvbd is looked up there). */
export const XEN_SCRIPTS_HOOK = '/etc/xen/scripts/xvbd';

/** The backend's `script`: $XVBD_HOOK_SCRIPT, else the installed hook if present, else none. */
export function hookScriptPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.XVBD_HOOK_SCRIPT !== undefined) return env.XVBD_HOOK_SCRIPT || undefined;
  return [XEN_SCRIPTS_HOOK, DEFAULT_HOOK_SCRIPT].find((p) => existsSync(p));
}

export interface ApplyOptions {
  configDir: string;
  /** In a fleet directory: the host whose desired state to apply (default: this machine's name). */
  host?: string;
  prune?: boolean;
  /** --allow-data-loss (never from the config): see Policy.allowDataLoss. */
  allowDataLoss?: boolean;
  /** Plan only. */
  dryRun?: boolean;
  /** Called with the plan before executing; return false to stop (the CLI asks here). */
  approve?: (plan: Plan, desired: DesiredState) => Promise<boolean>;
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
  result?: ExecuteResult;
  approved: boolean;
}

/** The host changed between the plan that was approved and the one made under the lock: nothing was done. */
export class PlanChangedError extends Error {
  constructor(
    readonly approved: Plan,
    readonly fresh: Plan,
  ) {
    super(
      `the host changed while you were asked: the plan is now ${fresh.actions.length === 1 ? '1 action' : `${fresh.actions.length} actions`}, not the ${approved.actions.length === 1 ? '1 action' : `${approved.actions.length} actions`} approved; nothing was changed (run apply again to see the new plan)`,
    );
    this.name = 'PlanChangedError';
  }
}

/** Whether two plans would do the same: the same actions in the same order, field for field. */
export function sameActions(a: Plan['actions'], b: Plan['actions']): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export async function applyOnce(opts: ApplyOptions): Promise<ApplyOutcome> {
  const desired = await loadDesired(opts.configDir, opts.host !== undefined ? { host: opts.host } : {});
  const policy: Policy = { ...desired.policy, prune: opts.prune || desired.policy.prune, allowDataLoss: opts.allowDataLoss === true };
  const unlocked = opts.approveUnlocked === true && opts.approve !== undefined;
  let lock: ApplyLock | undefined;
  if (!opts.dryRun) lock = await acquireApplyLock({ waitMs: opts.lockWaitMs ?? 0 });
  if (unlocked) {
    // only a check that no applier runs now (fail at once, as before); not held while asking
    lock?.release();
    lock = undefined;
  }
  const xs = opts.xs ?? (await connect());
  const registry = new LoopRegistry({ allowedRoots: policy.allowedRoots });
  const holder = opts.holder ?? new KeeperHolder(runDir());
  const look = async (): Promise<Plan> => {
    const observed = await observeWith(registry, () => durableHoldings(runDir(), { askDaemon: true }))(xs, desired);
    return makePlan(desired, observed, policy);
  };
  try {
    let plan = await look();
    if (opts.dryRun || plan.actions.length === 0) return { desired, policy, plan, approved: false };
    const approved = opts.approve ? await opts.approve(plan, desired) : true;
    if (!approved) return { desired, policy, plan, approved };
    if (unlocked) {
      lock = await acquireApplyLock({ waitMs: opts.lockWaitMs ?? 0 });
      const fresh = await look();
      if (!sameActions(plan.actions, fresh.actions)) throw new PlanChangedError(plan, fresh);
      plan = fresh;
    }
    const result = await execute(plan, {
      xs,
      devices: new RegistryDevices(registry),
      policy,
      holder,
      hookScript: hookScriptPath(),
      onEvent: opts.onEvent,
    });
    return { desired, policy, plan, result, approved };
  } finally {
    if (holder instanceof KeeperHolder) holder.close();
    // the keeper has its own fds for everything committed; ours go (autoclear frees what nobody holds)
    registry.closeAll();
    if (!opts.xs) await xs.close();
    lock?.release();
  }
}
