// The host as seen without a desired state (the config is invalid or missing): every backend of xvbd's
// as a row, and only the findings that need no desired state. `xvbd status` and the TUI show this with
// the config errors on top, as Argo CD still shows the live objects of an app whose manifests are broken.
import { DEFAULT_POLICY } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Finding, FindingKind, Plan } from '../model/plan.js';
import { vdevName } from './identity.js';
import { plan } from './plan.js';

/** Findings about what exists, whatever is desired: broken or unheld devices, leaks, deleted files. */
const DESIRE_FREE: ReadonlySet<FindingKind> = new Set<FindingKind>(['backend-error', 'loop-unheld', 'loop-backing-deleted', 'loop-duplicate', 'loop-leaked']);

/**
 * A plan of nothing desired, read for what it says about the host: rows for xvbd's backends (sync
 * `unknown`: nothing to compare with), the desire-free findings, and a backend whose loop device is gone
 * or re-bound (the planner's `offline` action) as a `loop-reused` error finding. No actions: nothing
 * may be changed without a desired state.
 */
export function observedOnlyPlan(observed: ObservedState): Plan {
  const p = plan({ domains: [], policy: DEFAULT_POLICY }, observed, { ...DEFAULT_POLICY, prune: false });
  const findings: Finding[] = p.findings.filter((f) => DESIRE_FREE.has(f.kind));
  for (const a of p.actions) {
    if (a.kind !== 'offline') continue;
    const label = `${a.domain ?? `domid ${a.backend.frontendDomid}`} ${vdevName(a.backend.devid)}`;
    findings.push({
      kind: 'loop-reused',
      severity: 'error',
      message: `${label}: ${a.reason}`,
      fix: 'fix the config, then apply: it takes the backend offline and serves the disk again',
      ...(a.domain !== undefined ? { domain: a.domain } : {}),
      vdev: vdevName(a.backend.devid),
      backend: a.backend,
    });
  }
  const disks = p.disks.map((d) => {
    const { syncReason: _drop, ...rest } = d;
    void _drop;
    return { ...rest, sync: 'unknown' as const, syncReason: 'no valid config to compare with' };
  });
  return { actions: [], findings, disks };
}
