// The real observe/plan functions for the daemon, `xvbd reconcile` and `xvbd apply` (one place for all).
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Plan } from '../model/plan.js';
import type { XsClient } from '../xenstore/api.js';
import { mountedDevices, type LoopRegistry } from '../linux/index.js';
import { observeDesired } from '../observe/scope.js';
import type { CachedReaders } from '../observe/readers.js';

export type { CachedReaders };
import { withKeptBy, type Holdings } from '../observe/holders.js';
import { plan } from '../plan/index.js';

/**
 * observe() as the daemon and `apply` run it: the registry's view of the loop devices (src/observe/scope.ts)
 * and, given `holders`, who durably holds each (asked while xenstore is read).
 */
export function observeWith(registry: LoopRegistry, holders?: () => Promise<Holdings>): (xs: XsClient, desired: DesiredState, cached?: CachedReaders) => Promise<ObservedState> {
  return async (xs, desired, cached) => {
    // /proc/self/mountinfo read once per observation, for the loop devices and the sources alike
    const mounts = mountedDevices();
    const [observed, holdings] = await Promise.all([
      observeDesired(
        {
          xs,
          loops: () => (cached?.loops ? cached.loops(mounts) : registry.listLoops({ mounts })),
          mountedDevs: () => mounts.devs,
          ...(cached?.xenstore ? { xenstore: cached.xenstore } : {}),
          ...(cached?.sources ? { observeSources: cached.sources } : {}),
        },
        desired,
      ),
      holders?.(),
    ]);
    return holdings ? withKeptBy(observed, holdings) : observed;
  };
}

export function planWithPolicy(desired: DesiredState, observed: ObservedState): Plan {
  return plan(desired, observed, desired.policy);
}
