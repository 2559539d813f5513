// What `plan` and `status` ask about holding: both keepers and a running daemon's fd store (loaded only
// when asked: the keeper and control clients are not on the start-up path of every command).
import type { Holdings } from '../observe/holders.js';
import { runDir } from '../host/rundir.js';

export async function askHolders(): Promise<Holdings> {
  const { durableHoldings } = await import('../hold/holdings.js');
  return durableHoldings(runDir(), { askDaemon: true });
}
