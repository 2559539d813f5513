// xvbd's run dir: the apply lock, the keeper's and the daemon's sockets (no native code: the keeper and the
// CLI read it before loading anything else).
import { mkdirSync } from 'node:fs';
import { runDirOf } from './instance.js';

/** $XVBD_RUN_DIR, else /run/xvbd (src/linux/instance.ts: the run dir also names the instance). */
export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  return runDirOf(env);
}

/** Creates the run dir (0700) if needed and returns it. */
export function ensureRunDir(dir = runDir()): string {
  return inRunDir(dir, 'the run dir', () => {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  });
}

/** What the usual errors of a run dir's file system mean for its administrator. */
const HINTS: Record<string, string> = {
  ENOSPC: 'no space left on its file system',
  EDQUOT: 'the disk quota is exhausted',
  EROFS: 'its file system is read-only',
  EACCES: 'permission denied (xvbd runs as root)',
  EPERM: 'permission denied (xvbd runs as root)',
};

/** An operation on a file of the run dir failed: says which file, what it is for, and why. */
export class RunDirError extends Error {
  constructor(
    readonly path: string,
    readonly what: string,
    readonly code: string | undefined,
    cause: unknown,
  ) {
    const hint = code !== undefined ? HINTS[code] : undefined;
    const detail = hint !== undefined ? `${hint} (${code})` : cause instanceof Error ? cause.message : String(cause);
    super(`cannot write ${what} (${path}): ${detail}${hint !== undefined ? '; free space there or set XVBD_RUN_DIR to a writable directory' : ''}`, { cause });
    this.name = 'RunDirError';
  }
}

/** The error of writing `what` at `path`, as a RunDirError (one already is: kept). */
export function runDirError(err: unknown, path: string, what: string): Error {
  if (err instanceof RunDirError) return err;
  const code = (err as { code?: unknown })?.code;
  return new RunDirError(path, what, typeof code === 'string' ? code : undefined, err);
}

/** Runs `f`, turning a file-system error into a RunDirError naming `path` and `what`. */
export function inRunDir<T>(path: string, what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw runDirError(err, path, what);
  }
}
