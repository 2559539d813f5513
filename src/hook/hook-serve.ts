// The server side of the libxl hook, shared by the daemon (control socket `serve`/`release`), the
// on-demand hook server (`xvbd hook server`, started by native/xvbd-hook when no daemon listens) and the
// Node reference hook (`xvbd hook add|remove`). Level-triggered like a reconcile pass, but about the
// backends asked for only: a fresh observation covering them, plan(), and the plan's serve (or hold)
// steps for those backends through the executor. Requests arriving while one batch runs make the next
// batch: a domain started with 8 disks costs two or three observations, not eight.
import type { DesiredState } from '../model/desired.js';
import type { BackendObs, LoopObs, ObservedState } from '../model/observed.js';
import type { Action, Plan } from '../model/plan.js';
import type { XsClient } from '../xenstore/api.js';
import { isXsError } from '../xenstore/errors.js';
import { observeSources, readBackend } from '../observe/observe.js';
import { defaultXenBackendSysfs } from '../host/env.js';
import { cleanText, parseDomainName } from '../observe/parse.js';
import { desiredScope, inScope, observeDesired } from '../observe/scope.js';
import { plan as makePlan } from '../plan/plan.js';
import { backendPath, parseBackendArg, parseDomid, PHYSICAL_DEVICE_NODE } from '../xen/vbd.js';
import { HookError, desiredDiskFor, hookDecision, reportHookError, type HookTarget } from './hook.js';

/** What a serve request gets back: served (physical-device written, device held), or why not. */
export type ServeAnswer = { ok: true; physicalDevice: string; detail: string } | { ok: false; error: string };

/** One executed step, as the daemon's engine and the one-shot executor both report it. */
export interface StepOutcome {
  target: string;
  ok: boolean;
  error?: string;
}

export interface HookServeDeps {
  client(): Promise<XsClient>;
  /** The desired state now (a cache that re-reads changed files), or the reason there is none. */
  desired(): Promise<{ desired: DesiredState } | { error: string }>;
  /** Every bound loop device, as the holder sees them; mounts read once per observation. */
  loops(): { loops: LoopObs[]; mountedDevs: Set<string> };
  /** Runs these steps (serve/hold only) through the executor with the caller's holder and lock. */
  execute(plan: Plan, desired: DesiredState): Promise<StepOutcome[]>;
  /** Serialises a batch with other state-changing work (the daemon's passes). */
  exclusive?<T>(fn: () => Promise<T>): Promise<T>;
  xenBackendSysfs?: string;
  log(line: string): void;
}

/** A request path as XENBUS_PATH (relative to dom0) or absolute: the backend it names, strictly. */
export function targetOf(raw: unknown): HookTarget {
  if (typeof raw !== 'string' || raw.length > 256) throw new HookError('"backend" must be a backend path');
  const id = parseBackendArg(raw);
  if (!id) throw new HookError(`"${raw.slice(0, 80)}" is not a vbd backend path (backend/vbd/<domid>/<devid>)`);
  return { ...id, path: backendPath(id) };
}

/** A burst's gather window (ms): quiet time that ends it, and its longest. */
const GATHER_QUIET_MS = 4;
const GATHER_MAX_MS = 12;

interface Waiting {
  t: HookTarget;
  resolve(a: ServeAnswer): void;
}

export class HookServer {
  private queue: Waiting[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly d: HookServeDeps) {}

  /** Serves one backend (or says why not, having written hotplug-error); never rejects. */
  serve(t: HookTarget): Promise<ServeAnswer> {
    return new Promise((resolve) => {
      this.queue.push({ t, resolve });
      this.kick();
    });
  }

  /**
   * libxl starts a domain's scripts at once: they arrive within a few ms. Gather them into one batch:
   * it starts once no request came for GATHER_QUIET_MS, at most GATHER_MAX_MS after the first. Requests
   * arriving while a batch runs make the next one.
   */
  private kick(): void {
    if (this.running || this.queue.length === 0) return;
    clearTimeout(this.gather);
    this.firstAt ??= performance.now();
    const wait = Math.max(0, Math.min(GATHER_QUIET_MS, this.firstAt + GATHER_MAX_MS - performance.now()));
    this.gather = setTimeout(() => {
      this.firstAt = undefined;
      this.running = this.drain().finally(() => {
        this.running = undefined;
        this.kick(); // a request that came as the last batch ended
      });
    }, wait);
  }

  private gather: NodeJS.Timeout | undefined;
  private firstAt: number | undefined;

