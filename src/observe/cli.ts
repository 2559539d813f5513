// The CLI side of snapshot(): config errors and an unreachable xenstore become CliErrors with
// a clear message (the config's errors printed compiler-style on stderr first).
import { CliError } from '../cli/errors.js';
import { plural, wantColor } from '../cli/render/style.js';
import { snapshot, type Snapshot } from './snapshot.js';
import type { Holdings } from './holders.js';

export interface LoadSnapshotOptions {
  configDir?: string | undefined;
  /** --host: in a fleet directory, the host whose desired state to use. */
  host?: string | undefined;
  prune?: boolean;
  /** --allow-data-loss: prune may let go of a loop device holding the only copy of some data. */
  allowDataLoss?: boolean;
  /** For messages: "plan", "status". */
  command: string;
  /** Who durably holds each loop device (the keepers, the daemon's fd store). */
  holders?: () => Promise<Holdings>;
  /** --json: an invalid config is also reported on stdout as {"valid": false, "errors": [...]}. */
  json?: boolean;
}

/** snapshot() for a command: returns a snapshot with desired, observed and plan, or throws CliError. */
export async function loadSnapshot(opts: LoadSnapshotOptions): Promise<Snapshot & Required<Pick<Snapshot, 'desired' | 'observed' | 'plan'>>> {
  let snap: Snapshot;
  try {
    const policy = { ...(opts.prune ? { prune: true } : {}), ...(opts.allowDataLoss ? { allowDataLoss: true } : {}) };
    snap = await snapshot({
      ...(opts.configDir !== undefined ? { configDir: opts.configDir } : {}),
      ...(opts.host !== undefined ? { host: opts.host } : {}),
      policy,
      ...(opts.holders ? { holders: opts.holders } : {}),
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
  if (!snap.desired) {
    const { formatErrors } = await import('../config/index.js');
    if (snap.errors.length > 0) {
      if (opts.json) process.stdout.write(JSON.stringify({ valid: false, configDir: snap.configDir, errors: snap.errors }, null, 2) + '\n');
      process.stderr.write(formatErrors(snap.errors, { color: wantColor(process.stderr) }) + '\n');
      throw new CliError(`the config in ${snap.configDir} is invalid (${plural(snap.errors.length, 'error')}); nothing was planned`);
    }
    throw new CliError(`no desired state in ${snap.configDir}`);
  }
  return snap as Snapshot & Required<Pick<Snapshot, 'desired' | 'observed' | 'plan'>>;
}
