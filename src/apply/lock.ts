// One applier at a time on a host: flock(LOCK_EX) on $XVBD_RUN_DIR/apply.lock (default /run/xvbd).
// The file holds the holder's pid (for the error message only: the lock itself is the flock, which the
// kernel drops when the holder dies, so a kill -9 never leaves a stale lock).
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { LOCK_EX, sysTryFlock } from '../linux/ffi.js';
import { ensureRunDir, inRunDir, runDir } from '../host/rundir.js';

export { runDir, ensureRunDir };

const WHAT = 'the apply lock';

export class LockHeldError extends Error {
  constructor(
    readonly path: string,
    readonly holderPid: number | undefined,
  ) {
    super(
      `another xvbd apply${holderPid !== undefined ? ` (pid ${holderPid})` : ''} holds ${path}` +
        (holderPid !== undefined ? '' : ' (pid unknown)'),
    );
    this.name = 'LockHeldError';
  }
}

export interface ApplyLock {
  readonly path: string;
  release(): void;
}

function readHolder(path: string): number | undefined {
  try {
    const s = readFileSync(path, 'utf8').trim();
    return /^[1-9][0-9]{0,9}$/.test(s) ? Number(s) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the apply lock. Without `waitMs` (or 0) a held lock fails at once with LockHeldError;
 * with `waitMs` it retries until then (the hook waits: libxl may run it while an apply runs).
 */
export async function acquireApplyLock(opts: { dir?: string; waitMs?: number } = {}): Promise<ApplyLock> {
  const dir = ensureRunDir(opts.dir ?? runDir());
  const path = join(dir, 'apply.lock');
  const fd = inRunDir(path, WHAT, () => openSync(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600));
  const deadline = Date.now() + (opts.waitMs ?? 0);
  let delay = 10;
  for (;;) {
    let got: boolean;
    try {
      got = sysTryFlock(fd, LOCK_EX);
    } catch (err) {
      closeSync(fd);
      throw new Error(`flock(${path}) failed: ${(err as Error).message}`);
    }
    if (got) break;
    if (Date.now() >= deadline) {
      closeSync(fd);
      throw new LockHeldError(path, readHolder(path));
    }
    await new Promise((r) => setTimeout(r, delay + Math.random() * delay));
    delay = Math.min(delay * 2, 200);
  }
  try {
    // the pid only names the holder in LockHeldError; the flock is held already, whatever this says
    inRunDir(path, `${WHAT}'s holder pid`, () => {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
    });
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      try {
        ftruncateSync(fd, 0);
      } finally {
        closeSync(fd);
      }
    },
  };
}
