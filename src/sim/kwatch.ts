// An in-process xenstore watcher (a kernel driver's xenbus watches): events are queued and
// handled asynchronously, in order, like the xenwatch thread does.
import type { Caller, Store, Watcher } from './store.js';
import { WatchTable, watchKey } from './store.js';

export class KernelWatcher implements Watcher {
  readonly watches = new WatchTable();
  private readonly queue: { path: string; token: string }[] = [];
  private scheduled = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    readonly caller: Caller,
    private readonly handler: (path: string, token: string) => void,
  ) {
    store.watchers.add(this);
  }

  /** Registers a watch; like xenstored it fires once right away. */
  watch(path: string, token: string): void {
    const key = watchKey(path, token);
    if (this.watches.has(key)) return;
    this.watches.set(key, { node: path, token, relativeTo: undefined });
    this.deliver(path, token);
  }

  unwatch(path: string, token: string): void {
    this.watches.delete(watchKey(path, token));
  }

  deliver(path: string, token: string): void {
    this.queue.push({ path, token });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain(): void {
    this.scheduled = false;
    while (this.queue.length > 0) {
      const ev = this.queue.shift()!;
      try {
        this.handler(ev.path, ev.token);
      } catch (err) {
        process.emitWarning(`xenstore simulator: watch handler failed on ${ev.path}: ${(err as Error).message}`);
      }
    }
    const waiters = this.idle;
    this.idle = [];
    for (const w of waiters) w();
  }

  get busy(): boolean {
    return this.queue.length > 0 || this.scheduled;
  }

  /** Resolves once the queue is empty. */
  drained(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  stop(): void {
    this.store.watchers.delete(this);
    this.watches.clear();
    this.queue.length = 0;
  }
}
