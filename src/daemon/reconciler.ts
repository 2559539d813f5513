// The reconcile loop (level-triggered, in the spirit of controller-runtime's Reconciler): every pass
// loads the config, takes a fresh observation, plans, executes, and records what happened. Triggers
// only enqueue a pass (src/daemon/queue.ts); the loop never acts on an event's content, so a missed or
// merged event costs nothing. The I/O lives in an Engine (wired in src/daemon/engine.ts); this file
// is the policy: last good desired state, never acting without one, one log line per pass.
import { afterSteps, dueActions, forgetUnplanned, nextDue, type Backoff } from './backoff.js';
import { summarize as summarizeAction } from '../apply/execute.js';
import { detachedOutside, oursAfterPass } from '../plan/outside.js';
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import { ACTION_SIGN, type Action, type Finding, type Plan } from '../model/plan.js';
import { TriggerQueue, type PassInfo, type QueueOptions, type TriggerOptions } from './queue.js';
import type { LogFn } from '../log/stdio.js';

export interface ConfigLoad {
  desired?: DesiredState;
  /** Number of config errors (0 when desired is present). */
  errorCount: number;
  /** The errors formatted for a log (compiler style), when any. */
  errorText?: string;
}

export interface StepRecord {
  kind: Action['kind'];
  /** What the step acted on: the backend path, or the loop device name. */
  target: string;
  /** Domain/vdev, when the action names one (for the log). */
  label?: string;
  ok: boolean;
  error?: string;
  ms?: number;
  /** The action it carried out (not in the control socket's JSON). */
  action?: Action;
  /** Failed for a reason retrying alone cannot fix (src/daemon/backoff.ts). */
  terminal?: boolean;
}

export interface ExecuteResult {
  ok: boolean;
  steps: StepRecord[];
}

/** The I/O side of a pass. */
export interface Engine {
  loadDesired(): Promise<ConfigLoad>;
  observe(desired: DesiredState): Promise<ObservedState>;
  plan(desired: DesiredState, observed: ObservedState): Plan;
  /** Before execute, with the fresh observation: drop what nothing uses any more (e.g. fds of backends gone). */
  sweep?(observed: ObservedState): Promise<{ released: string[]; closed: string[] }>;
  execute(plan: Plan, desired: DesiredState, observed: ObservedState): Promise<ExecuteResult>;
  /** After every pass, ok or not (e.g. sync the fd store). */
  afterPass?(outcome: PassOutcome): Promise<void>;
}

export interface PassOutcome {
  seq: number;
  reasons: string[];
  triggers: number;
  startedAt: string;
  durationMs: number;
  /** No pass-level failure and no failed step (config validity is configOk, apart). */
  ok: boolean;
  /** The config loaded cleanly this time. */
  configOk: boolean;
  configErrors: number;
  /** Bad config: the pass used the last good desired state (or none, and then did nothing). */
  usedLastGood: boolean;
  /** No desired state at all (bad config from the start): nothing observed, nothing done. */
  skipped: boolean;
  actions: number;
  steps: StepRecord[];
  findings: number;
  /** The findings of severity error in the pass's plan (before its steps ran). */
  errorFindings: Finding[];
  /** Counts by finding kind. */
  findingKinds: Record<string, number>;
  /** Disks desired / synced, from the plan's DiskStatus rows. */
  disks: number;
  synced: number;
  /** What the sweep released. */
  released: string[];
  /** The pass-level failure (xenstore unreachable, a bug), when any. */
  error?: string;
  /** What differs from the previous pass's inputs (desired disks, domains, backends, loop devices). */
  changed?: string;
  /** Planned steps not run in this pass: their disk backs off after a failure (src/daemon/backoff.ts). */
  held?: { label: string; failures: number; error: string; terminal: boolean }[];
  /** The one log line. */
  summary: string;
  /** The plan this pass computed (for the control socket and tests). */
  plan?: Plan;
  observed?: ObservedState;
}

export interface ReconcilerOptions extends QueueOptions {
  log?: LogFn;
  /** How many past outcomes to keep. */
  history?: number;
}

