// What the TUI shows of the daemon (`xvbd reconcile --watch`): whether one answers on the control
// socket, its last pass, and its recent events (passes, the hook's serve/release requests), read
// with the socket's read-only `status` and `events` ops. Never an error for the screen: a daemon
// that does not run, or a socket we may not use, is something to show, not a failure.
import { askDaemon } from '../ipc/control.js';
import type { DaemonEvent } from '../daemon/daemon.js';

export type DaemonInfo =
  | { state: 'absent' }
  | { state: 'unknown'; error: string }
  | { state: 'running'; pid: number; lastPass?: { seq: number; at: string; ok: boolean; summary: string }; events: DaemonEvent[] };

/** How many events the TUI asks for. */
export const EVENTS_SHOWN = 50;

export async function readDaemon(path: string | undefined, timeoutMs = 1500): Promise<DaemonInfo> {
  const opts = { ...(path !== undefined ? { path } : {}), timeoutMs };
  try {
    const st = await askDaemon({ op: 'status' }, opts);
    if (!st) return { state: 'absent' };
    if (!st.ok) return { state: 'unknown', error: String(st.error ?? 'status refused') };
    const last = st.last as { seq?: unknown; startedAt?: unknown; ok?: unknown; summary?: unknown } | null | undefined;
    const ev = await askDaemon({ op: 'events', n: EVENTS_SHOWN }, opts);
    const info: DaemonInfo = { state: 'running', pid: Number(st.pid), events: ev?.ok && Array.isArray(ev.events) ? (ev.events as DaemonEvent[]) : [] };
    if (last && typeof last.seq === 'number') info.lastPass = { seq: last.seq, at: String(last.startedAt), ok: last.ok === true, summary: String(last.summary ?? '') };
    return info;
  } catch (err) {
    return { state: 'unknown', error: (err as Error).message.split('\n')[0]!.slice(0, 200) };
  }
}