  /** Resolves once no batch runs or waits to run. */
  async idle(): Promise<void> {
    while (this.running || this.firstAt !== undefined) await (this.running ?? new Promise((r) => setTimeout(r, GATHER_MAX_MS)));
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0);
      const run = () => this.batch(batch);
      let answers: Map<string, ServeAnswer>;
      try {
        answers = await (this.d.exclusive ? this.d.exclusive(run) : run());
      } catch (err) {
        const error = `serving failed: ${(err as Error).message}`;
        answers = new Map(batch.map((w) => [w.t.path, { ok: false, error }]));
        await this.report(batch.map((w) => [w.t, error]));
      }
      for (const w of batch) w.resolve(answers.get(w.t.path) ?? { ok: false, error: 'no answer (bug)' });
    }
  }

  private async batch(batch: Waiting[]): Promise<Map<string, ServeAnswer>> {
    const targets = [...new Map(batch.map((w) => [w.t.path, w.t])).values()];
    const out = new Map<string, ServeAnswer>();
    const refusals: [HookTarget, string][] = [];
    const refuse = (t: HookTarget, error: string) => {
      out.set(t.path, { ok: false, error });
      refusals.push([t, error]);
    };
    const t0 = performance.now();
    const cfg = await this.d.desired();
    if (!('desired' in cfg)) {
      for (const t of targets) refuse(t, cfg.error);
      await this.report(refusals);
      return out;
    }
    const desired = cfg.desired;
    const xs = await this.d.client();
    const observed = await observeForHook(xs, desired, targets, this.d);
    const t1 = performance.now();
    const p = makePlan(desired, observed, desired.policy);
    const steps: Action[] = [];
    const stepOf = new Map<string, HookTarget>();
    for (const t of targets) {
      const dec = hookDecision(desired, observed, p, t);
      if (dec.kind === 'refuse') refuse(t, dec.reason);
      else if (dec.kind === 'served') out.set(t.path, { ok: true, physicalDevice: dec.physicalDevice, detail: `already served (physical-device ${dec.physicalDevice})` });
      else {
        steps.push(dec.action);
        stepOf.set(t.path, t);
      }
    }
    const t2 = performance.now();
    if (steps.length > 0) {
      const failed = await this.runSteps(xs, steps, [...stepOf.values()], desired, out);
      if (failed.length > 0) {
        // Someone else may have served it meanwhile (a daemon starting while this hook server runs: both
        // plan before taking the apply lock). Level-triggered: look again before telling libxl it failed.
        const again = await observeForHook(xs, desired, failed.map((f) => f.t), this.d);
        const p2 = makePlan(desired, again, desired.policy);
        for (const f of failed) {
          const dec = hookDecision(desired, again, p2, f.t);
          if (dec.kind === 'served') out.set(f.t.path, { ok: true, physicalDevice: dec.physicalDevice, detail: `served meanwhile by another (physical-device ${dec.physicalDevice})` });
          else refuse(f.t, f.error);
        }
      }
    }
    await this.report(refusals);
    const t3 = performance.now();
    for (const [path, a] of out) this.d.log(`${path}: ${a.ok ? a.detail : `refused: ${a.error}`}`);
    const ms = (x: number) => x.toFixed(1);
    this.d.log(
      `batch of ${batch.length}: ${steps.length} ${steps.length === 1 ? 'step' : 'steps'}, ${refusals.length} refused; config + observe ${ms(t1 - t0)} ms` +
        `${observed.backends.length > targets.length ? ' (whole host)' : ''}, plan ${ms(t2 - t1)} ms, steps ${ms(t3 - t2)} ms`,
    );
    return out;
  }

  /** Runs the steps; records each served backend in `out`; returns those whose step failed, with why. */
  private async runSteps(xs: XsClient, steps: Action[], targets: HookTarget[], desired: DesiredState, out: Map<string, ServeAnswer>): Promise<{ t: HookTarget; error: string }[]> {
    const results = await this.d.execute({ actions: steps, findings: [], disks: [] }, desired);
    const pds = await Promise.all(targets.map((t) => xs.read(`${t.path}/${PHYSICAL_DEVICE_NODE}`)));
    const failed: { t: HookTarget; error: string }[] = [];
    targets.forEach((t, i) => {
      const r = results.find((s) => s.target === t.path);
      const pd = pds[i];
      if (r?.ok && pd !== undefined) out.set(t.path, { ok: true, physicalDevice: pd, detail: `served (physical-device ${pd})` });
      else failed.push({ t, error: `serving ${t.path} failed: ${r?.error ?? (r ? 'no physical-device after the step' : 'the step did not run')}` });
    });
    return failed;
  }

  /** hotplug-error + hotplug-status=error for each refusal, as the block script's `fatal` does. */
  private async report(refusals: [HookTarget, string][]): Promise<void> {
    if (refusals.length === 0) return;
    let xs: XsClient;
    try {
      xs = await this.d.client();
    } catch {
      return; // xenstore unreachable: the script's failure is all libxl gets
    }
    await Promise.all(refusals.map(([t, e]) => reportHookError(xs, t, e).catch((err: Error) => this.d.log(`${t.path}: cannot write hotplug-error: ${err.message}`))));
  }
}