export class Reconciler {
  readonly queue: TriggerQueue<PassOutcome>;
  private lastGood: DesiredState | undefined;
  private lastConfigErrorText: string | undefined;
  private readonly log: LogFn;
  private readonly historySize: number;
  readonly history: PassOutcome[] = [];
  private passListeners = new Set<(o: PassOutcome) => void>();
  /** A mutex shared by passes and other state-changing work (control-socket `release`). */
  private exclusiveChain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly engine: Engine,
    opts: ReconcilerOptions = {},
  ) {
    this.log = opts.log ?? ((l) => process.stderr.write(l + '\n'));
    this.historySize = opts.history ?? 20;
    // The whole host backs off only when the pass itself failed (xenstore unreachable, a bug); a failed
    // step backs off its own disk (src/daemon/backoff.ts), and the other disks' steps go on.
    this.queue = new TriggerQueue<PassOutcome>((info) => this.exclusive(() => this.pass(info)), hostFailed, opts);
  }

  get desired(): DesiredState | undefined {
    return this.lastGood;
  }

  get last(): PassOutcome | undefined {
    return this.history[this.history.length - 1];
  }

  /** Enqueues a pass; resolves with the outcome of the pass that covers it. */
  trigger(reason: string, opts: TriggerOptions = {}): Promise<PassOutcome> {
    return this.queue.trigger(reason, opts);
  }

  onPass(fn: (o: PassOutcome) => void): () => void {
    this.passListeners.add(fn);
    return () => this.passListeners.delete(fn);
  }

  /** Runs fn while no pass runs (and no pass starts until it is done). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.exclusiveChain.then(fn, fn);
    this.exclusiveChain = run.catch(() => undefined);
    return run;
  }

  async stop(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.queue.stop();
    await this.exclusiveChain;
  }

  private prevDesired: DesiredState | undefined;
  private prevObserved: ObservedState | undefined;
  /** Vbds someone else detached from a running domain (src/plan/outside.ts): not put back by a pass. */
  private outside = new Set<string>();
  /** The vbds the last pass left with a backend of ours (undefined: unknown, the pass failed midway). */
  private knownOurs: Set<string> | undefined;
  /** Per-disk back-off of failed steps (src/daemon/backoff.ts), and the pass that retries the first due. */
  private backoffs = new Map<string, Backoff>();
  private retryTimer: NodeJS.Timeout | undefined;

  /** When the running pass started (performance.now()), undefined between passes. */
  passStartedAt: number | undefined;

  /** How long the running pass has been running (ms), 0 when none runs. */
  passRunningMs(): number {
    return this.passStartedAt === undefined ? 0 : performance.now() - this.passStartedAt;
  }

  /** One pass: the config, an observation (the sweep's let-go taken out), a plan, its steps; then the log. */
  private async pass(info: PassInfo): Promise<PassOutcome> {
    const t0 = performance.now();
    this.passStartedAt = t0;
    const o = newOutcome(info);
    try {
      const desired = await this.loadDesired(o);
      if (!desired) {
        o.skipped = true;
        o.ok = true; // nothing was attempted: no backoff; configOk tells the rest
        return o;
      }
      const observed = await this.observeAndSweep(desired, o);
      const plan = this.planPass(info, desired, observed, o);
      await this.executePlan(this.holdBack(info, plan, o), desired, observed, o);
    } catch (err) {
      o.ok = false;
      o.error = err instanceof Error ? err.message : String(err);
      this.knownOurs = undefined; // the pass may have changed things it could not report
    } finally {
      this.passStartedAt = undefined;
      o.durationMs = Math.round((performance.now() - t0) * 10) / 10;
      o.summary = summarize(o);
      await this.finishPass(o);
    }
    return o;
  }

  /** The desired state this pass uses: the config's, else the last good one (errors logged when they change). */
  private async loadDesired(o: PassOutcome): Promise<DesiredState | undefined> {
    const cfg = await this.engine.loadDesired();
    if (cfg.desired) {
      o.configOk = true;
      this.lastGood = cfg.desired;
      if (this.lastConfigErrorText !== undefined) this.log('config: valid again', 'notice');
      this.lastConfigErrorText = undefined;
      return cfg.desired;
    }
    o.configErrors = Math.max(1, cfg.errorCount);
    o.usedLastGood = this.lastGood !== undefined;
    // Log the errors when they change, not on every pass.
    if (cfg.errorText !== this.lastConfigErrorText) {
      this.log(
        `config: ${o.configErrors} error(s); ${this.lastGood ? 'keeping the last good desired state' : 'no good desired state yet: doing nothing'}` +
          (cfg.errorText ? `\n${cfg.errorText.trimEnd()}` : ''),
        'warning',
      );
      this.lastConfigErrorText = cfg.errorText;
    }
    return this.lastGood;
  }

  private async observeAndSweep(desired: DesiredState, o: PassOutcome): Promise<ObservedState> {
    let observed = await this.engine.observe(desired);
    if (this.engine.sweep) {
      const sw = await this.engine.sweep(observed);
      o.released = sw.released;
      // Letting go changes nothing in xenstore, and on the loop side only which devices are on their
      // way out: a device whose fd was just closed goes (autoclear, once systemd drops its stored copy
      // too). Plan without those, leaving them to the next pass rather than race the kernel with an
      // explicit free; no second look needed.
      const going = new Set(sw.closed);
      if (going.size > 0) observed = { ...observed, loops: observed.loops.filter((l) => !going.has(l.diskseq)) };
    }
    o.observed = observed;
    o.changed = describeChanges(this.prevDesired, desired, this.prevObserved, observed);
    return observed;
  }

  /** The plan, with the memory of what was detached outside xvbd (src/plan/outside.ts). */
  private planPass(info: PassInfo, desired: DesiredState, observed: ObservedState, o: PassOutcome): Plan {
    // an operator's explicit run (SIGHUP, `xvbd reconcile`) attaches again what was detached outside
    const operator = info.reasons.some((r) => r === 'SIGHUP' || r.startsWith('control ('));
    // after a reconnect the store may be another (a restarted xenstored): what the last pass left is unknown
    const known = info.reasons.includes('xenstore reconnected') ? undefined : this.knownOurs;
    this.outside = operator ? new Set() : detachedOutside(this.outside, known, observed);
    this.knownOurs = undefined;
    this.prevDesired = desired;
    this.prevObserved = observed;
    const plan = this.engine.plan(this.outside.size > 0 ? { ...desired, policy: { ...desired.policy, detachedOutside: this.outside } } : desired, observed);
    o.plan = plan;
    o.actions = plan.actions.length;
    o.findings = plan.findings.length;
    o.errorFindings = plan.findings.filter((f) => f.severity === 'error');
    for (const f of plan.findings) o.findingKinds[f.kind] = (o.findingKinds[f.kind] ?? 0) + 1;
    o.disks = plan.disks.length;
    o.synced = plan.disks.filter((d) => d.sync === 'synced').length;
    return plan;
  }

  /**
   * The plan less the steps whose disk backs off. An operator's run retries everything; a config change
   * what failed terminally (it may be what fixes it). Taking dangling backends offline and taking back
   * unheld devices are never held back: later allocations in the pass rely on them having been tried.
   */
  private holdBack(info: PassInfo, plan: Plan, o: PassOutcome): Plan {
    const operator = info.reasons.some((r) => r === 'SIGHUP' || r.startsWith('control ('));
    let b = forgetUnplanned(this.backoffs, plan.actions);
    if (operator) b = new Map();
    else if (info.reasons.includes('config')) b = new Map([...b].filter(([, x]) => !x.terminal));
    this.backoffs = b;
    const { held } = dueActions(plan.actions, b, Date.now());
    const kept = held.filter((h) => h.action.kind === 'offline' || h.action.kind === 'hold');
    const out = held.filter((h) => !kept.includes(h));
    if (out.length === 0) return plan;
    o.held = out.map((h) => ({ label: summarizeAction(h.action), failures: h.backoff.failures, error: h.backoff.error, terminal: h.backoff.terminal }));
    const skip = new Set(out.map((h) => h.action));
    return { ...plan, actions: plan.actions.filter((a) => !skip.has(a)) };
  }

  /** After the steps: the back-off of each disk, and a pass when the first one is due again. */
  private noteSteps(steps: readonly StepRecord[]): void {
    this.backoffs = afterSteps(this.backoffs, steps, Date.now(), (n) => this.queue.backoffMs(n));
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const at = nextDue(this.backoffs);
    if (at === undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.trigger('retry after a failed step').catch(() => undefined);
    }, Math.max(0, at - Date.now()) + 5);
    this.retryTimer.unref?.();
  }

  private async executePlan(plan: Plan, desired: DesiredState, observed: ObservedState, o: PassOutcome): Promise<void> {
    if (plan.actions.length === 0) {
      o.ok = (o.held ?? []).length === 0;
      this.knownOurs = o.held?.length ? undefined : oursAfterPass(observed, []);
      return;
    }
    const r = await this.engine.execute(plan, desired, observed);
    o.steps = r.steps;
    this.noteSteps(r.steps);
    const acted = r.steps.flatMap((st) => (st.action ? [{ action: st.action, ok: st.ok }] : []));
    this.knownOurs = acted.length === r.steps.length ? oursAfterPass(observed, acted) : undefined;
    o.ok = r.ok && !r.steps.some((s) => !s.ok) && (o.held ?? []).length === 0;
  }

  /** The pass's lines in the log, its place in the history, the after-pass work and the listeners. */
  private async finishPass(o: PassOutcome): Promise<void> {
    // the journal's priority (journalctl -p): a failure is err, a pass that leaves error findings or runs
    // on a broken config is a warning, the rest info
    if (o.steps.length > STEPS_INLINE) {
      for (const st of o.steps) {
        const what = `${ACTION_SIGN[st.kind]}${st.label ?? `${st.kind} ${st.target}`}`;
        this.log(`pass ${o.seq} step ${what} ${st.ok ? 'ok' : `FAILED (${st.error ?? 'error'})`}${st.ms !== undefined ? ` (${st.ms} ms)` : ''}`, st.ok ? 'debug' : 'err');
      }
    }
    this.log(o.summary, o.error || !o.ok ? 'err' : !o.configOk || o.errorFindings.length > 0 ? 'warning' : 'info');
    // Only the latest pass keeps its plan and observation (they are large at 1,000 disks).
    const prev = this.history[this.history.length - 1];
    if (prev) {
      delete prev.plan;
      delete prev.observed;
    }
    this.history.push(o);
    if (this.history.length > this.historySize) this.history.splice(0, this.history.length - this.historySize);
    if (this.engine.afterPass) {
      try {
        await this.engine.afterPass(o);
      } catch (err) {
        this.log(`pass ${o.seq}: after-pass work failed: ${err instanceof Error ? err.message : String(err)}`, 'err');
      }
    }
    for (const l of this.passListeners) l(o);
  }
}

