// Output that can never kill the process. A write to a pipe whose reader has gone
// (`xvbd reconcile --watch | head -1`: EPIPE), to a terminal that went away (EIO) or to a full disk
// behind a redirected log (the keeper's keeper.log: ENOSPC) makes Node emit 'error' on process.stdout or
// process.stderr; with no listener that is an uncaught exception, and a daemon or a keeper that dies of a
// log line takes every fd it holds with it. So both streams get a listener, a stream that failed is not
// written again, and what was meant for it degrades: stdout's text goes to stderr (where journald or the
// caller still reads it), stderr's to nothing. No native code: every command loads it first.

import { fstatSync } from 'node:fs';

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

/** syslog(3) levels a log line may carry (default info). */
export type LogLevel = 'crit' | 'err' | 'warning' | 'notice' | 'info' | 'debug';
/** A log function: one message per call (it may span lines), at a level (default info). */
export type LogFn = (line: string, level?: LogLevel) => void;

/** sd-daemon(3)'s prefixes: <2> crit ... <7> debug. */
export const SD_PRIORITY: Record<LogLevel, number> = { crit: 2, err: 3, warning: 4, notice: 5, info: 6, debug: 7 };

/**
 * Whether stderr is systemd's journal: $JOURNAL_STREAM ("DEV:INODE", set by systemd when it connects
 * stdout/stderr to journald) names the very file fd 2 is, as systemd.exec(5) says to check. A child with
 * the variable inherited but its stderr elsewhere (a keeper logging to keeper.log) is not.
 * INVOCATION_ID alone (StandardError=file:..., or a child of a unit) does not make stderr the journal.
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env, stat: () => { dev: number; ino: number } = () => fstatSync(2)): boolean {
  const m = /^([0-9]+):([0-9]+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = stat();
    return String(st.dev) === m[1] && String(st.ino) === m[2];
  } catch {
    return false;
  }
}

/**
 * The lines of one log message as written: to the journal, each line with its sd-daemon `<N>` priority
 * prefix and no time (journald stamps every line, `journalctl -p warning` filters by it); elsewhere, the
 * ISO time before the first line.
 */
export function formatLog(line: string, level: LogLevel, prefix: string, journal: boolean, now: () => Date = () => new Date()): string {
  if (journal) {
    const n = SD_PRIORITY[level];
    return line.split('\n').map((l) => `<${n}>${prefix}${l}\n`).join('');
  }
  return `${now().toISOString()} ${prefix}${line}\n`;
}

/**
 * A log function for a long-running process, on stderr: under systemd's journal (stderrIsJournal) with
 * `<N>` priority prefixes and no timestamps; otherwise one ISO time per message. Decided once.
 */
export function stampedLog(prefix = '', journal: boolean = stderrIsJournal()): LogFn {
  return (line, level = 'info') => writeErr(formatLog(line, level, prefix, journal));
}

/** Exits once what was written to stderr has gone out (at once when stderr has failed). */
export function exitAfterFlush(code: number): void {
  if (streamFailure('stderr') !== undefined) process.exit(code);
  process.stderr.write('', () => process.exit(code));
}
