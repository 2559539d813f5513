// Which guest nodes the daemon watches. A frontend's own changes reach dom0's backend dir only
// through blkback, and a guest that recreates its frontend changes nothing there (blkback just
// unregisters): the daemon would see it only at the next resync. So it watches the `state` node of
// the frontend of every backend of ours, found from the backend's `frontend` node (dom0's, not the
// guest's) and only at the one place libxl and xvbd put it. An event is a reason to look, nothing
// more: the pass reads and parses the guest's nodes as the untrusted input they are.
import type { ObservedState } from '../model/observed.js';

export function frontendStatePaths(observed: ObservedState): Set<string> {
  const out = new Set<string>();
  for (const b of observed.backends) {
    if (!b.ours || b.frontendPath !== `/local/domain/${b.frontendDomid}/device/vbd/${b.devid}`) continue;
    out.add(`${b.frontendPath}/state`);
  }
  return out;
}
