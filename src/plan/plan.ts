// The pure planner: plan(desired, observed, policy) -> Plan. No I/O, no clock, deterministic order.
// Every observed collection is indexed once (src/plan/observed-index.ts: by (frontend, devid), by device
// number, by inode), so a plan is O(n log n) in the number of disks, backends and loop devices.
//
// Principles:
// - Identity is by inode (files) or device number (block devices), never by path.
// - xvbd only ever changes what it owns (backend marker `xvbd`, loop marker) and only detaches /
//   frees with policy.prune. Backends of other tools are reported, never touched.
// - A read-write file is never given to two users: any attach/serve/replace that would make a
//   file be used by two (domain, vdev) pairs with one of them writable is refused (rw-shared).
// - A finding is drift that this plan does not fix (or that stays worth knowing: rw-shared,
//   loop-reused, backend-error...). What an action fixes is not repeated as a finding.
//
// The stages, each a function of the index and what the stages before it decided:
//   indexObserved (observed-index.ts) -> desiredDisks, rwSharedFindings (desired-disks.ts)
//   -> planServed: offline / hold (backend.ts) -> planDisk per desired disk (disk.ts)
//   -> planOrphans: backends nobody desires (orphans.ts) -> planLoops: free-loop, leaks (loops.ts)
//   -> orderPlan: the order of the steps and findings (order.ts).
import type { DesiredState, Policy } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { DiskStatus, Plan } from '../model/plan.js';
import { devKey, parseDecDev } from './identity.js';
import { desiredDisks, rwSharedFindings } from './desired-disks.js';
import { planServed } from './backend.js';
import { planDisk } from './disk.js';
import { loopWants, planLoops } from './loops.js';
import { indexObserved, type BackendInfo } from './observed-index.js';
import { orderPlan, PlanOut } from './order.js';
import { planOrphans } from './orphans.js';

export function plan(desired: DesiredState, observed: ObservedState, policy: Policy = desired.policy): Plan {
  const ix = indexObserved(observed, policy.allowedRoots);
  const disks = desiredDisks(desired, observed, ix);
  const served = planServed(ix);
  const rows: DiskStatus[] = [];
  const perDisk = new PlanOut();
  const matched = new Set<BackendInfo>();
  for (const c of disks) {
    const d = planDisk(c, ix, policy, served.offlined);
    rows.push(d.row);
    perDisk.add(d.out);
    for (const i of d.matched) matched.add(i);
  }
  const orphans = planOrphans(ix, matched, new Set(desired.domains.map((d) => d.name)), policy);
  rows.push(...orphans.rows);
  // A loop device a desired disk names as its block device (`device: /dev/loop3`) is wanted, used or not.
  const desiredDevices = new Set<string>();
  for (const c of disks) {
    const dev = c.src?.kind === 'block' ? parseDecDev(c.src.rdev) : undefined;
    if (dev) desiredDevices.add(devKey(dev));
  }
  const loops = planLoops(ix, loopWants(perDisk.actions.map((x) => x.v), desiredDevices), policy);
  return orderPlan([served.out, rwSharedFindings(ix, disks), perDisk, orphans.out, loops], rows);
}

export { health, optionsDiff } from './backend.js';
export type { BackendInfo } from './observed-index.js';
