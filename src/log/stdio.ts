// Output that can never kill the process. A write to a pipe whose reader has gone
// (`xvbd reconcile --watch | head -1`: EPIPE), to a terminal that went away (EIO) or to a full disk
// behind a redirected log (the keeper's keeper.log: ENOSPC) makes Node emit 'error' on process.stdout or
// process.stderr; with no listener that is an uncaught exception, and a daemon or a keeper that dies of a
// log line takes every fd it holds with it. So both streams get a listener, a stream that failed is not
// written again, and what was meant for it degrades: stdout's text goes to stderr (where journald or the
// caller still reads it), stderr's to nothing. No native code: every command loads it first.

type StreamName = 'stdout' | 'stderr';

const failed = new Map<StreamName, string>();
let guarded = false;

function errCode(e: unknown): string {
  const x = e as { code?: unknown; message?: unknown };
  return typeof x?.code === 'string' ? x.code : typeof x?.message === 'string' ? x.message : String(e);
}

/** Installs the 'error' listeners on stdout and stderr (once per process; idempotent). */
export function guardStdio(): void {
  if (guarded) return;
  guarded = true;
  for (const name of ['stdout', 'stderr'] as const) {
    process[name].on('error', (e: unknown) => {
      if (failed.has(name)) return;
      failed.set(name, errCode(e));
      if (name === 'stdout') writeErr(`xvbd[${process.pid}]: stdout failed (${errCode(e)}); its output goes to stderr from now on\n`);
    });
  }
}

/** Why `name` can no longer be written (its error code), or undefined while it can. */
export function streamFailure(name: StreamName): string | undefined {
  const f = failed.get(name);
  if (f !== undefined) return f;
  const s = process[name];
  return s.destroyed || !s.writable ? 'closed' : undefined;
}

function tryWrite(name: StreamName, text: string): boolean {
  if (streamFailure(name) !== undefined) return false;
  try {
    process[name].write(text);
    return true;
  } catch (e) {
    failed.set(name, errCode(e));
    return false;
  }
}

/** A command's output: stdout, or stderr once stdout failed, or nothing. */
export function writeOut(text: string): void {
  if (!tryWrite('stdout', text)) tryWrite('stderr', text);
}

/** A diagnostic or log line: stderr, or nothing once it failed (never stdout: that may be --json). */
export function writeErr(text: string): void {
  tryWrite('stderr', text);
}

/** A log function for a long-running process: one line per call, ISO time first, on stderr. */
export function stampedLog(prefix = ''): (line: string) => void {
  return (line) => writeErr(`${new Date().toISOString()} ${prefix}${line}\n`);
}

/** Exits once what was written to stderr has gone out (at once when stderr has failed). */
export function exitAfterFlush(code: number): void {
  if (streamFailure('stderr') !== undefined) process.exit(code);
  process.stderr.write('', () => process.exit(code));
}
