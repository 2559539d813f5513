// The planner's index of one observation, built once and only read afterwards: domains by name and
// domid, loop devices by device number and by sharing key, backends by vbd (frontend, devid) with what
// each serves, and who uses which loop device. Every later stage of plan() looks things up here.
import type { BackendObs, LoopObs, ObservedState } from '../model/observed.js';
import type { BackendRef } from '../model/plan.js';
import { backedUnder } from '../config/paths.js';
import { backendRef, blockKey, devKey, fileKey, paramsPath, type DevNum } from './identity.js';
import { readPhysicalDevice } from '../xen/vbd.js';

/** What the planner derived about one observed backend. */
export interface BackendInfo {
  b: BackendObs;
  ref: BackendRef;
  /** Parsed physical-device, if written and well-formed. */
  pd?: DevNum;
  /** The loop device now at physical-device (if any), whatever its diskseq. */
  loopAtPd?: LoopObs;
  /** physical-device names a loop device but the recorded diskseq differs (or the loop is gone). */
  loopReused: 'no' | 'reused' | 'gone';
  /** Identity of what it serves: "f:dev:ino" / "b:maj:min"; undefined if unknown. */
  identity?: string;
  /**
   * A second identity it may equally be said to serve: another tool's backend at a loop device
   * serves both the loop's backing file and the device itself ("b:7:3"), and which one its disk spec
   * named is not recorded. Ours record which (xvbd-inode for a file, none for a block device).
   */
  altIdentity?: string;
  /** The backend actually uses its identity now (physical-device written and resolvable). */
  active: boolean;
  /**
   * physical-device names a number now bound to another device (loopReused 'reused'): blkback may open
   * it at any moment, so the backend counts as a user of that device's data (fileKey of its backing).
   */
  reusedData?: string;
  /** The path its params names. */
  params?: string;
  /** mode "r" -> false; "w" or anything else (or missing) -> true (conservative). */
  writable: boolean;
}

export interface ObservedIndex {
  readonly domidsByName: ReadonlyMap<string, readonly number[]>;
  readonly nameByDomid: ReadonlyMap<number, string>;
  readonly runningDomids: ReadonlySet<number>;
  /** Every loop device, by number. */
  readonly loops: readonly LoopObs[];
  readonly loopByDev: ReadonlyMap<string, LoopObs>;
  /** Loop devices not ours, by backing file (fileKey): a scan per disk would be quadratic at 1,000 disks. */
  readonly foreignLoopsByFile: ReadonlyMap<string, readonly LoopObs[]>;
  /** Every backend, by (frontend, devid, backend domain, path). */
  readonly infos: readonly BackendInfo[];
  /** Backends by vbd: feKey(frontend domid, devid). */
  readonly backendsAt: ReadonlyMap<string, readonly BackendInfo[]>;
  /** Backends using each loop device (by name), diskseq-consistent. */
  readonly loopUsers: ReadonlyMap<string, readonly BackendInfo[]>;
  /** How many active backends share each physical-device (by devKey). */
  readonly pdUsers: ReadonlyMap<string, number>;
  /** Every diskseq a backend records. */
  readonly recordedDiskseqs: ReadonlySet<string>;
  /** Our read-only loop devices a new read-only use may share, by shareKey (backing inode and options). */
  readonly roLoopsByKey: ReadonlyMap<string, readonly LoopObs[]>;
  /** The one of each sharing key a new read-only use shares: the most used, then the lowest numbered. */
  readonly bestByKey: ReadonlyMap<string, LoopObs>;
  /** policy.allowedRoots, which decide which loop devices can be ours. */
  readonly roots: readonly string[];
}

/** The logical block size a loop device gets when the disk names none (src/linux's sharing rule). */
export const DEFAULT_BLOCK_SIZE = 512;

