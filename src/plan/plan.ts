// The pure planner: plan(desired, observed, policy) -> Plan. No I/O, no clock, deterministic order.
// Every observed collection is indexed once (by (frontend, devid), by device number, by inode), so a
// plan is O(n log n) in the number of disks, backends and loop devices.
//
// Principles:
// - Identity is by inode (files) or device number (block devices), never by path.
// - xvbd only ever changes what it owns (backend marker `xvbd`, loop marker) and only detaches /
//   frees with policy.prune. Backends of other tools are reported, never touched.
// - A read-write file is never given to two users: any attach/serve/replace that would make a
//   file be used by two (domain, vdev) pairs with one of them writable is refused (rw-shared).
// - A finding is drift that this plan does not fix (or that stays worth knowing: rw-shared,
//   loop-reused, backend-error...). What an action fixes is not repeated as a finding.
import type { DesiredState, DiskOptions, DiskSpec, DomainSpec, Policy } from '../model/desired.js';
import type { BackendObs, Inode, LoopObs, ObservedState, SourceObs } from '../model/observed.js';
import { XenbusState, xenbusStateName } from '../model/observed.js';
import { backedUnder } from '../config/paths.js';
import { holdVerdict } from './holding.js';
import { vbdKey } from './outside.js';
import { letGoVerdict, saveCommand, type LetGo } from './safety.js';
import { replaceKey } from './target.js';
import type {
  Action,
  BackendRef,
  DiskStatus,
  Finding,
  FindingKind,
  Health,
  LoopRef,
  Plan,
  Severity,
} from '../model/plan.js';
import {
  backendRef,
  blockKey,
  devKey,
  fileKey,
  loopRef,
  modeWords,
  paramsPath,
  parseDecDev,
  parseHexDev,
  scriptIsOurs,
  vdevName,
  type DevNum,
} from './identity.js';

