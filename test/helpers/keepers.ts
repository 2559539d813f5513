// Test helpers around a run dir's two keepers: how many fds they hold, waiting for them to exit.
import { existsSync } from 'node:fs';
import { keeperLists, keeperSocketPath } from '../../src/hold/keeper-client.js';
import { KEEPER_SLOTS } from '../../src/plan/holding.js';

/** Fds held by each running keeper of runDir (a keeper that does not answer counts as none). */
export async function keeperHeld(runDir: string): Promise<{ a?: number; b?: number; pids: number[] }> {
  const out: { a?: number; b?: number; pids: number[] } = { pids: [] };
  for (const k of await keeperLists(runDir)) {
    out[k.slot] = k.held.length;
    out.pids.push(k.pid);
  }
  return out;
}

export function keepersRunning(runDir: string): boolean {
  return KEEPER_SLOTS.some((s) => existsSync(keeperSocketPath(runDir, s)));
}

/**
 * Waits until both keepers of runDir have exited (they do once they hold nothing); after `ms`, kills
 * what still runs and rejects, so that a test never leaves a keeper behind.
 */
export async function waitKeepersGone(runDir: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  let pids: number[] = [];
  while (keepersRunning(runDir)) {
    pids = (await keeperHeld(runDir)).pids.length > 0 ? (await keeperHeld(runDir)).pids : pids;
    if (Date.now() > end) {
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      throw new Error(`the keepers of ${runDir} did not exit within ${ms} ms (killed ${pids.join(', ') || 'none found'})`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
