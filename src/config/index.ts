// The desired-state format: load a config directory into a DesiredState, with compiler-style errors.
import type { DesiredState } from '../model/desired.js';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkConfigDir, isConfigFileName, type CheckOptions } from './load.js';
import { formatErrors, type ConfigError } from './errors.js';

export type { ConfigError, RelatedLocation, FormatOptions } from './errors.js';
export { formatErrors, errorHeadline } from './errors.js';
export {
  API_VERSION,
  KINDS,
  checkConfigDir,
  checkConfigTexts,
  checkFleetDir,
  checkFleetTexts,
  isConfigFileName,
  parseDuration,
  type CheckOptions,
  type ConfigCheck,
  type ConfigFileText,
  type FleetCheck,
  type FleetHostCheck,
} from './load.js';
export { vdevToDevid, devidToVdev, parseVdev, VdevError, type VdevInfo } from './vdev.js';
export { pathProblem, isUnder } from './paths.js';
// read from the environment in src/host (one place for every environment variable's default)
export { defaultConfigDir, defaultHostName } from '../host/env.js';

/** Which host of a fleet to load for (`--host`); without Host documents in the directory it does not matter. */
export type LoadOptions = Omit<CheckOptions, 'dir'>;

/**
 * Reads every `*.yaml` / `*.yml` file of `dir` (sorted by name, not recursive), checks them all and
 * returns the desired state when there is no error. `files` are the paths read (`join(dir, name)`).
 * In a fleet directory (with `kind: Host` documents) the desired state is `opts.host`'s (default: this
 * machine's name, see defaultHostName).
 */
export async function loadConfig(dir: string, opts: LoadOptions = {}): Promise<{ desired?: DesiredState; errors: ConfigError[]; files: string[] }> {
  const r = await checkConfigDir(dir, opts);
  return r.desired ? { desired: r.desired, errors: r.errors, files: r.files } : { errors: r.errors, files: r.files };
}

/** Thrown by loadDesired: the config has errors. `message` is the formatted errors (no colour). */
export class ConfigInvalidError extends Error {
  constructor(
    readonly dir: string,
    readonly errors: ConfigError[],
  ) {
    super(`the config in ${dir} is not valid (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${formatErrors(errors).trimEnd()}`);
    this.name = 'ConfigInvalidError';
  }
}

/** loadConfig for commands that need a valid desired state: resolves to it, or throws ConfigInvalidError. */
export async function loadDesired(dir: string, opts: LoadOptions = {}): Promise<DesiredState> {
  const r = await loadConfig(dir, opts);
  if (!r.desired) throw new ConfigInvalidError(dir, r.errors);
  return r.desired;
}

export type LoadedConfig = Awaited<ReturnType<typeof loadConfig>>;

/**
 * A cheap signature of a config dir: name, size, mtime, ctime and inode of every config file. Taken
 * before a load, so a file changed during the load shows as a change next time.
 */
export function configSignature(dir: string): string {
  try {
    const parts: string[] = [];
    for (const name of readdirSync(dir).filter(isConfigFileName).sort()) {
      try {
        const st = statSync(join(dir, name));
        parts.push(`${name}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}\0${st.ino}`);
      } catch {
        parts.push(`${name}\0?`);
      }
    }
    return parts.join('\n');
  } catch (err) {
    return `unreadable ${performance.now()} ${(err as Error).message}`;
  }
}

/**
 * loadConfig for something that loads again and again (the daemon's passes, the TUI's refreshes): the
 * files are parsed again only when the dir's signature changed (at 1,000 disks parsing costs more than
 * observing), or when asked to (force).
 */
export class ConfigCache {
  private sig: string | undefined;
  private last: LoadedConfig | undefined;

  constructor(
    readonly dir: string,
    readonly opts: LoadOptions = {},
  ) {}

  async load(force = false): Promise<LoadedConfig> {
    const sig = configSignature(this.dir);
    if (force || !this.last || sig !== this.sig) {
      this.last = await loadConfig(this.dir, this.opts);
      this.sig = sig;
    }
    return this.last;
  }
}

