// The Xen suite's scenario contract and its small test runner (TAP output).
//
// A scenario is one file test/xen/scenarios/<name>.ts exporting `scenario: XenScenario`. Its `xen` part
// runs inside dom0 of the real Xen host (one VM boot for all scenarios); its optional `host` part runs on
// the host after the VM is gone, with whatever the `xen` part recorded (to compare with the simulator).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';

export type Phase = 'xen' | 'host';

export interface CaseResult {
  scenario: string;
  phase: Phase;
  name: string;
  status: 'pass' | 'fail' | 'skip';
  ms: number;
  /** failure message (or skip reason) */
  detail?: string;
}

export interface TestOptions {
  /** default 120 s */
  timeoutMs?: number;
}

export interface SuiteContext {
  readonly scenario: string;
  readonly phase: Phase;
  /** the repository root (in dom0 it is shared read-only at the same path) */
  readonly repoRoot: string;
  /** a scratch directory of this scenario (tmpfs in dom0) */
  readonly tmpDir: string;
  /** Runs one case; resolves to true when it passed. A throw (assert) fails it. */
  test(name: string, fn: () => Promise<void> | void, opts?: TestOptions): Promise<boolean>;
  skip(name: string, reason: string): void;
  /** a diagnostic line (TAP comment) */
  log(msg: string): void;
}

export interface XenContext extends SuiteContext {
  /** the real xenstored's unix socket in dom0 */
  readonly xenstoredSocket: string;
  /** Keeps a JSON-able value for the host part of this scenario (written to /host/out at once). */
  record(key: string, value: unknown): void;
}

export interface HostContext extends SuiteContext {
  /** What the xen part recorded under key, or undefined (the xen part failed early or did not run). */
  recorded<T>(key: string): T | undefined;
  /** All keys the xen part recorded. */
  recordedKeys(): string[];
}

export interface XenScenario {
  /** one line, shown by --list */
  description: string;
  /** run order (lower first, then by name); default 50 */
  order?: number;
  /**
   * The VM boot it runs in (default 'dom0'): scenarios of one group share a dom0, each group gets its
   * own boot and time limit (the guest scenarios boot apart, so neither boot nears the limit).
   */
  boot?: string;
  /** not part of a full run: only run when named with --only (slow, or documentation of Xen itself) */
  optIn?: boolean;
  /** the time limit of the xen part (default 420 s) */
  xenTimeoutMs?: number;
  /** runs in dom0 (real Xen, real xenstored, xen-blkback, root, loop devices) */
  xen?(t: XenContext): Promise<void>;
  /** runs on the host after the VM run (e.g. the same operations against the simulator) */
  host?(t: HostContext): Promise<void>;
}

/** TAP version 13 writer shared by the dom0 side and the host side. */
export class Tap {
  private n = 0;
  readonly results: CaseResult[] = [];
  constructor(private readonly write: (line: string) => void = (l) => process.stdout.write(l + '\n')) {}

  header(): void {
    this.write('TAP version 13');
  }

  comment(msg: string): void {
    for (const l of msg.split('\n')) this.write(`# ${l}`);
  }

  add(r: CaseResult): void {
    this.results.push(r);
    this.n++;
    const title = `${r.scenario} [${r.phase}] ${r.name}`.replace(/#/g, '\\#');
    if (r.status === 'skip') {
      this.write(`ok ${this.n} - ${title} # SKIP ${r.detail ?? ''}`);
      return;
    }
    this.write(`${r.status === 'pass' ? 'ok' : 'not ok'} ${this.n} - ${title} # time=${r.ms}ms`);
    if (r.status === 'fail' && r.detail) {
      this.write('  ---');
      this.write('  message: |-');
      for (const l of r.detail.split('\n')) this.write(`    ${l}`);
      this.write('  ...');
    }
  }

  plan(): void {
    this.write(`1..${this.n}`);
  }

  summary(): { pass: number; fail: number; skip: number } {
    const s = { pass: 0, fail: 0, skip: 0 };
    for (const r of this.results) s[r.status]++;
    return s;
  }
}

export function errorText(e: unknown): string {
  if (e instanceof Error) {
    // assert's AssertionError carries a useful message (with the diff); the stack adds the place
    const where = (e.stack ?? '').split('\n').find((l) => /\/test\/xen\//.test(l));
    return `${e.message}${where ? `\n${where.trim()}` : ''}`;
  }
  return inspect(e);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface BaseContextOptions {
  scenario: string;
  phase: Phase;
  repoRoot: string;
  tmpDir: string;
  tap: Tap;
}

export function makeSuiteContext(o: BaseContextOptions): SuiteContext {
  mkdirSync(o.tmpDir, { recursive: true });
  return {
    scenario: o.scenario,
    phase: o.phase,
    repoRoot: o.repoRoot,
    tmpDir: o.tmpDir,
    async test(name, fn, opts) {
      const t0 = Date.now();
      try {
        await withTimeout(Promise.resolve().then(fn), opts?.timeoutMs ?? 120_000, name);
        o.tap.add({ scenario: o.scenario, phase: o.phase, name, status: 'pass', ms: Date.now() - t0 });
        return true;
      } catch (e) {
        o.tap.add({ scenario: o.scenario, phase: o.phase, name, status: 'fail', ms: Date.now() - t0, detail: errorText(e) });
        return false;
      }
    },
    skip(name, reason) {
      o.tap.add({ scenario: o.scenario, phase: o.phase, name, status: 'skip', ms: 0, detail: reason });
    },
    log(msg) {
      o.tap.comment(`${o.scenario} [${o.phase}]: ${msg}`);
    },
  };
}

/** A record store that rewrites <dir>/<scenario>.json at every record(), so a crash keeps what was there. */
export function recordStore(dir: string, scenario: string): { record(key: string, value: unknown): void } {
  mkdirSync(dir, { recursive: true });
  const data: Record<string, unknown> = {};
  return {
    record(key, value) {
      data[key] = value;
      writeFileSync(join(dir, `${scenario}.json`), JSON.stringify(data, null, 1));
    },
  };
}

/** Runs a scenario part, turning a throw outside test() into a failed case. */
export async function runPart(ctx: SuiteContext, tap: Tap, part: () => Promise<void>, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  try {
    await withTimeout(part(), timeoutMs, `${ctx.scenario} [${ctx.phase}]`);
  } catch (e) {
    tap.add({ scenario: ctx.scenario, phase: ctx.phase, name: '(scenario aborted)', status: 'fail', ms: Date.now() - t0, detail: errorText(e) });
  }
}
