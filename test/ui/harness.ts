// Render an Ink element into a fake terminal: a Writable stdout (columns, rows, isTTY) whose
// frames we keep, and a stdin that accepts raw mode so useInput works; keys are written to it.
import { PassThrough, Writable } from 'node:stream';
import { render, type Instance } from 'ink';
import type { ReactNode } from 'react';

/** Removes ANSI escape sequences (colours, cursor moves). */
export function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\u001b\][^\u0007]*\u0007/g, '');
}

export class FakeStdout extends Writable {
  frames: string[] = [];
  isTTY = true;
  columns: number;
  rows: number;
  constructor(columns = 120, rows = 50) {
    super();
    this.columns = columns;
    this.rows = rows;
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.frames.push(chunk.toString());
    cb();
  }
  /** The last frame, without escape codes. */
  last(): string {
    for (let i = this.frames.length - 1; i >= 0; i--) {
      const f = stripAnsi(this.frames[i]!);
      if (f.trim() !== '') return f;
    }
    return '';
  }
}

export class FakeStdin extends PassThrough {
  isTTY = true;
  isRaw = false;
  setRawMode(on: boolean): this {
    this.isRaw = on;
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

export interface Term {
  stdout: FakeStdout;
  stdin: FakeStdin;
  instance: Instance;
  /** Writes keys, then waits for the next frame (at most waitMs) and lets it settle. */
  press(keys: string, waitMs?: number): Promise<string>;
  /** Waits until the last frame contains text (or throws after timeoutMs, showing the frame). */
  waitFor(text: string | RegExp | ((frame: string) => boolean), timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

export const KEY = {
  up: '\u001b[A',
  down: '\u001b[B',
  enter: '\r',
  escape: '\u001b',
  /** What the Backspace key of most terminals sends (DEL). */
  backspace: '\u007f',
} as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function renderTerm(node: ReactNode, columns = 120, rows = 50): Term {
  const stdout = new FakeStdout(columns, rows);
  const stdin = new FakeStdin();
  const stderr = new FakeStdout(columns, rows);
  const instance = render(node, {
    stdout: stdout as unknown as NodeJS.WriteStream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    stderr: stderr as unknown as NodeJS.WriteStream,
    debug: true,
    exitOnCtrlC: false,
    patchConsole: false,
  });
  const term: Term = {
    stdout,
    stdin,
    instance,
    async press(keys, waitMs = 2000) {
      // Waits for the frame the keys cause (a loaded machine can be slow), at most waitMs.
      const n = stdout.frames.length;
      stdin.write(keys);
      const end = Date.now() + waitMs;
      while (stdout.frames.length === n && Date.now() < end) await sleep(10);
      await sleep(30);
      return stdout.last();
    },
    async waitFor(text, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const f = stdout.last();
        if (typeof text === 'string' ? f.includes(text) : typeof text === 'function' ? text(f) : text.test(f)) return f;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(text)}; last frame:\n${f}`);
        await sleep(20);
      }
    },
    async close() {
      instance.unmount();
      instance.cleanup();
      await sleep(10);
    },
  };
  return term;
}