/** What the planner derived about one observed backend. */
interface BackendInfo {
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

interface User {
  key: string;
  label: string;
  writable: boolean;
}

/** Findings about loop devices alone sort after every domain's. */
const LOOP_SORT = '\uffff\uffff';

const ACTION_RANK: Record<Action['kind'], number> = { offline: 0, hold: 1, detach: 2, replace: 3, serve: 4, attach: 5, 'free-loop': 6 };

/**
 * Which actions run ahead of every domain's: taking dangling backends offline before anything is
 * allocated (so a freed number handed out in this pass is never named by a live backend), and taking
 * back unheld devices before anything else can go wrong. Loop frees run last.
 */
function phase(kind: Action['kind']): number {
  if (kind === 'offline' || kind === 'hold') return 0;
  return kind === 'free-loop' ? 2 : 1;
}

function cmp(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmpTuple(a: (string | number)[], b: (string | number)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const c = cmp(a[i] ?? '', b[i] ?? '');
    if (c !== 0) return c;
  }
  return 0;
}

function feKey(fe: number, devid: number): string {
  return `${fe}:${devid}`;
}

/** Domain label for a frontend domid: its name if running and named, else "domid N". */
function domLabel(names: Map<number, string>, domid: number): string {
  return names.get(domid) ?? `domid ${domid}`;
}

export function plan(desired: DesiredState, observed: ObservedState, policy: Policy = desired.policy): Plan {
  const actions: { a: Action; key: (string | number)[] }[] = [];
  const findings: { f: Finding; key: (string | number)[] }[] = [];
  const disks: DiskStatus[] = [];

  const addFinding = (
    kind: FindingKind,
    severity: Severity,
    message: string,
    fix: string,
    extra: Partial<Finding> & { sortDomain?: string; sortDevid?: number } = {},
  ): void => {
    const { sortDomain, sortDevid, ...rest } = extra;
    const f: Finding = { kind, severity, message, fix, ...rest };
    findings.push({ f, key: [sortDomain ?? rest.domain ?? '\uffff', sortDevid ?? -1, kind, message] });
  };
  /** Prune replaces every desired disk whose backend differs; -replace (policy.replace) just the ones named. */
  const mayReplace = (domain: string, devid: number): boolean => policy.prune || policy.replace?.has(replaceKey(domain, devid)) === true;
  const addAction = (a: Action, domainSort: string, fe: number, devid: number, extra = 0): void => {
    actions.push({ a, key: [phase(a.kind), domainSort, fe, devid, ACTION_RANK[a.kind], extra] });
  };

  // ---- domains -------------------------------------------------------------------------------
  const domidsByName = new Map<string, number[]>();
  const nameByDomid = new Map<number, string>();
  const runningDomids = new Set<number>();
  for (const d of observed.domains) {
    runningDomids.add(d.domid);
    if (d.name === undefined) continue;
    nameByDomid.set(d.domid, d.name);
    const l = domidsByName.get(d.name);
    if (l) l.push(d.domid);
    else domidsByName.set(d.name, [d.domid]);
  }

  // ---- loops ---------------------------------------------------------------------------------
  const loops = [...observed.loops].sort((a, b) => a.number - b.number || cmp(a.name, b.name));
  // other tools' loop devices by backing file, made once (sourceInUse: a scan per disk is quadratic at 1,000)
  let foreignByFile: Map<string, typeof loops> | undefined;
  // With allowedRoots, xvbd can only ever have made loop devices of files under them: one elsewhere
  // is never ours to share, report or free, whatever its lo_file_name says.
  const roots = policy.allowedRoots;
  const ownLoop = (l: LoopObs): boolean => {
    if (!l.ours) return false;
    return roots.length === 0 || backedUnder(l.backingPath, roots);
  };
  const loopByDev = new Map<string, LoopObs>();
  for (const l of loops) loopByDev.set(devKey(l), l);

  // ---- backends ------------------------------------------------------------------------------
  const backends = [...observed.backends].sort(
    (a, b) => a.frontendDomid - b.frontendDomid || a.devid - b.devid || a.backendDomid - b.backendDomid || cmp(a.path, b.path),
  );
  const infos: BackendInfo[] = [];
  const backendsAt = new Map<string, BackendInfo[]>();
  /** Backends using each loop device (by name), diskseq-consistent. */
  const loopUsers = new Map<string, BackendInfo[]>();
  /** How many active backends share each physical-device. */
  const pdUsers = new Map<string, number>();
  const recordedDiskseqs = new Set<string>();
  for (const b of backends) {
    const info = describeBackend(b, loopByDev);
    infos.push(info);
    const k = feKey(b.frontendDomid, b.devid);
    const at = backendsAt.get(k);
    if (at) at.push(info);
    else backendsAt.set(k, [info]);
    if (b.diskseq !== undefined) recordedDiskseqs.add(b.diskseq);
    if (info.loopAtPd && info.loopReused === 'no') {
      const u = loopUsers.get(info.loopAtPd.name);
      if (u) u.push(info);
      else loopUsers.set(info.loopAtPd.name, [info]);
    }
    if (info.pd && info.active) pdUsers.set(devKey(info.pd), (pdUsers.get(devKey(info.pd)) ?? 0) + 1);
  }

  // A block device that is a loop device holds its backing file's data: users of either are users
  // of the same data (a `device: /dev/loop3` disk and a `file:` disk of loop3's backing file).
  /** Adds identity `id` to `out` and, when `id` is block device `dev` and that is a loop device, its backing file's. */
  const addDataKeys = (out: Set<string>, id: string | undefined, dev: DevNum | undefined): Set<string> => {
    if (id === undefined) return out;
    out.add(id);
    const l = dev && id === blockKey(dev.major, dev.minor) ? loopByDev.get(devKey(dev)) : undefined;
    if (l) out.add(fileKey(l.backing));
    return out;
  };

  // ---- desired disks, in order -----------------------------------------------------------------
  const domains = [...desired.domains].sort((a, b) => cmp(a.name, b.name));
  const desiredNames = new Set(domains.map((d) => d.name));
  interface DiskCtx {
    dom: DomainSpec;
    disk: DiskSpec;
    domid?: number;
    ambiguous?: number[];
    src?: SourceObs;
    identity?: string;
    /** Its identity and, for a loop device, its backing file's: the keys of the data it wants. */
    dataKeys: string[];
    /** Why no new use of the source may be created (missing, mounted, ...): set by source checks. */
    sourceProblem?: string;
    /** The data key under which its source is wanted or used read-write by another disk too. */
    conflict?: string;
  }
  const ctxs: DiskCtx[] = [];
  for (const dom of domains) {
    const ids = domidsByName.get(dom.name) ?? [];
    const sortedDisks = [...dom.disks].sort((a, b) => a.devid - b.devid || cmp(a.vdev, b.vdev));
    for (const disk of sortedDisks) {
      const src = Object.hasOwn(observed.sources, disk.source) ? observed.sources[disk.source] : undefined;
      const identity = sourceIdentity(src);
      const c: DiskCtx = { dom, disk, dataKeys: [...addDataKeys(new Set(), identity, src?.kind === 'block' ? parseDecDev(src.rdev) : undefined)] };
      if (ids.length === 1) c.domid = ids[0]!;
      else if (ids.length > 1) c.ambiguous = [...ids].sort((a, b) => a - b);
      if (src) c.src = src;
      c.identity = identity;
      ctxs.push(c);
    }
  }

  // ---- users of every identity, for rw-shared ------------------------------------------------
  const users = new Map<string, Map<string, User>>();
  const addUser = (identity: string, u: User): void => {
    let m = users.get(identity);
    if (!m) users.set(identity, (m = new Map()));
    const prev = m.get(u.key);
    if (prev) {
      prev.writable ||= u.writable;
    } else {
      m.set(u.key, { ...u });
    }
  };
  for (const i of infos) {
    if (!i.active || i.identity === undefined) continue;
    const dom = domLabel(nameByDomid, i.b.frontendDomid);
    // A backend's block identities are all its physical-device.
    for (const k of addDataKeys(addDataKeys(new Set(), i.identity, i.pd), i.altIdentity, i.pd)) {
      addUser(k, {
        key: `d${i.b.frontendDomid}:${i.b.devid}`,
        label: `${dom} ${vdevName(i.b.devid)}${i.b.ours ? '' : ' (not xvbd\'s)'}`,
        writable: i.writable,
      });
    }
  }
  for (const i of infos) {
    if (i.reusedData === undefined) continue;
    addUser(i.reusedData, {
      key: `d${i.b.frontendDomid}:${i.b.devid}`,
      label: `${domLabel(nameByDomid, i.b.frontendDomid)} ${vdevName(i.b.devid)} (through reused ${i.b.physicalDevice})`,
      writable: i.writable,
    });
  }
  for (const c of ctxs) {
    for (const k of c.dataKeys) {
      addUser(k, {
        key: c.domid !== undefined ? `d${c.domid}:${c.disk.devid}` : `n${c.dom.name}:${c.disk.devid}`,
        label: `${c.dom.name} ${c.disk.vdev}`,
        writable: c.disk.mode === 'rw',
      });
    }
  }
  const rwConflict = new Map<string, User[]>();
  for (const [identity, m] of users) {
    if (m.size < 2) continue;
    const list = [...m.values()];
    if (list.some((u) => u.writable)) rwConflict.set(identity, list.sort((a, b) => cmp(a.label, b.label)));
  }
  for (const c of ctxs) {
    const k = c.dataKeys.find((x) => rwConflict.has(x));
    if (k !== undefined) c.conflict = k;
  }
  const rwReported = new Set<string>();
  const reportRw = (identity: string, source: string | undefined, domain?: string, devid?: number): void => {
    if (rwReported.has(identity)) return;
    rwReported.add(identity);
    const list = rwConflict.get(identity)!;
    const what = source ?? identity;
    const f: Partial<Finding> & { sortDomain?: string; sortDevid?: number } = {};
    if (source !== undefined) f.source = source;
    if (domain !== undefined) f.sortDomain = domain;
    if (devid !== undefined) f.sortDevid = devid;
    addFinding(
      'rw-shared',
      'error',
      `${what} is wanted or used by ${list.length} disks, at least one read-write: ${list.map((u) => `${u.label} (${u.writable ? 'rw' : 'ro'})`).join(', ')}; xvbd adds no further use`,
      'give a read-write file to one domain only (or make every use ro), then apply',
      f,
    );
  };

  // ---- loop devices available for sharing (ours, read-only, by backing inode and options) ------
  // The key is src/linux's sharing rule (registry optionsMatch): same direct I/O, and a logical block
  // size equal to the disk's (512 when it names none). A loop whose block size is unknown is never
  // chosen. Two read-only devices of one file with different options are no duplicates.
  const roLoopsByKey = new Map<string, LoopObs[]>();
  for (const l of loops) {
    if (!ownLoop(l) || !l.readOnly || l.backingDeleted) continue;
    if (l.offset !== '0' || l.sizeLimit !== '0') continue;
    const k = shareKey(fileKey(l.backing), l.directIo, l.blockSize);
    const arr = roLoopsByKey.get(k);
    if (arr) arr.push(l);
    else roLoopsByKey.set(k, [l]);
  }
  /** Why no new use of the disk's source may be created, or undefined when one may. */
  const blocked = (c: DiskCtx): string | undefined => c.sourceProblem ?? (c.conflict !== undefined ? 'read-write file shared' : undefined);
  // The one a new read-only use shares: the most used, then the lowest numbered (users are known by now).
  const bestByKey = new Map<string, LoopObs>();
  const usersOf = (l: LoopObs): number => loopUsers.get(l.name)?.length ?? 0;
  for (const [k, ls] of roLoopsByKey) {
    let best = ls[0]!;
    for (const l of ls) if (usersOf(l) > usersOf(best) || (usersOf(l) === usersOf(best) && l.number < best.number)) best = l;
    bestByKey.set(k, best);
  }
  const reusedInPlan = new Set<string>();
  const pickReuse = (c: DiskCtx): LoopRef | undefined => {
    if (c.disk.mode !== 'ro' || c.src?.kind !== 'file' || c.identity === undefined) return undefined;
    const o = c.disk.options;
    const best = bestByKey.get(shareKey(c.identity, o.directIo, o.blockSize ?? DEFAULT_BLOCK_SIZE));
    if (!best) return undefined;
    reusedInPlan.add(best.name);
    return loopRef(best);
  };
  /** Plans an attach, serve or replace for disk `c`, sharing a read-only loop device when one fits. */
  const propose = (a: Extract<Action, { kind: 'attach' | 'serve' | 'replace' }>, c: DiskCtx): void => {
    const reuse = pickReuse(c);
    if (reuse) a.reuseLoop = reuse;
    addAction(a, a.domain, a.domid, a.disk.devid);
  };

  // ---- served devices: dangling physical-devices and holders (desired or not) ---------------------
  /** Our backends whose physical-device this plan removes -> whether it closes the backend too. */
  const offlined = new Map<BackendInfo, boolean>();
  for (const i of infos) {
    if (!i.b.ours) continue;
    if (i.loopReused !== 'no') offlined.set(i, planOffline(i));
    else planHold(i);
  }

  // ---- evaluate each desired disk --------------------------------------------------------------
  const matchedBackends = new Set<BackendInfo>();
  for (const c of ctxs) {
    const { dom, disk } = c;
    const base = { domain: dom.name, vdev: disk.vdev, at: disk.at };
    const sortExtra = { sortDomain: dom.name, sortDevid: disk.devid };
    const row: DiskStatus = {
      domain: dom.name,
      vdev: disk.vdev,
      devid: disk.devid,
      source: disk.source,
      mode: disk.mode,
      sync: 'unknown',
      health: 'missing',
      sharedBy: 0,
    };
    if (c.domid !== undefined) row.domid = c.domid;
    disks.push(row);

    // Source checks: each blocks any new use of the source.
    const src = c.src;
    if (!src || !src.exists) {
      c.sourceProblem = 'source missing';
      addFinding(
        'source-missing',
        'error',
        `${disk.source} does not exist${src?.error ? ` (${src.error})` : ''}`,
        `create it, or fix the path at ${disk.at.file}:${disk.at.line}`,
        { ...base, source: disk.source, ...sortExtra },
      );
    } else if (src.kind !== disk.sourceKind) {
      c.sourceProblem = `source is ${src.kind === 'other' || src.kind === undefined ? 'neither a regular file nor a block device' : `a ${src.kind === 'block' ? 'block device' : 'regular file'}`}`;
      addFinding(
        'source-missing',
        'error',
        `${disk.source}: ${src.error ?? c.sourceProblem}, the config expects a ${disk.sourceKind === 'block' ? 'block device' : 'regular file'}`,
        `put a ${disk.sourceKind === 'block' ? 'block device' : 'regular file'} there, or fix the path at ${disk.at.file}:${disk.at.line}`,
        { ...base, source: disk.source, ...sortExtra },
      );
    } else if (c.identity === undefined) {
      c.sourceProblem = 'source identity unknown';
      addFinding('source-missing', 'error', `${disk.source}: could not identify it (no inode / device number)`, 'check the path', {
        ...base,
        source: disk.source,
        ...sortExtra,
      });
    } else if (src.mounted) {
      c.sourceProblem = 'source mounted in dom0';
      addFinding(
        'source-mounted',
        'error',
        `${disk.source} is mounted in dom0; giving it to a guest would corrupt it`,
        'unmount it in dom0, then apply',
        { ...base, source: disk.source, ...sortExtra },
      );
    }
    if (c.conflict !== undefined) {
      reportRw(c.conflict, disk.source, dom.name, disk.devid);
    } else if (c.sourceProblem === undefined) {
      sourceInUse(c, { ...base, source: disk.source, ...sortExtra });
    }

    // Domain.
    if (c.ambiguous) {
      row.sync = 'unknown';
      row.health = 'missing';
      row.healthReason = `name used by domids ${c.ambiguous.join(', ')}`;
      addFinding(
        'domain-not-running',
        'warning',
        `domain name ${dom.name} is used by several domains (domids ${c.ambiguous.join(', ')}); xvbd does not guess`,
        'rename or destroy the stale domain',
        { ...base, ...sortExtra },
      );
      // Whichever of them is meant, its backend on this vdev is desired: never detach it.
      for (const id of c.ambiguous) for (const i of backendsAt.get(feKey(id, disk.devid)) ?? []) matchedBackends.add(i);
      continue;
    }
    if (c.domid === undefined) {
      row.sync = 'pending';
      row.health = 'missing';
      row.healthReason = 'domain not running';
      addFinding('domain-not-running', 'info', `${dom.name} is not running; ${disk.vdev} will be attached when it runs`, 'start the domain', {
        ...base,
        ...sortExtra,
      });
      continue;
    }
    const domid = c.domid;

    // Backends on this vdev.
    const here = backendsAt.get(feKey(domid, disk.devid)) ?? [];
    for (const i of here) matchedBackends.add(i);
    const bi = here.find((i) => i.b.backendDomid === disk.backendDomid) ?? here[0];
    for (const other of here) {
      if (other === bi) continue;
      extraBackendOnVdev(other, dom.name, disk);
    }

    if (!bi) {
      row.health = 'missing';
      row.healthReason = 'no backend';
      row.sync = 'out-of-sync';
      const why = blocked(c);
      if (why !== undefined) {
        row.healthReason = `no backend (${why})`;
        continue;
      }
      if (policy.serve === 'hook') {
        addFinding(
          'missing-backend',
          'warning',
          `${dom.name} has no backend for ${disk.vdev}, and policy serve=hook leaves creating it to the toolstack`,
          `add "${disk.vdev}" with script=xvbd to the domain's xl config (xl block-attach), or set policy serve to attach or both`,
          { ...base, source: disk.source, ...sortExtra },
        );
        continue;
      }
      if (policy.detachedOutside?.has(vbdKey(domid, disk.devid))) {
        row.healthReason = 'detached outside xvbd';
        addFinding(
          'detached-outside',
          'warning',
          `${dom.name} ${disk.vdev}: its backend was removed outside xvbd while ${dom.name} runs (xl block-detach, or the domain being destroyed); the daemon does not put it back by itself`,
          'run `xvbd apply` or `xvbd reconcile` to attach it again',
          { ...base, source: disk.source, ...sortExtra },
        );
        continue;
      }
      propose({ kind: 'attach', domain: dom.name, domid, disk }, c);
      continue;
    }

    // There is a backend.
    const b = bi.b;
    fillBackendCells(row, bi);
    const h = health(bi);
    row.health = h.health;
    if (h.reason !== undefined) row.healthReason = h.reason;
    backendChecks(bi, dom.name, disk.vdev);

    const wantW = disk.mode === 'rw';
    const modeOk = b.mode === (wantW ? 'w' : 'r');
    const beOk = b.backendDomid === disk.backendDomid;
    // in the config's words (rw/ro), not xenstore's (w/r)
    const modeText = `mode ${modeWords(b.mode)}, desired ${disk.mode}`;

    if (!bi.pd || offlined.get(bi) === false) {
      // Hotplug pending: the toolstack (or our own interrupted attach) wrote the dir, nobody
      // provided the device yet (or this plan takes a gone device's physical-device away first).
      // Whatever follows, the disk is not served yet.
      row.sync = 'out-of-sync';
      const paramsOk = bi.params === disk.source;
      const servable = b.ours || scriptIsOurs(b.script);
      if (b.hotplugStatus === 'error') continue; // backendChecks reported it
      if (!servable) {
        row.health = 'progressing';
        row.healthReason = `hotplug pending (script ${b.script})`;
        addFinding(
          'unexpected-backend',
          'warning',
          `${dom.name} ${disk.vdev}: backend ${b.path} belongs to another tool (script ${b.script}); xvbd never touches it`,
          `use script=xvbd for this disk in the xl config, or remove ${disk.vdev} from the xvbd config`,
          { ...base, backend: bi.ref, ...sortExtra },
        );
        continue;
      }
      if (!paramsOk || !beOk) {
        const what = !paramsOk ? `names ${b.params ?? '(no params)'}, desired ${disk.source}` : `is served by domain ${b.backendDomid}, desired ${disk.backendDomid}`;
        mismatch(bi, c, 'source-mismatch', what);
        continue;
      }
      if (!modeOk) {
        mismatch(bi, c, 'mode-mismatch', modeText);
        continue;
      }
      if (!b.ours && policy.serve === 'attach') {
        addFinding(
          'unexpected-backend',
          'warning',
          `${dom.name} ${disk.vdev}: the toolstack created ${b.path} for xvbd to serve, but policy serve=attach`,
          'set policy serve to hook or both',
          { ...base, backend: bi.ref, ...sortExtra },
        );
        continue;
      }
      const why = blocked(c);
      if (why !== undefined) {
        row.healthReason = `hotplug pending (${why})`;
        continue;
      }
      propose({ kind: 'serve', domain: dom.name, domid, disk, backend: bi.ref }, c);
      continue;
    }

    // Active backend: compare what it serves with what is desired.
    const problems: { kind: FindingKind; text: string }[] = [];
    if (bi.loopReused !== 'no') {
      problems.push({
        kind: 'loop-reused',
        text:
          bi.loopReused === 'gone'
            ? `no loop device is bound at physical-device ${b.physicalDevice} any more`
            : `the loop device at ${b.physicalDevice} (${bi.loopAtPd!.name}) has diskseq ${bi.loopAtPd!.diskseq}, the backend recorded ${b.diskseq}`,
      });
    }
    if (!beOk) problems.push({ kind: 'source-mismatch', text: `served by domain ${b.backendDomid}, desired ${disk.backendDomid}` });
    const same = c.identity !== undefined && (bi.identity === c.identity || bi.altIdentity === c.identity);
    if (bi.identity !== undefined && c.identity !== undefined && !same && bi.loopReused === 'no') {
      problems.push({ kind: 'source-mismatch', text: `serves ${describeIdentity(bi)}, desired ${disk.source}` });
    }
    // A file served through a loop device: the device must have the desired options.
    if (same && disk.sourceKind === 'file' && bi.loopAtPd && bi.loopReused === 'no' && bi.identity === c.identity) {
      const diff = optionsDiff(bi.loopAtPd, disk.options);
      if (diff !== undefined) problems.push({ kind: 'options-mismatch', text: `/dev/${bi.loopAtPd.name} has ${diff}` });
    }
    if (!modeOk) problems.push({ kind: 'mode-mismatch', text: modeText });
    else if (wantW && bi.loopAtPd && bi.loopReused === 'no' && bi.loopAtPd.readOnly) {
      problems.push({ kind: 'mode-mismatch', text: `mode rw, but /dev/${bi.loopAtPd.name} is read-only` });
    }

    if (!b.ours) {
      if (problems.length === 0 && same) {
        row.sync = 'synced';
        addFinding(
          'unexpected-backend',
          'info',
          `${dom.name} ${disk.vdev} is served as desired, but by another tool (${b.script ?? 'no script'}); xvbd leaves it alone`,
          'nothing to do; to let xvbd manage it, detach it (xl block-detach) and apply',
          { ...base, backend: bi.ref, ...sortExtra },
        );
      } else {
        row.sync = bi.identity === undefined ? 'unknown' : 'out-of-sync';
        const texts = problems.map((p) => p.text);
        if (bi.identity === undefined) texts.push('what it serves is unknown');
        addFinding(
          'unexpected-backend',
          'warning',
          `${dom.name} ${disk.vdev}: backend ${b.path} is not xvbd's${texts.length ? ` (${texts.join('; ')})` : ''}; xvbd never touches it`,
          `detach it yourself (xl block-detach ${dom.name} ${disk.vdev}) and apply, or remove ${disk.vdev} from the config`,
          { ...base, backend: bi.ref, ...sortExtra },
        );
      }
      continue;
    }

    if (problems.length === 0) {
      if (bi.identity === undefined || c.identity === undefined) {
        row.sync = 'unknown';
      } else {
        row.sync = 'synced';
      }
      if (c.conflict !== undefined && row.health === 'healthy') {
        row.health = 'degraded';
        row.healthReason = 'read-write file used elsewhere too';
      }
      continue;
    }
    row.sync = 'out-of-sync';
    // loop-reused is always reported: it means the guest may see another file.
    for (const p of problems) {
      if (p.kind === 'loop-reused') {
        addFinding('loop-reused', 'error', `${dom.name} ${disk.vdev}: ${p.text}`, mayReplace(dom.name, disk.devid) ? 'apply replaces the backend' : 'apply with prune replaces the backend', {
          ...base,
          backend: bi.ref,
          ...(bi.loopAtPd ? { loops: [loopRef(bi.loopAtPd)] } : {}),
          ...sortExtra,
        });
      }
    }
    const why = blocked(c);
    const reason = problems.map((p) => p.text).join('; ');
    if (mayReplace(dom.name, disk.devid) && why === undefined) {
      const note = guardLetGo('replace', bi, `${dom.name} ${disk.vdev}: ${reason}`, { ...base, backend: bi.ref, source: disk.source, ...sortExtra });
      if (note !== undefined) propose({ kind: 'replace', domain: dom.name, domid, disk, backend: bi.ref, reason: reason + note }, c);
    } else {
      for (const p of problems) {
        if (p.kind === 'loop-reused') continue;
        addFinding(
          p.kind,
          'warning',
          `${dom.name} ${disk.vdev}: ${p.text}`,
          why !== undefined ? `fix the source first (${why}), then apply with prune` : 'apply with prune replaces the backend (the guest loses the disk for a moment)',
          { ...base, backend: bi.ref, source: disk.source, ...sortExtra },
        );
      }
    }
  }

  // ---- backends no desired disk names ----------------------------------------------------------
  for (const i of infos) {
    if (matchedBackends.has(i) || !i.b.ours) continue;
    const b = i.b;
    const running = runningDomids.has(b.frontendDomid);
    const name = nameByDomid.get(b.frontendDomid);
    const label = domLabel(nameByDomid, b.frontendDomid);
    const vdev = vdevName(b.devid);
    // A running domain whose name cannot be read: we cannot tell whether it is desired.
    const nameless = running && name === undefined;
    const reason = !running
      ? `frontend domain ${b.frontendDomid} is not running`
      : nameless
        ? `the name of domain ${b.frontendDomid} is missing or unreadable`
        : desiredNames.has(name!)
          ? `${vdev} is no longer in ${label}'s config`
          : `${label} is not in the config`;
    const h = health(i);
    const row: DiskStatus = {
      domain: label,
      vdev,
      devid: b.devid,
      sync: 'out-of-sync',
      health: h.health,
      backend: i.ref,
      sharedBy: 0,
    };
    if (running) row.domid = b.frontendDomid;
    if (h.reason !== undefined) row.healthReason = h.reason;
    if (b.mode === 'r') row.mode = 'ro';
    else if (b.mode === 'w') row.mode = 'rw';
    if (i.params !== undefined) row.source = i.params;
    fillBackendCells(row, i);
    disks.push(row);
    backendChecks(i, label, vdev);
    const sortDomain = name ?? `\uffff${String(b.frontendDomid).padStart(10, '0')}`;
    if (policy.prune && !nameless) {
      const note = guardLetGo('detach', i, `${label} ${vdev} (${reason})`, {
        vdev,
        backend: i.ref,
        sortDomain,
        sortDevid: b.devid,
        ...(name !== undefined ? { domain: name } : {}),
      });
      if (note === undefined) continue;
      const a: Action = { kind: 'detach', backend: i.ref, reason: reason + note };
      if (name !== undefined) a.domain = name;
      addAction(a, sortDomain, b.frontendDomid, b.devid);
    } else {
      const f: Partial<Finding> & { sortDomain?: string; sortDevid?: number } = {
        vdev,
        backend: i.ref,
        sortDomain,
        sortDevid: b.devid,
      };
      if (name !== undefined) f.domain = name;
      addFinding(
        'unexpected-backend',
        'warning',
        `${label} ${vdev}: xvbd's backend ${b.path} is not desired (${reason})`,
        nameless ? 'xvbd leaves it alone until the domain has a readable name' : 'apply with prune detaches it, or add the disk back to the config',
        f,
      );
    }
  }

  // ---- loop devices ------------------------------------------------------------------------------
  // A loop device a desired disk names as its block device (`device: /dev/loop3`) is wanted, used or not.
  const desiredDevices = new Set<string>();
  for (const c of ctxs) {
    const d = c.src?.kind === 'block' ? parseDecDev(c.src.rdev) : undefined;
    if (d) desiredDevices.add(devKey(d));
  }
  const freed = new Set<string>();
  for (const l of loops) {
    if (!ownLoop(l)) continue;
    const used = loopUsers.get(l.name) ?? [];
    if (used.length === 0 && !recordedDiskseqs.has(l.diskseq) && !reusedInPlan.has(l.name) && !desiredDevices.has(devKey(l))) {
      if (l.mounted || l.holders.length > 0) continue; // something in dom0 uses it: not ours to judge
      const reason = `no backend uses it${l.backingDeleted ? ' (its backing file was deleted)' : ''}`;
      const what = `/dev/${l.name} (${l.backingPath}) is xvbd's and ${reason}`;
      const f = { loops: [loopRef(l)], sortDomain: LOOP_SORT, sortDevid: l.number };
      // Only a device under this instance's allowedRoots is provably its own: with none, another xvbd
      // (another run dir) on this host may have made it.
      const unscoped = roots.length === 0;
      if (policy.prune && !unscoped) {
        const note = guardLetGo('free-loop', l, what, f);
        if (note !== undefined) {
          freed.add(l.name);
          addAction({ kind: 'free-loop', loop: loopRef(l), reason: reason + note }, '', 0, 0, l.number);
        }
      } else {
        const fix = unscoped
          ? 'not freed: xvbd frees only loop devices of files under policy allowedRoots; set them, then apply with prune'
          : l.backingDeleted
            ? `copy the data out first (${saveCommand(l)}); apply --prune --allow-data-loss frees it`
            : 'apply with prune frees it';
        addFinding('loop-leaked', 'warning', what, fix, f);
      }
      continue;
    }
    if (l.backingDeleted && used.length > 0) {
      const who = used.map((u) => `${domLabel(nameByDomid, u.b.frontendDomid)} ${vdevName(u.b.devid)}`).join(', ');
      addFinding(
        'loop-backing-deleted',
        'warning',
        `/dev/${l.name}: its backing file was deleted (${l.backingPath}) but ${who} still use it`,
        `copy the data out before anything detaches it (${saveCommand(l)}), then restore the file and replace the disk`,
        { loops: [loopRef(l)], sortDomain: LOOP_SORT, sortDevid: l.number },
      );
    }
  }
  for (const ls of roLoopsByKey.values()) {
    const remaining = ls.filter((l) => !freed.has(l.name));
    if (remaining.length < 2) continue;
    addFinding(
      'loop-duplicate',
      'warning',
      `${remaining.length} read-only loop devices for one file (${remaining[0]!.backingPath}): ${remaining.map((l) => l.name).join(', ')}`,
      'new guests share the first; detach and re-attach the others\' guests to consolidate, then apply with prune',
      { loops: remaining.map(loopRef), sortDomain: LOOP_SORT, sortDevid: remaining[0]!.number },
    );
  }

  // ---- results ---------------------------------------------------------------------------------
  actions.sort((x, y) => cmpTuple(x.key, y.key));
  findings.sort((x, y) => cmpTuple(x.key, y.key));
  explainSync(disks, actions.map((x) => x.a), findings.map((x) => x.f));
  disks.sort((x, y) => cmp(x.domain, y.domain) || x.devid - y.devid);
  return { actions: actions.map((x) => x.a), findings: findings.map((x) => x.f), disks };

  // ---- helpers that share the accumulators ---------------------------------------------------
  /**
   * A backend of ours whose physical-device names a device that is gone or re-bound: offline before any
   * allocation. Closed too when the number is bound to another device (blkback may have opened it) or
   * blkback holds something there. Returns whether it is closed.
   */
  function planOffline(i: BackendInfo): boolean {
    const b = i.b;
    const close = i.loopReused === 'reused' || b.kernelHeld;
    const reason =
      i.loopReused === 'gone'
        ? `no loop device is bound at physical-device ${b.physicalDevice} any more`
        : `${b.physicalDevice} is now /dev/${i.loopAtPd!.name} with diskseq ${i.loopAtPd!.diskseq}, the backend recorded ${b.diskseq}`;
    const name = nameByDomid.get(b.frontendDomid);
    const a: Action = { kind: 'offline', backend: i.ref, physicalDevice: b.physicalDevice!, close, reason };
    if (name !== undefined) a.domain = name;
    addAction(a, name ?? '', b.frontendDomid, b.devid);
    return close;
  }

  /** A device of ours that one of our backends serves (proven: marker, diskseq, inode) and no durable holder keeps. */
  function planHold(i: BackendInfo): void {
    const b = i.b;
    const l = i.loopAtPd;
    if (!l || !ownLoop(l) || b.diskseq !== l.diskseq || !b.sourceInode || fileKey(b.sourceInode) !== fileKey(l.backing)) return;
    const verdict = holdVerdict(l.keptBy);
    if (verdict === 'held' || verdict === 'unknown') return;
    const name = nameByDomid.get(b.frontendDomid);
    const a: Action = { kind: 'hold', backend: i.ref, loop: loopRef(l) };
    if (name !== undefined) a.domain = name;
    addAction(a, name ?? '', b.frontendDomid, b.devid);
    if (verdict !== 'unheld') return;
    const label = `${domLabel(nameByDomid, b.frontendDomid)} ${vdevName(b.devid)}`;
    addFinding(
      'loop-unheld',
      'error',
      `${label}: /dev/${l.name} (diskseq ${l.diskseq}) serves ${b.path} but no holder in dom0 keeps it open; it is freed as soon as blkback lets go`,
      'apply takes it back (the keepers hold it from then on)',
      { ...(name !== undefined ? { domain: name } : {}), vdev: vdevName(b.devid), backend: i.ref, loops: [loopRef(l)], sortDomain: name ?? LOOP_SORT, sortDevid: b.devid },
    );
  }

  /** The cells of a status row that come from its backend. */
  function fillBackendCells(row: DiskStatus, i: BackendInfo): void {
    const b = i.b;
    row.backend = i.ref;
    if (b.state !== undefined) row.backendState = b.state;
    if (b.frontendState !== undefined) row.frontendState = b.frontendState;
    if (i.loopAtPd && i.loopReused === 'no') row.loop = loopRef(i.loopAtPd);
    if (i.pd && i.active) row.sharedBy = pdUsers.get(devKey(i.pd)) ?? 0;
  }

  function backendChecks(i: BackendInfo, domain: string, vdev: string): void {
    const b = i.b;
    const f = { domain, vdev, backend: i.ref, sortDomain: domain, sortDevid: b.devid };
    if (b.error !== undefined) {
      addFinding('backend-error', 'error', `${domain} ${vdev}: the backend reported: ${b.error}`, `xl block-detach ${domain} ${vdev}, fix the cause, then apply`, f);
    }
    if (b.hotplugStatus === 'error') {
      addFinding('backend-error', 'error', `${domain} ${vdev}: hotplug-status is "error"`, `xl block-detach ${domain} ${vdev}, fix the cause, then apply`, f);
    }
    for (const m of b.malformed ?? []) {
      addFinding('backend-error', 'warning', `${domain} ${vdev}: ${m}`, 'a guest wrote garbage into its own nodes; restart or fix the guest', f);
    }
  }

  /**
   * Prune's data guard (src/plan/safety.ts) for letting go of a backend's loop device or of a loop device
   * itself: the note for the action's reason ('' when nothing is at risk), or undefined when refused,
   * which is reported as data-loss-refused with how to save the data.
   */
  function guardLetGo(what: LetGo, of: BackendInfo | LoopObs, subject: string, f: Partial<Finding> & { sortDomain?: string; sortDevid?: number }): string | undefined {
    let l: LoopObs | undefined;
    let recorded: Inode | undefined;
    if ('b' in of) {
      // only the very device the backend was served (same diskseq) can hold its data
      l = of.loopReused === 'no' ? of.loopAtPd : undefined;
      recorded = of.b.sourceInode;
    } else {
      l = of;
    }
    const v = letGoVerdict(what, l, recorded, policy.allowDataLoss === true);
    if (v.allowed) return v.loss !== undefined ? ` (${v.loss})` : '';
    const verb = what === 'free-loop' ? 'not freed' : what === 'detach' ? 'not detached' : 'not replaced';
    addFinding('data-loss-refused', 'error', `${subject}: ${verb}: ${v.why}`, v.save, { ...f, loops: [loopRef(l!)] });
    return undefined;
  }

  /**
   * A loop device that is not ours (losetup, another xvbd instance) has the disk's file, in a way our
   * loop device could not coexist with (the disk read-write, or that device writable): every attach
   * would be refused, so the source is blocked and the device named. One this disk's own backend uses
   * is what serves it, not in the way.
   */
  function sourceInUse(c: DiskCtx, f: Partial<Finding> & { sortDomain?: string; sortDevid?: number }): void {
    if (c.disk.sourceKind !== 'file' || c.src?.kind !== 'file' || c.identity === undefined) return;
    if (!foreignByFile) {
      foreignByFile = new Map();
      for (const l of loops) if (!l.ours) foreignByFile.set(fileKey(l.backing), [...(foreignByFile.get(fileKey(l.backing)) ?? []), l]);
    }
    const inWay = (foreignByFile.get(c.identity) ?? []).filter(
      (l) =>
        (c.disk.mode === 'rw' || !l.readOnly) &&
        !(loopUsers.get(l.name) ?? []).some((u) => u.b.frontendDomid === c.domid && u.b.devid === c.disk.devid),
    );
    if (inWay.length === 0) return;
    const names = inWay.map((l) => `/dev/${l.name} (${l.readOnly ? 'ro' : 'rw'})`).join(', ');
    c.sourceProblem = `source in use by ${inWay.map((l) => `/dev/${l.name}`).join(', ')}`;
    addFinding(
      'source-in-use',
      'error',
      `${c.disk.source} has ${inWay.length === 1 ? 'a loop device' : 'loop devices'} that this xvbd did not make (losetup, or another xvbd instance): ${names}; xvbd cannot attach it ${c.disk.mode === 'rw' ? 'read-write' : 'next to a writable one'}`,
      `find who uses it (losetup -l; fuser -v ${inWay.map((l) => `/dev/${l.name}`).join(' ')}), free it (${inWay.map((l) => `losetup -d /dev/${l.name}`).join('; ')}), then apply`,
      { ...f, loops: inWay.map(loopRef) },
    );
  }

  function extraBackendOnVdev(i: BackendInfo, domain: string, disk: DiskSpec): void {
    const f = { domain, vdev: disk.vdev, backend: i.ref, sortDomain: domain, sortDevid: disk.devid };
    if (i.b.ours && policy.prune) {
      const reason = `a second backend for ${disk.vdev} (in domain ${i.b.backendDomid})`;
      const note = guardLetGo('detach', i, `${domain} ${disk.vdev}: ${reason}`, f);
      if (note !== undefined) addAction({ kind: 'detach', domain, backend: i.ref, reason: reason + note }, domain, i.b.frontendDomid, disk.devid, i.b.backendDomid);
      return;
    }
    addFinding(
      'unexpected-backend',
      'warning',
      `${domain} ${disk.vdev}: a second backend ${i.b.path}${i.b.ours ? '' : ' (not xvbd\'s)'}`,
      i.b.ours ? 'apply with prune detaches it' : `remove it yourself (xl block-detach)`,
      f,
    );
  }

  function mismatch(i: BackendInfo, c: DiskCtx, kind: FindingKind, text: string): void {
    const f = { domain: c.dom.name, vdev: c.disk.vdev, backend: i.ref, source: c.disk.source, at: c.disk.at, sortDomain: c.dom.name, sortDevid: c.disk.devid };
    if (!i.b.ours) {
      addFinding(kind, 'warning', `${c.dom.name} ${c.disk.vdev}: the toolstack's backend ${text}; xvbd does not serve it`, 'make the xl disk spec and the xvbd config agree', f);
      return;
    }
    if (mayReplace(c.dom.name, c.disk.devid) && blocked(c) === undefined && c.domid !== undefined) {
      const note = guardLetGo('replace', i, `${c.dom.name} ${c.disk.vdev}: backend ${text}`, f);
      if (note !== undefined) propose({ kind: 'replace', domain: c.dom.name, domid: c.domid, disk: c.disk, backend: i.ref, reason: text + note }, c);
      return;
    }
    addFinding(kind, 'warning', `${c.dom.name} ${c.disk.vdev}: backend ${text}`, 'apply with prune replaces the backend', f);
  }
}

const SEVERITY_RANK: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Fills DiskStatus.syncReason of every row not synced: its planned action, else its worst finding. */
function explainSync(rows: DiskStatus[], actions: Action[], findings: Finding[]): void {
  const byDisk = new Map<string, string>();
  for (const a of actions) {
    if (a.kind === 'attach' || a.kind === 'serve') byDisk.set(`${a.domain}\0${a.disk.devid}`, `${a.kind} planned`);
    else if (a.kind === 'replace') byDisk.set(`${a.domain}\0${a.disk.devid}`, `replace planned: ${a.reason}`);
    else if (a.kind === 'detach') byDisk.set(`be:${a.backend.path}`, `detach planned: ${a.reason}`);
  }
  const worst = new Map<string, Finding>();
  const keep = (k: string, f: Finding) => {
    const prev = worst.get(k);
    if (!prev || SEVERITY_RANK[f.severity] < SEVERITY_RANK[prev.severity]) worst.set(k, f);
  };
  for (const f of findings) {
    if (f.domain !== undefined && f.vdev !== undefined) keep(`${f.domain}\0${f.vdev}`, f);
    if (f.backend) keep(`be:${f.backend.path}`, f);
  }
  for (const r of rows) {
    if (r.sync === 'synced' || r.sync === 'pending') continue; // pending: healthReason says why
    const planned = byDisk.get(`${r.domain}\0${r.devid}`) ?? (r.backend ? byDisk.get(`be:${r.backend.path}`) : undefined);
    if (planned !== undefined) {
      r.syncReason = planned;
      continue;
    }
    const f = worst.get(`${r.domain}\0${r.vdev}`) ?? (r.backend ? worst.get(`be:${r.backend.path}`) : undefined);
    if (f) r.syncReason = f.kind;
    else if (r.sync === 'unknown') r.syncReason = 'what the backend serves is unknown';
  }
}

function sourceIdentity(src: SourceObs | undefined): string | undefined {
  if (!src || !src.exists) return undefined;
  if (src.kind === 'file' && src.inode) return fileKey(src.inode);
  if (src.kind === 'block') {
    const d = parseDecDev(src.rdev);
    if (d) return blockKey(d.major, d.minor);
  }
  return undefined;
}

function describeBackend(b: BackendObs, loopByDev: Map<string, LoopObs>): BackendInfo {
  const info: BackendInfo = {
    b,
    ref: backendRef(b),
    loopReused: 'no',
    active: false,
    writable: b.mode !== 'r',
  };
  const params = paramsPath(b.params);
  if (params !== undefined) info.params = params;
  const pd = parseHexDev(b.physicalDevice);
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

/** The logical block size a loop device gets when the disk names none (src/linux's sharing rule). */
const DEFAULT_BLOCK_SIZE = 512;

function shareKey(file: string, directIo: boolean, blockSize: number | undefined): string {
  return `${file}|${directIo ? 'dio' : 'buffered'}|${blockSize ?? '?'}`;
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

function describeIdentity(i: BackendInfo): string {
  if (i.loopAtPd && i.loopReused === 'no') {
    if (i.identity?.startsWith('b:')) return `device /dev/${i.loopAtPd.name} (${i.b.physicalDevice})`;
    return `${i.loopAtPd.backingPath} via /dev/${i.loopAtPd.name}`;
  }
  if (i.pd) return `device ${i.b.physicalDevice}`;
  return i.params ?? '(unknown)';
}

/** Health of one backend pair from its states (kept apart from sync). */
export function health(i: BackendInfo): { health: Health; reason?: string } {
  const b = i.b;
  if (b.error !== undefined) return { health: 'degraded', reason: `error: ${b.error}` };
  if (b.hotplugStatus === 'error') return { health: 'degraded', reason: 'hotplug-status error' };
  if (i.loopReused === 'reused') return { health: 'degraded', reason: 'loop device reused' };
  if (i.loopReused === 'gone') return { health: 'degraded', reason: 'loop device gone' };
  const bs = b.state;
  const fs = b.frontendState;
  if (bs === undefined) return { health: 'degraded', reason: 'backend state missing' };
  if (bs === XenbusState.Closing || bs === XenbusState.Closed) return { health: 'degraded', reason: `backend ${xenbusStateName(bs)}` };
  if (fs === XenbusState.Closing || fs === XenbusState.Closed) return { health: 'degraded', reason: `frontend ${xenbusStateName(fs)}` };
  if (fs === undefined) {
    return { health: 'degraded', reason: b.frontendPath === undefined ? 'no frontend' : 'frontend state missing or malformed' };
  }
  if (bs === XenbusState.Connected && fs === XenbusState.Connected) return { health: 'healthy' };
  if (!i.pd) return { health: 'progressing', reason: `hotplug pending (backend ${xenbusStateName(bs)}, frontend ${xenbusStateName(fs)})` };
  if (!b.kernelHeld) return { health: 'progressing', reason: `blkback has not opened the device yet (backend ${xenbusStateName(bs)}, frontend ${xenbusStateName(fs)})` };
  return { health: 'progressing', reason: `backend ${xenbusStateName(bs)}, frontend ${xenbusStateName(fs)}` };
}

export type { BackendInfo };
