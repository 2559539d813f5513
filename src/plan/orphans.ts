// Backends of ours that no desired disk accounts for: detached with prune (after the data guard), else
// reported; each gets its status row.
import type { Policy } from '../model/desired.js';
import type { Action, DiskStatus } from '../model/plan.js';
import { vdevName } from './identity.js';
import { backendChecks, fillBackendCells, guardLetGo, health } from './backend.js';
import { domLabel, type BackendInfo, type ObservedIndex } from './observed-index.js';
import { PlanOut, type FindingExtra } from './order.js';

/** Why a backend of ours is not desired, and whether xvbd cannot tell (a running domain without a readable name). */
export function undesiredReason(i: BackendInfo, ix: ObservedIndex, desiredNames: ReadonlySet<string>): { reason: string; nameless: boolean } {
  const b = i.b;
  const running = ix.runningDomids.has(b.frontendDomid);
  const name = ix.nameByDomid.get(b.frontendDomid);
  const nameless = running && name === undefined;
  const reason = !running
    ? `frontend domain ${b.frontendDomid} is not running`
    : nameless
      ? `the name of domain ${b.frontendDomid} is missing or unreadable`
      : desiredNames.has(name!)
        ? `${vdevName(b.devid)} is no longer in ${domLabel(ix, b.frontendDomid)}'s config`
        : `${domLabel(ix, b.frontendDomid)} is not in the config`;
  return { reason, nameless };
}

/** The status row of a backend no desired disk names. */
function orphanRow(i: BackendInfo, ix: ObservedIndex): DiskStatus {
  const b = i.b;
  const h = health(i);
  const row: DiskStatus = { domain: domLabel(ix, b.frontendDomid), vdev: vdevName(b.devid), devid: b.devid, sync: 'out-of-sync', health: h.health, backend: i.ref, sharedBy: 0 };
  if (ix.runningDomids.has(b.frontendDomid)) row.domid = b.frontendDomid;
  if (h.reason !== undefined) row.healthReason = h.reason;
  if (b.mode === 'r') row.mode = 'ro';
  else if (b.mode === 'w') row.mode = 'rw';
  if (i.params !== undefined) row.source = i.params;
  fillBackendCells(row, i, ix);
  return row;
}

/** Our backends not in `matched` (the desired disks' backends): a row each, and a detach (prune) or a finding. */
export function planOrphans(ix: ObservedIndex, matched: ReadonlySet<BackendInfo>, desiredNames: ReadonlySet<string>, policy: Policy): { rows: DiskStatus[]; out: PlanOut } {
  const out = new PlanOut();
  const rows: DiskStatus[] = [];
  for (const i of ix.infos) {
    if (matched.has(i) || !i.b.ours) continue;
    const b = i.b;
    const name = ix.nameByDomid.get(b.frontendDomid);
    const label = domLabel(ix, b.frontendDomid);
    const vdev = vdevName(b.devid);
    const { reason, nameless } = undesiredReason(i, ix, desiredNames);
    rows.push(orphanRow(i, ix));
    out.add(backendChecks(i, label, vdev));
    const sortDomain = name ?? `\uffff${String(b.frontendDomid).padStart(10, '0')}`;
    if (policy.prune && !nameless) {
      const f: FindingExtra = { vdev, backend: i.ref, sortDomain, sortDevid: b.devid, ...(name !== undefined ? { domain: name } : {}) };
      const note = guardLetGo('detach', i, `${label} ${vdev} (${reason})`, f, policy.allowDataLoss === true, out);
      if (note === undefined) continue;
      const a: Action = { kind: 'detach', backend: i.ref, reason: reason + note };
      if (name !== undefined) a.domain = name;
      out.action(a, sortDomain, b.frontendDomid, b.devid);
      continue;
    }
    const f: FindingExtra = { vdev, backend: i.ref, sortDomain, sortDevid: b.devid };
    if (name !== undefined) f.domain = name;
    out.finding(
      'unexpected-backend',
      'warning',
      `${label} ${vdev}: xvbd's backend ${b.path} is not desired (${reason})`,
      nameless ? 'xvbd leaves it alone until the domain has a readable name' : 'apply with prune detaches it, or add the disk back to the config',
      f,
    );
  }
  return { rows, out };
}
