// Coalesces refresh triggers: a burst of xenstore watch events or file changes becomes one
// observation, never two at once, and never more often than minIntervalMs. A trigger that arrives
// while an observation runs schedules exactly one more after it (the change may have come after the
// reads). No React here: the data hook drives it, the tests time it.

export interface CoalescerOptions {
  /** Wait this long after a trigger for more to arrive (ms). */
  debounceMs: number;
  /** At least this long between the starts of two runs caused by triggers (ms). */
  minIntervalMs: number;
  /** The clock (tests); default performance.now. */
  now?: () => number;
}

export class Coalescer {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private dirty = false;
  private stopped = false;
  private lastStart = -Infinity;
  private idleWaiters: (() => void)[] = [];
  /** How many times the function ran / how many triggers arrived. */
  runs = 0;
  triggers = 0;

  constructor(
    private readonly fn: () => Promise<void>,
    private readonly opts: CoalescerOptions,
  ) {}

  private clock(): number {
    return (this.opts.now ?? (() => performance.now()))();
  }

  /** Something may have changed: observe again soon. */
  trigger(): void {
    if (this.stopped) return;
    this.triggers++;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.timer) return;
    this.schedule(false);
  }

  /** Observe as soon as possible (the user asked): no debounce, no minimum interval. */
  runNow(): void {
    if (this.stopped) return;
    this.triggers++;
    if (this.running) {
      this.dirty = true;
      return;
    }
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    void this.run();
  }

  get busy(): boolean {
    return this.running || this.timer !== undefined;
  }

  /** Resolves when nothing is running or scheduled. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = false;
    if (!this.running) this.wake();
  }

  private schedule(afterRun: boolean): void {
    const sinceStart = this.clock() - this.lastStart;
    const delay = Math.max(afterRun ? 0 : this.opts.debounceMs, this.opts.minIntervalMs - sinceStart, 0);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, delay);
  }

  private async run(): Promise<void> {
    this.running = true;
    this.dirty = false;
    this.lastStart = this.clock();
    this.runs++;
    try {
      await this.fn();
    } catch {
      // the function reports its own errors; a failure must not stop later refreshes
    } finally {
      this.running = false;
    }
    if (this.stopped) {
      this.wake();
      return;
    }
    if (this.dirty) {
      this.dirty = false;
      this.schedule(true);
    } else {
      this.wake();
    }
  }

  private wake(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }
}
