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

export function observeWith(registry: LoopRegistry): (xs: XsClient, desired: DesiredState) => Promise<ObservedState> {
  return (xs, desired) => {
    const scope = desiredScope(desired);
    return observe({
      xs,
      loops: () => registry.listLoops(),
      sources: scope.sources,
      backendDomids: scope.backendDomids,
      mountedDevs: () => mountedDevices().devs,
    });
  };
}

export function planWithPolicy(desired: DesiredState, observed: ObservedState): Plan {
  return plan(desired, observed, desired.policy);
}
