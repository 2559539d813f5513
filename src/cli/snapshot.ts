// The CLI side of snapshot(): config errors and an unreachable xenstore become CliErrors with
// a clear message (the config's errors printed compiler-style on stderr first).
import { CliError } from './errors.js';
import { plural, wantColor } from '../render/style.js';
import { snapshot, type Snapshot } from '../wire/snapshot.js';
import type { Holdings } from '../observe/holders.js';
import type { Plan } from '../model/plan.js';

export interface LoadSnapshotOptions {
  configDir?: string | undefined;
  /** --host: in a fleet directory, the host whose desired state to use. */
  host?: string | undefined;
  prune?: boolean;
  /** --allow-data-loss: prune may let go of a loop device holding the only copy of some data. */
  allowDataLoss?: boolean;
  /** --replace: Policy.replace. */
  replace?: ReadonlySet<string> | undefined;
  /** For messages: "plan", "status". */
  command: string;
  /** Who durably holds each loop device (the keepers, the daemon's fd store). */
  holders?: () => Promise<Holdings>;
  /** --json: an invalid config is also reported on stdout as {"valid": false, "errors": [...]}. */
  json?: boolean;
}

/** How the config of a snapshot without a desired state is broken: missing, or invalid with its errors. */
export function configProblem(snap: Pick<Snapshot, 'configDir' | 'errors'>): { missing: boolean; text: string } {
  const e = snap.errors;
  if (e.length === 1 && e[0]!.line === 0 && e[0]!.message === 'the config directory does not exist') {
    return { missing: true, text: `the config directory ${snap.configDir} is missing (create it, or name yours with --config or XVBD_CONFIG)` };
  }
  if (e.length === 0) return { missing: false, text: `no desired state in ${snap.configDir}` };
  return { missing: false, text: `the config in ${snap.configDir} is invalid (${plural(e.length, 'error')})` };
}

async function take(opts: LoadSnapshotOptions, observeOnConfigError: boolean): Promise<Snapshot> {
  try {
    const policy = { ...(opts.prune ? { prune: true } : {}), ...(opts.allowDataLoss ? { allowDataLoss: true } : {}), ...(opts.replace ? { replace: opts.replace } : {}) };
    return await snapshot({
      ...(opts.configDir !== undefined ? { configDir: opts.configDir } : {}),
      ...(opts.host !== undefined ? { host: opts.host } : {}),
      policy,
      ...(opts.holders ? { holders: opts.holders } : {}),
      observeOnConfigError,
    });
  } catch (err) {
    const e = err as { errno?: string; message?: string; code?: string };
    if (e.errno !== undefined || e.code === 'ECONNREFUSED' || e.code === 'ENOENT') {
      throw new CliError(
        `cannot read xenstore: ${e.message ?? String(err)}\n(is xenstored running? to use the simulator, set XENSTORED_PATH to its socket)`,
      );
    }
    throw err;
  }
}

/** snapshot() for a command: returns a snapshot with desired, observed and plan, or throws CliError. */
export async function loadSnapshot(opts: LoadSnapshotOptions): Promise<Snapshot & Required<Pick<Snapshot, 'desired' | 'observed' | 'plan'>>> {
  const snap = await take(opts, false);
  if (!snap.desired) {
    const { formatErrors } = await import('../config/index.js');
    const problem = configProblem(snap);
    if (snap.errors.length > 0) {
      if (opts.json) process.stdout.write(JSON.stringify({ valid: false, configDir: snap.configDir, missing: problem.missing, errors: snap.errors }, null, 2) + '\n');
      // a missing directory is said once, in the line below
      if (!problem.missing) process.stderr.write(formatErrors(snap.errors, { color: wantColor(process.stderr) }) + '\n');
    }
    throw new CliError(`${problem.text}; nothing was planned`);
  }
  return snap as Snapshot & Required<Pick<Snapshot, 'desired' | 'observed' | 'plan'>>;
}

/**
 * snapshot() for a command that shows the host even when the config is broken (`xvbd status`): the host
 * is observed either way; `configOk` false means there is no desired state and `plan` is
 * observedOnlyPlan's (no actions, the findings that need no desired state).
 */
export async function loadHostSnapshot(opts: LoadSnapshotOptions): Promise<{ snap: Snapshot & Required<Pick<Snapshot, 'observed'>>; plan: Plan; configOk: boolean }> {
  const snap = await take(opts, true);
  if (!snap.observed) throw new CliError(`${configProblem(snap).text}; nothing was observed`);
  const observedSnap = snap as Snapshot & Required<Pick<Snapshot, 'observed'>>;
  if (snap.desired && snap.plan) return { snap: observedSnap, plan: snap.plan, configOk: true };
  const { observedOnlyPlan } = await import('../plan/observed-only.js');
  return { snap: observedSnap, plan: observedOnlyPlan(snap.observed), configOk: false };
}
