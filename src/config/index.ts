// The desired-state format: load a config directory into a DesiredState, with compiler-style errors.
import type { DesiredState } from '../model/desired.js';
import { checkConfigDir } from './load.js';
import { formatErrors, type ConfigError } from './errors.js';

export type { ConfigError, RelatedLocation, FormatOptions } from './errors.js';
export { formatErrors, errorHeadline } from './errors.js';
export {
  API_VERSION,
  KINDS,
  checkConfigDir,
  checkConfigTexts,
  defaultConfigDir,
  isConfigFileName,
  parseDuration,
  type ConfigCheck,
  type ConfigFileText,
} from './load.js';
export { vdevToDevid, devidToVdev, parseVdev, VdevError, type VdevInfo } from './vdev.js';
export { pathProblem, isUnder } from './paths.js';

/**
 * Reads every `*.yaml` / `*.yml` file of `dir` (sorted by name, not recursive), checks them all and
 * returns the desired state when there is no error. `files` are the paths read (`join(dir, name)`).
 */
export async function loadConfig(dir: string): Promise<{ desired?: DesiredState; errors: ConfigError[]; files: string[] }> {
  const r = await checkConfigDir(dir);
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
export async function loadDesired(dir: string): Promise<DesiredState> {
  const r = await loadConfig(dir);
  if (!r.desired) throw new ConfigInvalidError(dir, r.errors);
  return r.desired;
}
