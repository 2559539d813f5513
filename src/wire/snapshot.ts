// snapshot(): the one way every command (plan, status, apply, tui, daemon) gets its picture of the
// world: load the config, connect to xenstore (or reuse a client), observe, plan.
import type { DesiredState, Policy } from '../model/desired.js';
import type { LoopObs, ObservedState } from '../model/observed.js';
import type { Plan } from '../model/plan.js';
import type { XsClient } from '../xenstore/api.js';
import type { ConfigError } from '../config/index.js';
import { defaultConfigDir } from '../host/env.js';
import type { ObserveDeps } from '../observe/observe.js';
import { observeDesired } from '../observe/scope.js';
import { withKeptBy, type Holdings } from '../observe/holders.js';
import { plan as makePlan } from '../plan/plan.js';

export interface ObserveForOptions {
  /** Loop devices (default: src/linux listLoops()). */
  loops?: () => LoopObs[];
  /** Default $XVBD_XEN_BACKEND_SYSFS or /sys/bus/xen-backend/devices. */
  xenBackendSysfs?: string;
  /** Read xenstore in one transaction (default false; see src/observe/observe.ts). */
  transaction?: boolean;
  /** Mounted block devices "major:minor" (default: src/linux mountedDevices()). */
  mountedDevs?: () => Set<string>;
  /** Who durably holds each loop device (LoopObs.keptBy); not asked: keptBy stays unknown. */
  holders?: () => Promise<Holdings>;
}

/** Observe what `desired` needs (src/observe/scope.ts), with this host's loop devices unless given. */
export async function observeFor(xs: XsClient, desired: DesiredState | undefined, opts: ObserveForOptions = {}): Promise<ObservedState> {
  let loops = opts.loops;
  let mountedDevs = opts.mountedDevs;
  if (!loops || !mountedDevs) {
    const linux = await import('../linux/index.js');
    // /proc/self/mountinfo read once, for the loop devices and the sources alike
    const mounts = linux.mountedDevices();
    loops ??= () => linux.listLoops({ mounts });
    mountedDevs ??= () => mounts.devs;
  }
  const deps: Omit<ObserveDeps, 'sources' | 'backendDomids'> = { xs, loops, mountedDevs };
  if (opts.xenBackendSysfs !== undefined) deps.xenBackendSysfs = opts.xenBackendSysfs;
  if (opts.transaction !== undefined) deps.transaction = opts.transaction;
  const [observed, holdings] = await Promise.all([observeDesired(deps, desired), opts.holders?.()]);
  return holdings ? withKeptBy(observed, holdings) : observed;
}

export interface SnapshotOptions extends ObserveForOptions {
  /** Config directory: --config, else $XVBD_CONFIG, else /etc/xvbd. */
  configDir?: string;
  /** In a fleet directory: the host whose desired state to load (--host; default this machine's name). */
  host?: string;
  /** Use this desired state instead of loading the config (the daemon's last good one). */
  desired?: DesiredState;
  /** Reuse a client (not closed); else connect() ($XENSTORED_PATH, as libxenstore) and close after. */
  xs?: XsClient;
  /** Socket path for connect(). */
  xenstorePath?: string;
  /** Override the config's policy (e.g. `apply --prune`). */
  policy?: Partial<Policy>;
  /** Observe even when the config has errors (status shows the host anyway). Default false. */
  observeOnConfigError?: boolean;
}

export interface Snapshot {
  configDir: string;
  /** Config files read. */
  files: string[];
  /** Config errors (format with formatErrors from src/config); empty when desired is present. */
  errors: ConfigError[];
  desired?: DesiredState;
  /** The policy the plan used (the config's, with overrides). */
  policy?: Policy;
  observed?: ObservedState;
  /** Present whenever desired and observed are. */
  plan?: Plan;
  timings: { configMs: number; observeMs: number; planMs: number };
}

export function resolveConfigDir(dir?: string, env: NodeJS.ProcessEnv = process.env): string {
  return dir ?? defaultConfigDir(env);
}

export async function snapshot(opts: SnapshotOptions = {}): Promise<Snapshot> {
  const configDir = resolveConfigDir(opts.configDir);
  const t0 = performance.now();
  let desired = opts.desired;
  let errors: ConfigError[] = [];
  let files: string[] = [];
  if (!desired) {
    const { loadConfig } = await import('../config/index.js');
    const r = await loadConfig(configDir, opts.host !== undefined ? { host: opts.host } : {});
    errors = r.errors;
    files = r.files;
    desired = r.desired;
  }
  const t1 = performance.now();
  const snap: Snapshot = { configDir, files, errors, timings: { configMs: t1 - t0, observeMs: 0, planMs: 0 } };
  if (desired) snap.desired = desired;
  if (!desired && !opts.observeOnConfigError) return snap;

  let xs = opts.xs;
  const own = !xs;
  if (!xs) {
    const { connect } = await import('../xenstore/client.js');
    xs = await connect(opts.xenstorePath !== undefined ? { path: opts.xenstorePath } : {});
  }
  try {
    snap.observed = await observeFor(xs, desired, opts);
  } finally {
    if (own) await xs.close().catch(() => undefined);
  }
  const t2 = performance.now();
  snap.timings.observeMs = t2 - t1;
  if (desired) {
    const policy: Policy = { ...desired.policy, ...(opts.policy ?? {}) };
    snap.policy = policy;
    snap.plan = makePlan(desired, snap.observed, policy);
    snap.timings.planMs = performance.now() - t2;
  }
  return snap;
}
