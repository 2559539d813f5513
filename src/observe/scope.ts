// What an observation covers for a desired state: its sources, its backend domains, and the loop devices
// xvbd could have made (one rule for `plan`, `status`, `apply`, the hook, the TUI and the daemon).
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import { observe, type ObserveDeps } from './observe.js';
import { backedUnder } from '../config/paths.js';

/** Every source and backend domain the desired state names (the policy's default backend included). */
export function desiredScope(desired: DesiredState): { sources: string[]; backendDomids: number[] } {
  const sources = new Set<string>();
  const bes = new Set<number>([desired.policy.defaults.backendDomid]);
  for (const d of desired.domains) {
    for (const k of d.disks) {
      sources.add(k.source);
      bes.add(k.backendDomid);
    }
  }
  return { sources: [...sources].sort(), backendDomids: [...bes].sort((a, b) => a - b) };
}

/**
 * observe() for a desired state (none: dom0's backends and the loop devices only). With allowedRoots set,
 * only loop devices backed by a file under them are looked at: xvbd cannot have made any other (every
 * source lies under the roots), so a loop device elsewhere is never ours to report or free, whatever
 * its lo_file_name says.
 */
export function observeDesired(deps: Omit<ObserveDeps, 'sources' | 'backendDomids'>, desired: DesiredState | undefined): Promise<ObservedState> {
  if (!desired) return observe({ ...deps, sources: [] });
  const { sources, backendDomids } = desiredScope(desired);
  const roots = desired.policy.allowedRoots;
  const all = deps.loops;
  const loops = roots.length === 0 ? all : () => all().filter((l) => backedUnder(l.backingPath, roots));
  return observe({ ...deps, loops, sources, backendDomids });
}
