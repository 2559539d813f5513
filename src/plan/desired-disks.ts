// The desired disks as the planner sees them against one observation: each with its domain's domid, its
// source's identity and the data keys it wants, whether its file is wanted or used read-write by another
// disk too (rw-shared), and what keeps a new use of its source from being made.
import type { DesiredState, DiskSpec, DomainSpec } from '../model/desired.js';
import type { ObservedState, SourceObs } from '../model/observed.js';
import { blockKey, fileKey, loopRef, parseDecDev, vdevName } from './identity.js';
import { addDataKeys, cmp, domLabel, type ObservedIndex } from './observed-index.js';
import { PlanOut, type FindingExtra } from './order.js';

export interface DiskCtx {
  readonly dom: DomainSpec;
  readonly disk: DiskSpec;
  readonly domid?: number;
  readonly ambiguous?: readonly number[];
  readonly src?: SourceObs;
  readonly identity?: string;
  /** Its identity and, for a loop device, its backing file's: the keys of the data it wants. */
  readonly dataKeys: readonly string[];
  /** The data key under which its source is wanted or used read-write by another disk too. */
  readonly conflict?: string;
}

/** One user of some data: a backend, or a desired disk. */
export interface User {
  key: string;
  label: string;
  writable: boolean;
}

export function sourceIdentity(src: SourceObs | undefined): string | undefined {
  if (!src || !src.exists) return undefined;
  if (src.kind === 'file' && src.inode) return fileKey(src.inode);
  if (src.kind === 'block') {
    const d = parseDecDev(src.rdev);
    if (d) return blockKey(d.major, d.minor);
  }
  return undefined;
}

/** The desired disks, by domain name then devid, each with what the observation says about it. */
export function desiredDisks(desired: DesiredState, observed: ObservedState, ix: ObservedIndex): DiskCtx[] {
  const out: DiskCtx[] = [];
  for (const dom of [...desired.domains].sort((a, b) => cmp(a.name, b.name))) {
    const ids = ix.domidsByName.get(dom.name) ?? [];
    const sortedDisks = [...dom.disks].sort((a, b) => a.devid - b.devid || cmp(a.vdev, b.vdev));
    for (const disk of sortedDisks) {
      const src = Object.hasOwn(observed.sources, disk.source) ? observed.sources[disk.source] : undefined;
      const identity = sourceIdentity(src);
      const dataKeys = [...addDataKeys(ix, new Set(), identity, src?.kind === 'block' ? parseDecDev(src.rdev) : undefined)];
      const c: { -readonly [K in keyof DiskCtx]: DiskCtx[K] } = { dom, disk, dataKeys };
      if (ids.length === 1) c.domid = ids[0]!;
      else if (ids.length > 1) c.ambiguous = [...ids].sort((a, b) => a - b);
      if (src) c.src = src;
      c.identity = identity;
      out.push(c);
    }
  }
  const conflicts = rwConflicts(ix, out);
  return out.map((c) => {
    const k = c.dataKeys.find((x) => conflicts.has(x));
    return k !== undefined ? { ...c, conflict: k } : c;
  });
}

/**
 * The data keys wanted or used by two or more disks (backends and desired disks), at least one of them
 * writable: each with its users, by label.
 */
export function rwConflicts(ix: ObservedIndex, disks: readonly DiskCtx[]): Map<string, User[]> {
  const users = new Map<string, Map<string, User>>();
  const addUser = (identity: string, u: User): void => {
    let m = users.get(identity);
    if (!m) users.set(identity, (m = new Map()));
    const prev = m.get(u.key);
    if (prev) prev.writable ||= u.writable;
    else m.set(u.key, { ...u });
  };
  for (const i of ix.infos) {
    if (!i.active || i.identity === undefined) continue;
    const dom = domLabel(ix, i.b.frontendDomid);
    // A backend's block identities are all its physical-device.
    for (const k of addDataKeys(ix, addDataKeys(ix, new Set(), i.identity, i.pd), i.altIdentity, i.pd)) {
      addUser(k, { key: `d${i.b.frontendDomid}:${i.b.devid}`, label: `${dom} ${vdevName(i.b.devid)}${i.b.ours ? '' : ' (not xvbd\'s)'}`, writable: i.writable });
    }
  }
  for (const i of ix.infos) {
    if (i.reusedData === undefined) continue;
    addUser(i.reusedData, {
      key: `d${i.b.frontendDomid}:${i.b.devid}`,
      label: `${domLabel(ix, i.b.frontendDomid)} ${vdevName(i.b.devid)} (through reused ${i.b.physicalDevice})`,
      writable: i.writable,
    });
  }
  for (const c of disks) {
    for (const k of c.dataKeys) {
      addUser(k, { key: c.domid !== undefined ? `d${c.domid}:${c.disk.devid}` : `n${c.dom.name}:${c.disk.devid}`, label: `${c.dom.name} ${c.disk.vdev}`, writable: c.disk.mode === 'rw' });
    }
  }
  const out = new Map<string, User[]>();
  for (const [identity, m] of users) {
    if (m.size < 2) continue;
    const list = [...m.values()];
    if (list.some((u) => u.writable)) out.set(identity, list.sort((a, b) => cmp(a.label, b.label)));
  }
  return out;
}

