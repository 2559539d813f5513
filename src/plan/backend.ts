// What the planner says about one observed backend on its own: its health, the cells of its status row,
// the findings of its own nodes, prune's data guard on letting go of it, and the served-device steps
// (offline a dangling physical-device, hold an unheld device) that run ahead of every domain's.
import type { DiskOptions } from '../model/desired.js';
import type { Inode, LoopObs } from '../model/observed.js';
import { diskHealth } from './health.js';
import type { Action, DiskStatus, Health } from '../model/plan.js';
import { holdVerdict } from './holding.js';
import { devKey, fileKey, loopRef, vdevName } from './identity.js';
import { DEFAULT_BLOCK_SIZE, domLabel, ownLoop, type BackendInfo, type ObservedIndex } from './observed-index.js';
import { LOOP_SORT, PlanOut, type FindingExtra } from './order.js';
import { letGoVerdict, type LetGo } from './safety.js';

/** Health of one backend pair (src/plan/health.ts), with what the planner derived about it. */
export function health(i: BackendInfo, more: { foreignScript?: string; rwShared?: boolean } = {}): { health: Health; reason?: string } {
  return diskHealth({ backend: i.b, hasDevice: i.pd !== undefined, loop: i.loopReused, ...more });
}

/**
 * How a loop device's options differ from a disk's, or undefined when they agree. An unknown block
 * size is no evidence of drift. With no block size desired, the kernel's default is accepted: 512,
 * or with direct I/O the backing device's logical block size (loop_default_blocksize), which the
 * planner cannot see.
 */
export function optionsDiff(l: LoopObs, o: DiskOptions): string | undefined {
  const diffs: string[] = [];
  if (l.directIo !== o.directIo) diffs.push(`direct I/O ${l.directIo ? 'on' : 'off'}, desired ${o.directIo ? 'on' : 'off'}`);
  if (l.blockSize !== undefined) {
    const off = o.blockSize !== undefined ? l.blockSize !== o.blockSize : !l.directIo && l.blockSize !== DEFAULT_BLOCK_SIZE;
    if (off) diffs.push(`block size ${l.blockSize}, desired ${o.blockSize ?? `the default (${DEFAULT_BLOCK_SIZE})`}`);
  }
  return diffs.length > 0 ? diffs.join(' and ') : undefined;
}

/** What a backend serves, in words. */
export function describeIdentity(i: BackendInfo): string {
  if (i.loopAtPd && i.loopReused === 'no') {
    if (i.identity?.startsWith('b:')) return `device /dev/${i.loopAtPd.name} (${i.b.physicalDevice})`;
    return `${i.loopAtPd.backingPath} via /dev/${i.loopAtPd.name}`;
  }
  if (i.pd) return `device ${i.b.physicalDevice}`;
  return i.params ?? '(unknown)';
}

/** The cells of a status row that come from its backend. */
export function fillBackendCells(row: DiskStatus, i: BackendInfo, ix: ObservedIndex): void {
  const b = i.b;
  row.backend = i.ref;
  if (b.state !== undefined) row.backendState = b.state;
  if (b.frontendState !== undefined) row.frontendState = b.frontendState;
  if (i.loopAtPd && i.loopReused === 'no') row.loop = loopRef(i.loopAtPd);
  if (i.pd && i.active) row.sharedBy = ix.pdUsers.get(devKey(i.pd)) ?? 0;
}

/** What a backend's own nodes report: its error, a failed hotplug, nodes a guest wrote garbage into. */
export function backendChecks(i: BackendInfo, domain: string, vdev: string): PlanOut {
  const out = new PlanOut();
  const b = i.b;
  const f = { domain, vdev, backend: i.ref, sortDomain: domain, sortDevid: b.devid };
  if (b.error !== undefined) {
    out.finding('backend-error', 'error', `${domain} ${vdev}: the backend reported: ${b.error}`, `xl block-detach ${domain} ${vdev}, fix the cause, then apply`, f);
  }
  if (b.hotplugStatus === 'error') {
    out.finding('backend-error', 'error', `${domain} ${vdev}: hotplug-status is "error"`, `xl block-detach ${domain} ${vdev}, fix the cause, then apply`, f);
  }
  for (const m of b.malformed ?? []) {
    out.finding('backend-error', 'warning', `${domain} ${vdev}: ${m}`, 'a guest wrote garbage into its own nodes; restart or fix the guest', f);
  }
  return out;
}

