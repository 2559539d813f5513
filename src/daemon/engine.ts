// The daemon's Engine: the real I/O behind each pass. Config from the directory (src/config), a
// fresh observation over one long-lived xenstore connection (reconnected after a failure), the pure
// planner, and the executor with this process as the fd holder (the LoopRegistry keeps one fd per
// device; src/hold/fdstore.ts parks them in systemd's fd store). Execution takes the host's apply
// lock, so a one-shot `xvbd apply` and the daemon never interleave.
import { ConfigCache, formatErrors } from '../config/index.js';
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Plan } from '../model/plan.js';
import type { XsClient } from '../xenstore/api.js';
import { isXsConnectionLost } from '../xenstore/errors.js';
import type { CachedReaders } from '../observe/readers.js';
import type { LoopRegistry } from '../linux/registry.js';
import type { DeviceProvider } from '../hold/devices.js';
import { execute, type StepEvent } from '../apply/execute.js';
import { selfHolder, type FdHolder } from '../hold/holder.js';
import { acquireApplyLock } from '../apply/lock.js';
import type { Engine, ExecuteResult, PassOutcome, StepRecord } from './reconciler.js';
import { sweepRegistry, type FdStore } from '../hold/fdstore.js';
import type { LogFn } from '../log/stdio.js';

/** `cached`: readers in place of the full walks (the daemon's caches). */
export type ObserveFn = (xs: XsClient, desired: DesiredState, cached?: CachedReaders) => Promise<ObservedState>;
export type PlanFn = (desired: DesiredState, observed: ObservedState) => Plan;

export interface EngineDeps {
  configDir: string;
  /** In a fleet directory: the host whose desired state to use (default: this machine's name, defaultHostName()). */
  host?: string;
  /** Opens a xenstore connection (e.g. the client's connect()). */
  connect: () => Promise<XsClient>;
  observe: ObserveFn;
  plan: PlanFn;
  registry: LoopRegistry;
  devices: DeviceProvider;
  fdStore?: FdStore;
  /** Who keeps the fds after a step: this process (the daemon, default) or the keeper (one-shot runs). */
  holder?: FdHolder;
  /** Written as the backend's `script` by attach (so `xl block-detach` runs our hook). */
  hookScript?: string;
  /** Where blkback's devices appear (the reprobe step waits there for blkback to let go). */
  xenBackendSysfs?: string;
  /** How long to wait for the apply lock held by a one-shot apply (ms). */
  lockWaitMs?: number;
  log: LogFn;
  /** Called at the start of every sweep (e.g. take over fds a keeper got from a one-shot apply meanwhile). */
  beforeSweep?: () => Promise<void>;
  onStep?: (e: StepEvent) => void;
}

export class DaemonEngine implements Engine {
  private xs: XsClient | undefined;
  private readonly config: ConfigCache;

  constructor(private readonly d: EngineDeps) {
    this.config = new ConfigCache(d.configDir, d.host !== undefined ? { host: d.host } : {});
  }

  async client(): Promise<XsClient> {
    if (!this.xs) this.xs = await this.d.connect();
    return this.xs;
  }

  /** Drops the connection after a failure; the next pass connects again. */
  private async reset(): Promise<void> {
    const xs = this.xs;
    this.xs = undefined;
    await xs?.close().catch(() => undefined);
  }

  async loadDesired() {
    // parsed again only when a config file changed (every xenstore watch burst makes a pass)
    const r = await this.config.load();
    if (r.desired && r.errors.length === 0) return { desired: r.desired, errorCount: 0 };
    return { errorCount: r.errors.length, errorText: formatErrors(r.errors, { color: false }) };
  }

  async observe(desired: DesiredState): Promise<ObservedState> {
    try {
      return await this.d.observe(await this.client(), desired);
    } catch (err) {
      await this.reset();
      throw err;
    }
  }

  plan(desired: DesiredState, observed: ObservedState): Plan {
    return this.d.plan(desired, observed);
  }

  async sweep(observed: ObservedState): Promise<{ released: string[]; closed: string[] }> {
    if (this.d.beforeSweep) await this.d.beforeSweep();
    const r = sweepRegistry(this.d.registry, observed);
    for (const l of [...r.claimed, ...r.released]) this.d.log(`fds: ${l}`);
    // What was let go leaves systemd's store before anything else happens in this pass.
    if (r.released.length > 0 && this.d.fdStore) await this.d.fdStore.sync();
    return { released: r.released, closed: r.closed };
  }

  async execute(plan: Plan, desired: DesiredState): Promise<ExecuteResult> {
    const lock = await acquireApplyLock({ waitMs: this.d.lockWaitMs ?? 30_000 });
    try {
      const xs = await this.client();
      const r = await execute(plan, {
        xs,
        devices: this.d.devices,
        policy: desired.policy,
        holder: this.d.holder ?? selfHolder,
        ...(this.d.hookScript ? { hookScript: this.d.hookScript } : {}),
        ...(this.d.xenBackendSysfs !== undefined ? { xenBackendSysfs: this.d.xenBackendSysfs } : {}),
        onEvent: (e) => {
          if (e.type === 'step-progress') this.d.log(`  step ${e.index + 1}: ${e.message}`);
          this.d.onStep?.(e);
        },
      });
      const steps: StepRecord[] = r.steps.map((s) => ({
        kind: s.action.kind,
        target: 'backend' in s.action ? s.action.backend.path : s.action.kind === 'free-loop' ? s.action.loop.name : s.summary,
        label: s.summary,
        ok: s.ok,
        ...(s.error ? { error: s.error } : {}),
        ...(s.terminal ? { terminal: true } : {}),
        ms: Math.round(s.ms * 10) / 10,
        action: s.action,
      }));
      return { ok: r.ok, steps };
    } catch (err) {
      if (isXsConnectionLost(err)) await this.reset();
      throw err;
    } finally {
      lock.release();
    }
  }

  async afterPass(_o: PassOutcome): Promise<void> {
    if (this.d.fdStore) await this.d.fdStore.sync();
  }

  async close(): Promise<void> {
    await this.reset();
  }
}