/** One rw-shared finding per conflicting data key, reported for the first disk (in order) that wants it. */
export function rwSharedFindings(ix: ObservedIndex, disks: readonly DiskCtx[]): PlanOut {
  const out = new PlanOut();
  const conflicts = rwConflicts(ix, disks);
  const reported = new Set<string>();
  for (const c of disks) {
    if (c.conflict === undefined || reported.has(c.conflict)) continue;
    reported.add(c.conflict);
    const list = conflicts.get(c.conflict)!;
    out.finding(
      'rw-shared',
      'error',
      `${c.disk.source} is wanted or used by ${list.length} disks, at least one read-write: ${list.map((u) => `${u.label} (${u.writable ? 'rw' : 'ro'})`).join(', ')}; xvbd adds no further use`,
      'give a read-write file to one domain only (or make every use ro), then apply',
      { source: c.disk.source, sortDomain: c.dom.name, sortDevid: c.disk.devid },
    );
  }
  return out;
}

/**
 * The source checks of one disk: why no new use of its source may be made (missing, not the kind the
 * config says, unidentifiable, mounted in dom0, or in use by a loop device that is not ours), undefined
 * when one may, and the findings that say so.
 */
export function checkSource(c: DiskCtx, ix: ObservedIndex): { problem?: string; out: PlanOut } {
  const out = new PlanOut();
  const { disk } = c;
  const src = c.src;
  const f: FindingExtra = { domain: c.dom.name, vdev: disk.vdev, at: disk.at, source: disk.source, sortDomain: c.dom.name, sortDevid: disk.devid };
  const is = (k: 'block' | 'file') => (k === 'block' ? 'block device' : 'regular file');
  if (!src || !src.exists) {
    out.finding('source-missing', 'error', `${disk.source} does not exist${src?.error ? ` (${src.error})` : ''}`, `create it, or fix the path at ${disk.at.file}:${disk.at.line}`, f);
    return { problem: 'source missing', out };
  }
  if (src.kind !== disk.sourceKind) {
    const problem = `source is ${src.kind === 'other' || src.kind === undefined ? 'neither a regular file nor a block device' : `a ${is(src.kind)}`}`;
    out.finding(
      'source-missing',
      'error',
      `${disk.source}: ${src.error ?? problem}, the config expects a ${is(disk.sourceKind)}`,
      `put a ${is(disk.sourceKind)} there, or fix the path at ${disk.at.file}:${disk.at.line}`,
      f,
    );
    return { problem, out };
  }
  if (c.identity === undefined) {
    out.finding('source-missing', 'error', `${disk.source}: could not identify it (no inode / device number)`, 'check the path', f);
    return { problem: 'source identity unknown', out };
  }
  if (src.mounted) {
    out.finding('source-mounted', 'error', `${disk.source} is mounted in dom0; giving it to a guest would corrupt it`, 'unmount it in dom0, then apply', f);
    return { problem: 'source mounted in dom0', out };
  }
  if (c.conflict !== undefined) return { out }; // reported as rw-shared
  const problem = sourceInUse(c, ix, out, f);
  return problem !== undefined ? { problem, out } : { out };
}

/**
 * A loop device that is not ours (losetup, another xvbd instance) has the disk's file, in a way our
 * loop device could not coexist with (the disk read-write, or that device writable): every attach
 * would be refused, so the source is blocked and the device named. One this disk's own backend uses
 * is what serves it, not in the way.
 */
function sourceInUse(c: DiskCtx, ix: ObservedIndex, out: PlanOut, f: FindingExtra): string | undefined {
  if (c.disk.sourceKind !== 'file' || c.src?.kind !== 'file' || c.identity === undefined) return undefined;
  const inWay = (ix.foreignLoopsByFile.get(c.identity) ?? []).filter(
    (l) =>
      (c.disk.mode === 'rw' || !l.readOnly) &&
      !(ix.loopUsers.get(l.name) ?? []).some((u) => u.b.frontendDomid === c.domid && u.b.devid === c.disk.devid),
  );
  if (inWay.length === 0) return undefined;
  const names = inWay.map((l) => `/dev/${l.name} (${l.readOnly ? 'ro' : 'rw'})`).join(', ');
  out.finding(
    'source-in-use',
    'error',
    `${c.disk.source} has ${inWay.length === 1 ? 'a loop device' : 'loop devices'} that this xvbd did not make (losetup, or another xvbd instance): ${names}; xvbd cannot attach it ${c.disk.mode === 'rw' ? 'read-write' : 'next to a writable one'}`,
    `find who uses it (losetup -l; fuser -v ${inWay.map((l) => `/dev/${l.name}`).join(' ')}), free it (${inWay.map((l) => `losetup -d /dev/${l.name}`).join('; ')}), then apply`,
    { ...f, loops: inWay.map(loopRef) },
  );
  return `source in use by ${inWay.map((l) => `/dev/${l.name}`).join(', ')}`;
}
