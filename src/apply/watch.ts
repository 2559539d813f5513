// Waiting on xenstore with watches, not polling: one dispatcher per client reads events() once and
// hands each event to whoever waits on its token.
import type { XsClient, XsWatchEvent } from '../xenstore/api.js';

type Listener = (ev: XsWatchEvent) => void;

class Dispatcher {
  private listeners = new Map<string, Set<Listener>>();
  private started = false;
  constructor(private readonly xs: XsClient) {}

  on(token: string, fn: Listener): () => void {
    let set = this.listeners.get(token);
    if (!set) this.listeners.set(token, (set = new Set()));
    set.add(fn);
    if (!this.started) {
      this.started = true;
      void (async () => {
        try {
          for await (const ev of this.xs.events()) {
            for (const l of this.listeners.get(ev.token) ?? []) l(ev);
          }
        } catch {
          // the connection ended: waiters time out
        }
      })();
    }
    return () => {
      set!.delete(fn);
      if (set!.size === 0) this.listeners.delete(token);
    };
  }
}

const dispatchers = new WeakMap<XsClient, Dispatcher>();
let tokenSeq = 0;

/**
 * Watches `path` and evaluates `check` on the initial firing and after every change under it, until
 * check returns a value (not undefined) or timeoutMs passes. Returns the value, or undefined on time-out.
 */
export async function waitFor<T>(
  xs: XsClient,
  path: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T | undefined> {
  let d = dispatchers.get(xs);
  if (!d) dispatchers.set(xs, (d = new Dispatcher(xs)));
  const token = `xvbd-wait-${process.pid}-${++tokenSeq}`;
  let wake: () => void = () => {};
  let dirty = true;
  const off = d.on(token, () => {
    dirty = true;
    wake();
  });
  await xs.watch(path, token);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (dirty) {
        dirty = false;
        const v = await check();
        if (v !== undefined) return v;
      }
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        wake = () => {
          clearTimeout(t);
          res();
        };
        if (dirty) wake();
      });
    }
  } finally {
    off();
    await xs.unwatch(path, token).catch(() => {});
  }
}
