// xvbd's run dir: the apply lock, the keeper's and the daemon's sockets (no native code: the keeper and the
// CLI read it before loading anything else).
import { mkdirSync } from 'node:fs';
import { runDirOf } from '../linux/instance.js';

/** $XVBD_RUN_DIR, else /run/xvbd (src/linux/instance.ts: the run dir also names the instance). */
export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  return runDirOf(env);
}

/** Creates the run dir (0700) if needed and returns it. */
export function ensureRunDir(dir = runDir()): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
