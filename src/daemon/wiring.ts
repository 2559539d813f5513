// The real observe/plan functions for the daemon, `xvbd reconcile` and `xvbd apply` (one place for all).
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Plan } from '../model/plan.js';
import type { XsClient } from '../xenstore/api.js';
import { mountedDevices, type LoopRegistry } from '../linux/index.js';
import { observeDesired } from '../observe/scope.js';
import { plan } from '../plan/index.js';

/** observe() as the daemon runs it: the registry's view of the loop devices (src/observe/scope.ts). */
export function observeWith(registry: LoopRegistry): (xs: XsClient, desired: DesiredState) => Promise<ObservedState> {
  return (xs, desired) => {
    // /proc/self/mountinfo read once per observation, for the loop devices and the sources alike
    const mounts = mountedDevices();
    return observeDesired({ xs, loops: () => registry.listLoops({ mounts }), mountedDevs: () => mounts.devs }, desired);
  };
}

export function planWithPolicy(desired: DesiredState, observed: ObservedState): Plan {
  return plan(desired, observed, desired.policy);
}