/** Whether the pass itself failed, which backs off the whole host (a failed step backs off its disk). */
function hostFailed(o: PassOutcome): boolean {
  return o.error !== undefined || (!o.ok && !o.steps.some((s) => !s.ok) && (o.held ?? []).length === 0);
}

/** A pass's outcome before anything happened. */
function newOutcome(info: PassInfo): PassOutcome {
  return {
    seq: info.seq,
    reasons: info.reasons,
    triggers: info.triggers,
    startedAt: new Date().toISOString(),
    durationMs: 0,
    ok: false,
    configOk: false,
    configErrors: 0,
    usedLastGood: false,
    skipped: false,
    actions: 0,
    steps: [],
    findings: 0,
    errorFindings: [],
    findingKinds: {},
    disks: 0,
    synced: 0,
    released: [],
    summary: '',
  };
}

/** Up to this many steps are named in a pass's line; beyond, counts (and one debug line per step). */
export const STEPS_INLINE = 10;

/** One line per pass: why, what was done, what is wrong, how long. */
export function summarize(o: PassOutcome): string {
  const parts: string[] = [];
  parts.push(`pass ${o.seq} (${o.reasons.join(', ')}${o.triggers > o.reasons.length ? `; ${o.triggers} triggers` : ''})`);
  if (o.changed) parts.push(`changed: ${o.changed}`);
  if (o.error) parts.push(`FAILED: ${o.error}`);
  if (!o.configOk) parts.push(o.skipped ? 'config invalid, nothing done' : 'config invalid, using the last good desired state');
  if (!o.skipped && !o.error) {
    if (o.steps.length === 0 && o.actions === 0) parts.push('nothing to do');
    else {
      const failed = o.steps.filter((s) => !s.ok);
      const done = o.steps.filter((s) => s.ok);
      const line = (s: StepRecord) => `${ACTION_SIGN[s.kind]}${s.label ?? `${s.kind} ${s.target}`} ${s.ok ? 'ok' : `FAILED (${s.error ?? 'error'})`}`;
      let list: string;
      if (o.steps.length <= STEPS_INLINE) list = o.steps.map(line).join('; ');
      else {
        // a big pass: counts by kind, the failed steps named (a few), every step on a debug line of its own
        const kinds = new Map<string, number>();
        for (const st of o.steps) kinds.set(`${ACTION_SIGN[st.kind]}${st.kind}`, (kinds.get(`${ACTION_SIGN[st.kind]}${st.kind}`) ?? 0) + 1);
        const counts = [...kinds].map(([k, n]) => `${k} x${n}`).join(', ');
        list = `${counts}${failed.length ? `; ${listSome(failed.map(line), STEPS_INLINE)}` : ''} (each step at debug)`;
      }
      parts.push(`${done.length}/${o.actions} done${failed.length ? `, ${failed.length} failed` : ''}: ${list}`);
    }
    if (o.held?.length) {
      const line = (h: NonNullable<PassOutcome['held']>[number]) => `${h.label} (${h.terminal ? 'not retried until the config changes or an operator asks' : `failed ${h.failures}x`}: ${h.error})`;
      parts.push(`${o.held.length} held back: ${listSome(o.held.map(line), STEPS_INLINE)}`);
    }
    if (o.released.length > 0) parts.push(`released ${o.released.length} fd(s) nothing uses any more`);
    // As planned at the start of the pass: after steps, the next pass says what they achieved.
    parts.push(`${o.synced}/${o.disks} disks synced${o.steps.length > 0 ? ' before' : ''}`);
    const kinds = Object.entries(o.findingKinds)
      .map(([k, n]) => (n > 1 ? `${k} x${n}` : k))
      .join(', ');
    parts.push(o.findings > 0 ? `${o.findings} finding(s): ${kinds}` : 'no findings');
  }
  parts.push(`${o.durationMs} ms`);
  return parts.join('; ');
}

