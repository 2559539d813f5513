// What an observation covers for a desired state: its sources, its backend domains, and the loop devices
// xvbd could have made (one rule for `plan`, `status`, `apply`, the hook, the TUI and the daemon).
import type { DesiredState } from '../model/desired.js';
import type { BackendObs, LoopObs, ObservedState } from '../model/observed.js';
import { observe, type ObserveDeps } from './observe.js';
import { backedUnder } from '../config/paths.js';
import { readPhysicalDevice } from '../xen/vbd.js';

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
 * only loop devices backed by a file under them are looked at (xvbd cannot have made any other: every
 * source lies under the roots, so a loop device elsewhere is never ours to report or free, whatever its
 * lo_file_name says), and those a backend's physical-device names (see inScope).
 */
export function observeDesired(deps: Omit<ObserveDeps, 'sources' | 'backendDomids'>, desired: DesiredState | undefined): Promise<ObservedState> {
  if (!desired) return observe({ ...deps, sources: [] });
  const { sources, backendDomids } = desiredScope(desired);
  const roots = desired.policy.allowedRoots;
  if (roots.length === 0) return observe({ ...deps, sources, backendDomids });
  return observe({ ...deps, sources, backendDomids, scopeLoops: (loops, backends) => inScope(loops, backends, roots) });
}

/**
 * The loop devices under the allowed roots, and any other that a backend's physical-device names: a
 * number a backend of ours names and another tool's device now holds is what the planner must see to
 * close that backend (and count it for rw-shared), wherever that device's file lies.
 */
export function inScope(loops: LoopObs[], backends: BackendObs[], roots: string[]): LoopObs[] {
  const named = new Set<string>();
  for (const b of backends) {
    // as the planner reads it (this only widens what is looked at)
    const d = readPhysicalDevice(b.physicalDevice);
    if (d) named.add(`${d.major}:${d.minor}`);
  }
  return loops.filter((l) => backedUnder(l.backingPath, roots) || named.has(`${l.major}:${l.minor}`));
}
