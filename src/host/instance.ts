// Which xvbd instance this process is, and its run dir. Two xvbd instances on one host (a test run, a
// demo, a second config) must never take, share or free each other's loop devices, so every device's
// marker names its instance and only the same instance's are "ours". No native code: the CLI and the
// keeper read it before loading anything else.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';

/** The run dir of the host's one xvbd (apply.lock, control.sock, keeper.sock). */
export const DEFAULT_RUN_DIR = '/run/xvbd';

/** $XVBD_RUN_DIR, else /run/xvbd. */
export function runDirOf(env: NodeJS.ProcessEnv = process.env): string {
  return env.XVBD_RUN_DIR || DEFAULT_RUN_DIR;
}

const INSTANCE_RE = /^[a-z0-9][a-z0-9-]{0,9}$/;

/** Whether `s` can be an instance name (what a marker can carry: 1-10 of a-z, 0-9 and '-', not first). */
export function isInstanceName(s: string): boolean {
  return INSTANCE_RE.test(s);
}

/**
 * The instance a run dir stands for when XVBD_INSTANCE does not say: none (untagged markers) for the
 * default run dir, so the host's xvbd keeps recognising the devices it made before instances were
 * derived; otherwise "r" and 9 hex digits of the SHA-256 of the run dir's absolute path, the same at
 * every start (the path is not resolved through symlinks: two spellings of one dir are two instances,
 * which only ever makes xvbd touch less).
 */
export function runDirInstance(dir: string): string | undefined {
  const abs = resolve(dir);
  if (abs === DEFAULT_RUN_DIR) return undefined;
  return `r${createHash('sha256').update(abs).digest('hex').slice(0, 9)}`;
}

let memo: { key: string; value: string | undefined } | undefined;

/**
 * This process's instance: XVBD_INSTANCE when set (a name as isInstanceName says), else the run dir's
 * (runDirInstance). Read at every call (tests and the demo change the environment), computed once per
 * environment.
 */
export function instanceOf(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env.XVBD_INSTANCE;
  const dir = runDirOf(env);
  const key = `${explicit ?? ''}\0${dir}`;
  if (memo?.key === key) return memo.value;
  let value: string | undefined;
  if (explicit !== undefined && explicit !== '') {
    if (!isInstanceName(explicit)) throw new Error(`XVBD_INSTANCE=${JSON.stringify(explicit)}: must be 1-10 characters of a-z, 0-9 and '-'`);
    value = explicit;
  } else {
    value = runDirInstance(dir);
  }
  memo = { key, value };
  return value;
}
