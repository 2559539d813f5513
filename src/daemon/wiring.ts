// The real observe/plan functions for the daemon and `xvbd reconcile` (one place, shared by both).
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Plan } from '../model/plan.js';
import type { XsClient } from '../xenstore/api.js';
import { mountedDevices, type LoopRegistry } from '../linux/index.js';
import { observe } from '../observe/observe.js';
import { plan } from '../plan/index.js';

/** Every source and backend domain the desired state names. */
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

/** The kernel's backing path (sysfs backing_file, maybe " (deleted)") lies under one of the roots. */
export function backedUnder(backingPath: string, roots: string[]): boolean {
  const p = backingPath.replace(/ \(deleted\)$/, '');
  return roots.some((r) => p === r || p.startsWith(r.endsWith('/') ? r : `${r}/`));
}

/**
 * observe() as the daemon runs it. With allowedRoots set, only loop devices backed by a file under
 * them are looked at: xvbd cannot have made any other (every source lies under the roots), so a
 * loop device elsewhere is never ours to report or free, whatever its lo_file_name says.
 */
export function observeWith(registry: LoopRegistry): (xs: XsClient, desired: DesiredState) => Promise<ObservedState> {
  return (xs, desired) => {
    const scope = desiredScope(desired);
    const roots = desired.policy.allowedRoots;
    return observe({
      xs,
      loops: () => {
        const all = registry.listLoops();
        return roots.length === 0 ? all : all.filter((l) => backedUnder(l.backingPath, roots));
      },
      sources: scope.sources,
      backendDomids: scope.backendDomids,
      mountedDevs: () => mountedDevices().devs,
    });
  };
}

export function planWithPolicy(desired: DesiredState, observed: ObservedState): Plan {
  return plan(desired, observed, desired.policy);
}