function diskCount(d: DesiredState): number {
  return d.domains.reduce((n, x) => n + x.disks.length, 0);
}

function listSome(items: string[], max = 3): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} +${items.length - max} more`;
}

/**
 * What changed since the previous pass, in a few words: desired disks, domains (by name), backends
 * (added, removed, state changes) and loop devices. Undefined on the first pass or when nothing did.
 */
export function describeChanges(pd: DesiredState | undefined, d: DesiredState, po: ObservedState | undefined, o: ObservedState): string | undefined {
  if (!po || !pd) return undefined;
  const out: string[] = [];
  const fp = (x: DesiredState) => JSON.stringify(x, (k, v) => (k === 'at' ? undefined : v));
  if (pd !== d && fp(pd) !== fp(d)) {
    const a = diskCount(pd);
    const b = diskCount(d);
    out.push(a === b ? `config (${b} disks)` : `config ${a} -> ${b} disks`);
  }
  const name = (x: { domid: number; name?: string }) => `${x.name ?? '?'}(${x.domid})`;
  const pdoms = new Map(po.domains.map((x) => [x.domid, x]));
  const doms = new Map(o.domains.map((x) => [x.domid, x]));
  const addedD = o.domains.filter((x) => !pdoms.has(x.domid)).map(name);
  const goneD = po.domains.filter((x) => !doms.has(x.domid)).map(name);
  if (addedD.length) out.push(`+domain ${listSome(addedD)}`);
  if (goneD.length) out.push(`-domain ${listSome(goneD)}`);
  const pbe = new Map(po.backends.map((b) => [b.path, b]));
  const be = new Map(o.backends.map((b) => [b.path, b]));
  const short = (p: string) => p.replace(/^\/local\/domain\/(\d+)\/backend\/vbd\//, (_m, b: string) => (b === '0' ? '' : `be${b}:`));
  const addedB = o.backends.filter((b) => !pbe.has(b.path)).map((b) => short(b.path));
  const goneB = po.backends.filter((b) => !be.has(b.path)).map((b) => short(b.path));
  if (addedB.length) out.push(`+backend ${listSome(addedB)}`);
  if (goneB.length) out.push(`-backend ${listSome(goneB)}`);
  let states = 0;
  for (const b of o.backends) {
    const p = pbe.get(b.path);
    if (p && (p.state !== b.state || p.frontendState !== b.frontendState || p.physicalDevice !== b.physicalDevice)) states++;
  }
  if (states) out.push(`${states} backend(s) changed state`);
  const ploops = new Set(po.loops.map((l) => l.diskseq));
  const loops = new Set(o.loops.map((l) => l.diskseq));
  const addedL = [...loops].filter((x) => !ploops.has(x)).length;
  const goneL = [...ploops].filter((x) => !loops.has(x)).length;
  if (addedL || goneL) out.push(`loop devices +${addedL}/-${goneL}`);
  return out.length ? out.join(', ') : undefined;
}
