// Which frontend domains the daemon watches when it keeps no cache (XVBD_OBSERVE_CACHE=0): those of
// the backends the last pass saw, as src/observe/cache.ts lists them otherwise. A frontend's own
// changes reach dom0's backend dir only through blkback, and a guest that recreates its frontend
// changes nothing there (blkback just unregisters): without the watch the daemon would see it only
// at the next resync. An event is a reason to look, nothing more: the pass reads and parses the
// guest's nodes as the untrusted input they are.
import type { ObservedState } from '../model/observed.js';

export function frontendDomids(observed: ObservedState): number[] {
  return [...new Set(observed.backends.map((b) => b.frontendDomid))].sort((a, b) => a - b);
}