export function cmp(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function feKey(fe: number, devid: number): string {
  return `${fe}:${devid}`;
}

export function shareKey(file: string, directIo: boolean, blockSize: number | undefined): string {
  return `${file}|${directIo ? 'dio' : 'buffered'}|${blockSize ?? '?'}`;
}

/** Domain label for a frontend domid: its name if running and named, else "domid N". */
export function domLabel(ix: Pick<ObservedIndex, 'nameByDomid'>, domid: number): string {
  return ix.nameByDomid.get(domid) ?? `domid ${domid}`;
}

/**
 * Whether a loop device is ours: its marker, and with allowedRoots a file under them (xvbd can only ever
 * have made loop devices of files under them: one elsewhere is never ours to share, report or free,
 * whatever its lo_file_name says).
 */
export function ownLoop(ix: Pick<ObservedIndex, 'roots'>, l: LoopObs): boolean {
  if (!l.ours) return false;
  return ix.roots.length === 0 || backedUnder(l.backingPath, ix.roots);
}

/**
 * Adds identity `id` to `out` and, when `id` is block device `dev` and that is a loop device, its backing
 * file's: a block device that is a loop device holds its backing file's data, so users of either are users
 * of the same data (a `device: /dev/loop3` disk and a `file:` disk of loop3's backing file).
 */
export function addDataKeys(ix: Pick<ObservedIndex, 'loopByDev'>, out: Set<string>, id: string | undefined, dev: DevNum | undefined): Set<string> {
  if (id === undefined) return out;
  out.add(id);
  const l = dev && id === blockKey(dev.major, dev.minor) ? ix.loopByDev.get(devKey(dev)) : undefined;
  if (l) out.add(fileKey(l.backing));
  return out;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

/** The index of `observed`, for a policy with these allowedRoots. */
export function indexObserved(observed: ObservedState, allowedRoots: readonly string[]): ObservedIndex {
  const domidsByName = new Map<string, number[]>();
  const nameByDomid = new Map<number, string>();
  const runningDomids = new Set<number>();
  for (const d of observed.domains) {
    runningDomids.add(d.domid);
    if (d.name === undefined) continue;
    nameByDomid.set(d.domid, d.name);
    push(domidsByName, d.name, d.domid);
  }
  const loops = [...observed.loops].sort((a, b) => a.number - b.number || cmp(a.name, b.name));
  const loopByDev = new Map<string, LoopObs>();
  const foreignLoopsByFile = new Map<string, LoopObs[]>();
  for (const l of loops) {
    loopByDev.set(devKey(l), l);
    if (l.ours) continue;
    const k = fileKey(l.backing);
    const list = foreignLoopsByFile.get(k);
    if (list) list.push(l);
    else foreignLoopsByFile.set(k, [l]);
  }

  const backends = [...observed.backends].sort(
    (a, b) => a.frontendDomid - b.frontendDomid || a.devid - b.devid || a.backendDomid - b.backendDomid || cmp(a.path, b.path),
  );
  const infos: BackendInfo[] = [];
  const backendsAt = new Map<string, BackendInfo[]>();
  const loopUsers = new Map<string, BackendInfo[]>();
  const pdUsers = new Map<string, number>();
  const recordedDiskseqs = new Set<string>();
  for (const b of backends) {
    const info = describeBackend(b, loopByDev);
    infos.push(info);
    push(backendsAt, feKey(b.frontendDomid, b.devid), info);
    if (b.diskseq !== undefined) recordedDiskseqs.add(b.diskseq);
    if (info.loopAtPd && info.loopReused === 'no') push(loopUsers, info.loopAtPd.name, info);
    if (info.pd && info.active) pdUsers.set(devKey(info.pd), (pdUsers.get(devKey(info.pd)) ?? 0) + 1);
  }
  const roots = [...allowedRoots];
  const roLoopsByKey = sharableLoops({ roots }, loops);
  return {
    domidsByName,
    nameByDomid,
    runningDomids,
    loops,
    foreignLoopsByFile,
    loopByDev,
    infos,
    backendsAt,
    loopUsers,
    pdUsers,
    recordedDiskseqs,
    roLoopsByKey,
    bestByKey: bestOfEachKey(roLoopsByKey, loopUsers),
    roots,
  };
}

/**
 * Loop devices available for sharing (ours, read-only, whole file, backing file not deleted), by sharing
 * key. The key is src/linux's sharing rule (registry optionsMatch): same direct I/O, and a logical block
 * size equal to the disk's (512 when it names none). A loop whose block size is unknown is never chosen.
 * Two read-only devices of one file with different options are no duplicates.
 */
function sharableLoops(ix: Pick<ObservedIndex, 'roots'>, loops: readonly LoopObs[]): Map<string, LoopObs[]> {
  const out = new Map<string, LoopObs[]>();
  for (const l of loops) {
    if (!ownLoop(ix, l) || !l.readOnly || l.backingDeleted) continue;
    if (l.offset !== '0' || l.sizeLimit !== '0') continue;
    push(out, shareKey(fileKey(l.backing), l.directIo, l.blockSize), l);
  }
  return out;
}

/** The one a new read-only use shares: the most used, then the lowest numbered. */
function bestOfEachKey(byKey: ReadonlyMap<string, readonly LoopObs[]>, loopUsers: ReadonlyMap<string, readonly BackendInfo[]>): Map<string, LoopObs> {
  const usersOf = (l: LoopObs): number => loopUsers.get(l.name)?.length ?? 0;
  const out = new Map<string, LoopObs>();
  for (const [k, ls] of byKey) {
    let best = ls[0]!;
    for (const l of ls) if (usersOf(l) > usersOf(best) || (usersOf(l) === usersOf(best) && l.number < best.number)) best = l;
    out.set(k, best);
  }
  return out;
}

export function describeBackend(b: BackendObs, loopByDev: ReadonlyMap<string, LoopObs>): BackendInfo {
  const info: BackendInfo = {
    b,
    ref: backendRef(b),
    loopReused: 'no',
    active: false,
    writable: b.mode !== 'r',
  };
  const params = paramsPath(b.params);
  if (params !== undefined) info.params = params;
  const pd = readPhysicalDevice(b.physicalDevice);
  if (!pd) return info;
  info.pd = pd;
  const loop = loopByDev.get(devKey(pd));
  // What the backend was served from: a file (we recorded its inode, xvbd-inode), a block device
  // used as is (ours, no inode recorded: its identity is its device number, even when that device
  // is a loop device someone else made), or, for another tool's backend, either.
  const via = b.sourceInode ? 'file' : b.ours ? 'block' : 'unknown';
  if (loop) {
    info.loopAtPd = loop;
    if (b.diskseq !== undefined && b.diskseq !== loop.diskseq) {
      // The device we served is gone and its number given to another (diskseq differs).
      info.loopReused = 'reused';
      info.reusedData = fileKey(loop.backing);
      if (b.sourceInode) info.identity = fileKey(b.sourceInode);
      else if (via === 'block') info.identity = blockKey(pd.major, pd.minor);
    } else if (via === 'block') {
      info.identity = blockKey(pd.major, pd.minor);
      info.active = true;
    } else {
      info.identity = fileKey(loop.backing);
      if (via === 'unknown') info.altIdentity = blockKey(pd.major, pd.minor);
      info.active = true;
    }
  } else if (b.sourceInode) {
    // We recorded a file: it was served through a loop device, which is gone now.
    info.loopReused = 'gone';
    info.identity = fileKey(b.sourceInode);
  } else {
    info.identity = blockKey(pd.major, pd.minor);
    info.active = true;
  }
  return info;
}
