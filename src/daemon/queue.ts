// The coalescing trigger queue of the reconcile loop (level-triggered, controller-runtime style):
// triggers only say "something may have changed"; a burst of them becomes one pass, one pass runs at a
// time, a trigger during a pass makes exactly one more pass after it, and a failed pass delays the next
// one with capped exponential backoff (with jitter), unless a trigger is urgent (an operator asked).
// A pass always starts from a fresh observation, so a lost or merged trigger costs nothing.

export interface QueueOptions {
  /** Quiet time after the last trigger before a pass starts (ms). */
  debounceMs?: number;
  /** A continuous stream of triggers still starts a pass this long after the first one (ms). */
  maxDelayMs?: number;
  /** Backoff after the first failed pass (ms); doubles per consecutive failure. */
  backoffBaseMs?: number;
  /** Cap of the backoff (ms). */
  backoffMaxMs?: number;
  /** Random source for the jitter (tests pass a constant). */
  random?: () => number;
  /** After a failed pass, queue a retry by itself (after the backoff), as a rate-limited requeue. Default true. */
  retryFailed?: boolean;
}

export interface TriggerOptions {
  /** An operator asked (SIGHUP, the control socket): no debounce, no backoff. */
  urgent?: boolean;
  /** Debounced, but not delayed by the error backoff (e.g. the config changed: it may fix the error). */
  skipBackoff?: boolean;
  /**
   * A quiet time of this trigger's own (ms; e.g. a config file already known to be written whole): the
   * pass waits until every trigger's quiet time after it has passed.
   */
  debounceMs?: number;
}

export interface PassInfo {
  /** 1-based pass number. */
  seq: number;
  /** The distinct reasons merged into this pass, in arrival order. */
  reasons: string[];
  /** How many triggers this pass covers. */
  triggers: number;
}

type Deferred<R> = { promise: Promise<R>; resolve: (r: R) => void; reject: (e: unknown) => void };

function deferred<R>(): Deferred<R> {
  let resolve!: (r: R) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<R>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // a trigger nobody awaits must not become an unhandled rejection
  return { promise, resolve, reject };
}

interface Pending<R> {
  reasons: string[];
  triggers: number;
  firstAt: number;
  lastAt: number;
  urgent: boolean;
  skipBackoff: boolean;
  /** When the quiet time of every trigger so far has passed (each its own debounce after it came). */
  quietAt: number;
  done: Deferred<R>;
}

export class TriggerQueue<R> {
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly random: () => number;
  private readonly retryFailed: boolean;
  private pending: Pending<R> | undefined;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private seq = 0;
  /** Consecutive failed passes. */
  failures = 0;
  /** No non-urgent pass starts before this time (ms, Date.now()). */
  backoffUntil = 0;
  /** Totals, for logs and tests. passes: started; finished: ended (ok or not); failed: ended with an error. */
  stats = { triggers: 0, passes: 0, finished: 0, failed: 0 };

  constructor(
    private readonly run: (info: PassInfo) => Promise<R>,
    private readonly failed: (r: R) => boolean = () => false,
    opts: QueueOptions = {},
  ) {
    this.debounceMs = opts.debounceMs ?? 200;
    this.maxDelayMs = opts.maxDelayMs ?? 2_000;
    this.backoffBaseMs = opts.backoffBaseMs ?? 1_000;
    this.backoffMaxMs = opts.backoffMaxMs ?? 60_000;
    this.random = opts.random ?? Math.random;
    this.retryFailed = opts.retryFailed ?? true;
  }

  /** The backoff after `failures` consecutive failed passes (ms), with +-20% jitter. */
  backoffMs(failures: number): number {
    if (failures <= 0) return 0;
    const raw = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** Math.min(failures - 1, 30));
    return Math.round(Math.min(this.backoffMaxMs, raw * (0.8 + 0.4 * this.random())));
  }

  /**
   * Asks for a pass. Resolves with the result of the pass that covers this trigger (one that starts
   * after it), rejects if that pass throws or the queue is stopped first.
   */
  trigger(reason: string, opts: TriggerOptions = {}): Promise<R> {
    if (this.stopped) return Promise.reject(new Error('reconcile loop stopped'));
    this.stats.triggers++;
    const now = Date.now();
    if (!this.pending) {
      this.pending = { reasons: [], triggers: 0, firstAt: now, lastAt: now, urgent: false, skipBackoff: false, quietAt: now, done: deferred<R>() };
    }
    const p = this.pending;
    if (!p.reasons.includes(reason)) p.reasons.push(reason);
    p.triggers++;
    p.lastAt = now;
    p.urgent ||= opts.urgent === true;
    p.skipBackoff ||= opts.skipBackoff === true || opts.urgent === true;
    p.quietAt = Math.max(p.quietAt, now + Math.max(0, opts.debounceMs ?? this.debounceMs));
    this.schedule();
    return p.done.promise;
  }

  /** True while a pass runs or one is pending. */
  get busy(): boolean {
    return this.running || this.pending !== undefined;
  }

  /** Resolves once no pass runs and none is pending. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private schedule(): void {
    if (this.running || !this.pending || this.stopped) return;
    const p = this.pending;
    let due = Math.min(p.quietAt, p.firstAt + this.maxDelayMs);
    if (p.urgent) due = Math.min(due, p.firstAt); // an operator asked: no debounce, no backoff
    else if (!p.skipBackoff) due = Math.max(due, this.backoffUntil);
    const wait = Math.max(0, due - Date.now());
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.fire();
    }, wait);
  }

  private async fire(): Promise<void> {
    if (this.running || !this.pending || this.stopped) return;
    const p = this.pending;
    this.pending = undefined;
    this.running = true;
    const info: PassInfo = { seq: ++this.seq, reasons: p.reasons, triggers: p.triggers };
    this.stats.passes++;
    try {
      const r = await this.run(info);
      if (this.failed(r)) this.noteFailure();
      else this.failures = 0;
      p.done.resolve(r);
    } catch (err) {
      this.noteFailure();
      p.done.reject(err);
    } finally {
      this.running = false;
      this.stats.finished++;
    }
    // A failed pass is retried even if nothing else happens (the backoff spaces the retries).
    if (this.failures > 0 && this.retryFailed && !this.pending && !this.stopped) void this.trigger('retry after error');
    if (this.pending) this.schedule();
    else this.wakeIdle();
  }

  private noteFailure(): void {
    this.stats.failed++;
    this.failures++;
    this.backoffUntil = Date.now() + this.backoffMs(this.failures);
  }

  private wakeIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Stops: no new pass starts; waits for the running one; pending triggers are rejected. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.pending;
    this.pending = undefined;
    p?.done.reject(new Error('reconcile loop stopped'));
    while (this.running) await new Promise((r) => setTimeout(r, 10));
    this.wakeIdle();
  }
}