/**
 * The observation a hook decision needs: every domain (names, so an ambiguous name is seen), the
 * asked-for backends (and any other backend at the same frontend and devid, under every backend domain
 * the desired state names), the loop devices and sources in the desired state's scope. Everything the
 * planner's serve decision reads about one backend, without walking the host's other backends: those
 * matter only when another backend may use the same data (the read-write rule, which loop a read-only
 * disk shares), i.e. when a loop device of the disk's file is bound already, or the disk is a block
 * device. Then the full observation (observeDesired, as `xvbd plan`) is taken instead.
 */
export async function observeForHook(
  xs: XsClient,
  desired: DesiredState,
  targets: HookTarget[],
  d: Pick<HookServeDeps, 'loops' | 'xenBackendSysfs'>,
): Promise<ObservedState> {
  const { sources, backendDomids } = desiredScope(desired);
  const roots = desired.policy.allowedRoots;
  // loop devices first, as observe() lists them: one whose backend existed then is seen with it
  const listed = d.loops();
  const sysfs = d.xenBackendSysfs ?? defaultXenBackendSysfs();
  const bes = [...new Set([...backendDomids, ...targets.map((t) => t.backendDomid)])];
  const [domains, read] = await Promise.all([
    readDomains(xs),
    Promise.all(targets.flatMap((t) => bes.map((be) => readOneBackend(xs, be, t.frontendDomid, t.devid, sysfs)))),
  ]);
  const backends = read.filter((b): b is BackendObs => b !== undefined);
  // the observation scope's rule (src/observe/scope.ts): under the allowed roots, or named by a backend
  const loops = roots.length === 0 ? listed.loops : inScope(listed.loops, backends, roots);
  const observed: ObservedState = {
    takenAt: performance.now(),
    domains,
    backends,
    loops,
    sources: observeSources(sources, loops, listed.mountedDevs),
  };
  if (!needsWholeHost(desired, observed, targets)) return observed;
  return observeDesired({ xs, loops: () => listed.loops, mountedDevs: () => listed.mountedDevs, xenBackendSysfs: sysfs }, desired);
}

/** Whether another backend could change the decision: a loop device of the disk's file exists, or it is a block device. */
export function needsWholeHost(desired: DesiredState, observed: ObservedState, targets: HookTarget[]): boolean {
  const bound = new Set(observed.loops.map((l) => `${l.backing.dev}:${l.backing.ino}`));
  for (const t of targets) {
    const { disk } = desiredDiskFor(desired, observed, t);
    if (!disk) continue;
    if (disk.sourceKind !== 'file') return true;
    const src = observed.sources[disk.source];
    if (src?.inode && bound.has(`${src.inode.dev}:${src.inode.ino}`)) return true;
  }
  return false;
}

async function readDomains(xs: XsClient): Promise<ObservedState['domains']> {
  let ids: number[];
  try {
    ids = (await xs.directory('/local/domain')).map(parseDomid).filter((x): x is number => x !== undefined);
  } catch (err) {
    if (isXsError(err, 'ENOENT')) return [];
    throw err;
  }
  ids.sort((a, b) => a - b);
  const names = await Promise.all(ids.map((id) => xs.read(`/local/domain/${id}/name`).catch(() => undefined)));
  return ids.map((domid, i) => {
    const name = parseDomainName(names[i]);
    return name === undefined ? { domid } : { domid, name };
  });
}

async function readOneBackend(xs: XsClient, be: number, fe: number, devid: number, sysfs: string): Promise<BackendObs | undefined> {
  const path = backendPath({ backendDomid: be, frontendDomid: fe, devid });
  // all at once: whether it exists is known only with the rest (an absent dir lists as nothing)
  const [exists, error, b] = await Promise.all([
    xs.read(path).catch(() => undefined),
    xs.read(`/local/domain/${be}/error/backend/vbd/${fe}/${devid}/error`).catch(() => undefined),
    readBackend(xs, be, fe, devid, path, sysfs),
  ]);
  if (exists === undefined) return undefined;
  if (error !== undefined) b.error = cleanText(error);
  return b;
}