/**
 * Prune's data guard (src/plan/safety.ts) for letting go of a backend's loop device or of a loop device
 * itself: the note for the action's reason ('' when nothing is at risk), or undefined when refused,
 * which `out` gets as data-loss-refused with how to save the data.
 */
export function guardLetGo(what: LetGo, of: BackendInfo | LoopObs, subject: string, f: FindingExtra, allowDataLoss: boolean, out: PlanOut): string | undefined {
  let l: LoopObs | undefined;
  let recorded: Inode | undefined;
  if ('b' in of) {
    // only the very device the backend was served (same diskseq) can hold its data
    l = of.loopReused === 'no' ? of.loopAtPd : undefined;
    recorded = of.b.sourceInode;
  } else {
    l = of;
  }
  const v = letGoVerdict(what, l, recorded, allowDataLoss);
  if (v.allowed) return v.loss !== undefined ? ` (${v.loss})` : '';
  const verb = what === 'free-loop' ? 'not freed' : what === 'detach' ? 'not detached' : 'not replaced';
  out.finding('data-loss-refused', 'error', `${subject}: ${verb}: ${v.why}`, v.save, { ...f, loops: [loopRef(l!)] });
  return undefined;
}

/**
 * The served devices of our backends, desired or not: a dangling physical-device (its device gone or its
 * number re-bound) is taken offline, an unheld device of ours is held. `offlined`: the backends whose
 * physical-device this plan removes, and whether it closes them too.
 */
export function planServed(ix: ObservedIndex): { out: PlanOut; offlined: ReadonlyMap<BackendInfo, boolean> } {
  const out = new PlanOut();
  const offlined = new Map<BackendInfo, boolean>();
  for (const i of ix.infos) {
    if (!i.b.ours) continue;
    if (i.loopReused !== 'no') offlined.set(i, planOffline(i, ix, out));
    else planHold(i, ix, out);
  }
  return { out, offlined };
}

/**
 * A backend of ours whose physical-device names a device that is gone or re-bound: offline before any
 * allocation. Closed too when the number is bound to another device (blkback may have opened it) or
 * blkback holds something there. Returns whether it is closed.
 */
function planOffline(i: BackendInfo, ix: ObservedIndex, out: PlanOut): boolean {
  const b = i.b;
  const close = i.loopReused === 'reused' || b.kernelHeld;
  const reason =
    i.loopReused === 'gone'
      ? `no loop device is bound at physical-device ${b.physicalDevice} any more`
      : `${b.physicalDevice} is now /dev/${i.loopAtPd!.name} with diskseq ${i.loopAtPd!.diskseq}, the backend recorded ${b.diskseq}`;
  const name = ix.nameByDomid.get(b.frontendDomid);
  const a: Action = { kind: 'offline', backend: i.ref, physicalDevice: b.physicalDevice!, close, reason };
  if (name !== undefined) a.domain = name;
  out.action(a, name ?? '', b.frontendDomid, b.devid);
  return close;
}

/** A device of ours that one of our backends serves (proven: marker, diskseq, inode) and no durable holder keeps. */
function planHold(i: BackendInfo, ix: ObservedIndex, out: PlanOut): void {
  const b = i.b;
  const l = i.loopAtPd;
  if (!l || !ownLoop(ix, l) || b.diskseq !== l.diskseq || !b.sourceInode || fileKey(b.sourceInode) !== fileKey(l.backing)) return;
  const verdict = holdVerdict(l.keptBy);
  if (verdict === 'held' || verdict === 'unknown') return;
  const name = ix.nameByDomid.get(b.frontendDomid);
  const a: Action = { kind: 'hold', backend: i.ref, loop: loopRef(l) };
  if (name !== undefined) a.domain = name;
  out.action(a, name ?? '', b.frontendDomid, b.devid);
  if (verdict !== 'unheld') return;
  const label = `${domLabel(ix, b.frontendDomid)} ${vdevName(b.devid)}`;
  out.finding(
    'loop-unheld',
    'error',
    `${label}: /dev/${l.name} (diskseq ${l.diskseq}) serves ${b.path} but no holder in dom0 keeps it open; it is freed as soon as blkback lets go`,
    'apply takes it back (the keepers hold it from then on)',
    { ...(name !== undefined ? { domain: name } : {}), vdev: vdevName(b.devid), backend: i.ref, loops: [loopRef(l)], sortDomain: name ?? LOOP_SORT, sortDevid: b.devid },
  );
}
