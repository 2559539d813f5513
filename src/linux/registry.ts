// The loop registry: exactly one fd per device in use, keyed by diskseq; users counted by a caller-given
// key (e.g. a backend path). Read-only disks of the same file (st_dev, st_ino) share one device; the last
// release closes the fd and autoclear frees the device once nobody else (blkback, a mount) holds it.
import { fstatSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoopObs } from '../model/observed.js';
import { LOOP_MAJOR, LO_FLAGS_DIRECT_IO, LO_FLAGS_READ_ONLY, O_CLOEXEC, O_EXCL, O_NOCTTY, O_NONBLOCK, O_RDONLY, O_RDWR, SysError, sysClose, sysOpenErr } from './ffi.js';
import { devMajor, devMinor } from './devnum.js';
import { listLoops, openBound, readLoopNames, type ListOptions } from './list.js';
import {
  type AttachStats,
  type FreeProof,
  type FreeResult,
  LOOP_INFO64_SIZE,
  LoopFreeRefused,
  attachLoop,
  blockName,
  checkProof,
  clearOwnFd,
  freeLoop,
  getDiskseq,
  getLogicalBlockSize,
  isBound,
  markerMatches,
  tryGetStatus,
} from './loopdev.js';
import { type OpenedSource, type SourceKind, SourceError, closeSource, openSource } from './source.js';
import { LoopUevents } from './uevent.js';

/** One device the registry holds (a loop device we made, or a block device used as is). */
export interface LoopHandle {
  /** Kernel name: "loop3" (or "sdb" for a block source). */
  name: string;
  /** Loop index (3 for loop3); -1 for a block source. */
  number: number;
  major: number;
  minor: number;
  /** BLKGETDISKSEQ, decimal: the identity of the device from attach on. */
  diskseq: string;
  /** The backing file's (st_dev, st_ino), decimal; for a block source, the device node's. */
  backing: { dev: string; ino: string };
  readOnly: boolean;
  /** The one fd the registry holds; do not close it, release the key instead. */
  fd: number;
  /** "/dev/loop3" */
  devPath: string;
  /** 'loop' for a loop device over a file, 'block' for a block device used as is. */
  kind: 'loop' | 'block';
}

export interface AcquireSpec {
  /** Who uses it (e.g. the backend's xenstore path). Counted; release(key) undoes one acquire. */
  key: string;
  /** Absolute path of the source. */
  source: string;
  readOnly: boolean;
  kind?: SourceKind;
  directIo?: boolean;
  blockSize?: number;
  /** Overrides the registry's allowedRoots for this disk. */
  allowedRoots?: string[];
}

export interface RegistryOptions {
  /** Sources must lie under these absolute directories; empty = anywhere. */
  allowedRoots?: string[];
  /** Force LOOP_SET_FD + LOOP_SET_STATUS64 instead of LOOP_CONFIGURE. */
  legacy?: boolean;
  /** Force the component-by-component open instead of openat2. */
  noOpenat2?: boolean;
  /**
   * Before attaching, look at the host's loop devices for the same file: refuse a read-write disk whose
   * file already has a loop device (ours from an earlier run, or anybody's), refuse a read-only disk
   * whose file has a writable one, and reuse our own read-only device from an earlier run. Default true.
   */
  checkHost?: boolean;
  /** How long a conflicting device of ours may take to go away after its release (default 250 ms). */
  settleMs?: number;
  /**
   * The host check keeps an index of what every loop device backs, updated from kernel uevents (so it
   * is exact for every attach that has returned). Only where uevents are unavailable is it a plain scan
   * reused for this long (default 500 ms; 0 = scan on every acquire). A conflict is always confirmed by
   * a fresh full scan before we refuse.
   */
  hostScanTtlMs?: number;
}

export type RegistryRefusal = 'key-in-use' | 'in-use' | 'rw-conflict' | 'stale' | 'not-loop' | 'not-ours' | 'users';

export class RegistryError extends Error {
  readonly reason: RegistryRefusal;
  /** For `in-use`: the device in the way is one of ours (marker and instance), e.g. one being freed. */
  readonly ours: boolean;
  constructor(reason: RegistryRefusal, message: string, opts: { ours?: boolean } = {}) {
    super(message);
    this.name = 'RegistryError';
    this.reason = reason;
    this.ours = opts.ours === true;
  }
}

interface Entry {
  handle: LoopHandle;
  users: Set<string>;
  /** (dev:ino) of the backing file, or "blk:major:minor". */
  identity: string;
}

export class LoopRegistry {
  private readonly byDiskseq = new Map<string, Entry>();
  private readonly byUser = new Map<string, Entry>();
  private readonly byIdentity = new Map<string, Set<Entry>>();
  private queue: Promise<unknown> = Promise.resolve();
  readonly opts: Required<Omit<RegistryOptions, 'settleMs' | 'hostScanTtlMs'>> & Pick<RegistryOptions, 'settleMs' | 'hostScanTtlMs'>;
  private readonly host: HostIndex;
  /** Host index counters (diagnostics, benchmarks). */
  get hostStats(): { fullScans: number; reprobes: number; ownEventsSkipped: number; uevents: boolean } {
    return { ...this.host.stats };
  }
  /** Retry and fallback counters across all attaches (diagnostics, benchmarks). */
  readonly stats: AttachStats = { attempts: 0, retries: {}, ctlAdd: 0, legacy: 0 };

  constructor(opts: RegistryOptions = {}) {
    this.opts = {
      allowedRoots: opts.allowedRoots ?? [],
      legacy: opts.legacy ?? false,
      noOpenat2: opts.noOpenat2 ?? false,
      checkHost: opts.checkHost ?? true,
      settleMs: opts.settleMs,
      hostScanTtlMs: opts.hostScanTtlMs,
    };
    this.host = new HostIndex(opts.hostScanTtlMs ?? 500);
  }

  /**
   * Get a device for `spec.key`. Idempotent per key (same file and mode gives the same handle back).
   * Acquires run one at a time (each is a few syscalls; only retry backoff awaits).
   */
  acquire(spec: AcquireSpec): Promise<LoopHandle> {
    const run = this.queue.then(() => this.acquireNow(spec));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async acquireNow(spec: AcquireSpec): Promise<LoopHandle> {
    if (typeof spec.key !== 'string' || spec.key.length === 0) throw new TypeError('acquire: key must be a non-empty string');
    const kind = spec.kind ?? 'file';
    const src = openSource(spec.source, {
      allowedRoots: spec.allowedRoots ?? this.opts.allowedRoots,
      readOnly: spec.readOnly,
      kind,
      direct: kind === 'file' && (spec.directIo ?? false),
      noOpenat2: this.opts.noOpenat2,
    });
    try {
      const identity = kind === 'block' ? `blk:${src.stat.major}:${src.stat.minor}` : `${src.stat.dev}:${src.stat.ino}`;
      const mine = this.byUser.get(spec.key);
      if (mine) {
        if (mine.identity === identity && mine.handle.readOnly === spec.readOnly) return mine.handle;
        throw new RegistryError('key-in-use', `${spec.key} already holds ${mine.handle.name} for another disk; release it first`);
      }

      // Held by us already?
      for (const e of this.byIdentity.get(identity) ?? []) {
        if (spec.readOnly && e.handle.readOnly) {
          // Another read-only device of the same file with other options (block size, direct I/O) may
          // exist next to this one; look further.
          if (e.handle.kind === 'loop' && !optionsMatch(e.handle.fd, spec)) continue;
          this.checkAlive(e);
          return this.addUser(e, spec.key);
        }
        if (!spec.readOnly && !e.handle.readOnly && e.users.size === 0) {
          // Adopted (e.g. from the fd store) and not yet claimed: this is its user coming back.
          this.checkAlive(e);
          return this.addUser(e, spec.key);
        }
        // A writer needs the file to itself ('in-use'); a reader must not sit next to a writer ('rw-conflict').
        throw new RegistryError(
          spec.readOnly ? 'rw-conflict' : 'in-use',
          `${spec.source} is already served ${e.handle.readOnly ? 'read-only' : 'read-write'} by ${e.handle.name} (users: ${[...e.users].join(', ') || 'none'})`,
        );
      }

      if (kind === 'block') {
        return this.addUser(this.blockEntry(src, spec, identity), spec.key);
      }

      if (this.opts.checkHost) {
        const reuse = await this.checkHost(src.devB, src.inoB, spec);
        if (reuse) return this.addUser(reuse, spec.key);
      }

      const attached = await attachLoop(
        { fd: src.fd, dev: src.devB, ino: src.inoB },
        {
          readOnly: spec.readOnly,
          directIo: spec.directIo ?? false,
          ...(spec.blockSize !== undefined ? { blockSize: spec.blockSize } : {}),
          legacy: this.opts.legacy,
          stats: this.stats,
        },
      );
      const handle: LoopHandle = {
        name: attached.name,
        number: attached.number,
        major: attached.major,
        minor: attached.minor,
        diskseq: String(attached.diskseq),
        backing: { dev: String(attached.backing.dev), ino: String(attached.backing.ino) },
        readOnly: attached.readOnly,
        fd: attached.fd,
        devPath: attached.devPath,
        kind: 'loop',
      };
      this.host.note(attached.name, attached.backing.dev, attached.backing.ino, attached.readOnly, String(attached.diskseq));
      return this.addUser(this.insert(handle, identity), spec.key);
    } finally {
      closeSource(src);
    }
  }

  /** Drop one user; the last one closes the fd (the device then frees by autoclear). */
  release(key: string): { handle: LoopHandle; closed: boolean } | undefined {
    const e = this.byUser.get(key);
    if (!e) return undefined;
    this.byUser.delete(key);
    e.users.delete(key);
    if (e.users.size > 0) return { handle: e.handle, closed: false };
    this.remove(e);
    sysClose(e.handle.fd);
    return { handle: e.handle, closed: true };
  }

  /**
   * Free a device with proof (name + diskseq recorded at attach, optionally the backing inode). If we hold
   * it: LOOP_CLR_FD on our fd and close it (refused while users remain unless force). Otherwise: open it,
   * check marker and diskseq, LOOP_CLR_FD, close. Throws LoopFreeRefused with the reason.
   */
  free(proof: FreeProof, opts: { force?: boolean } = {}): FreeResult {
    const e = this.byDiskseq.get(proof.diskseq);
    if (!e || e.handle.name !== proof.name || e.handle.kind !== 'loop') return freeLoop(proof);
    if (e.users.size > 0 && !opts.force) {
      throw new RegistryError('users', `${proof.name} still has users: ${[...e.users].join(', ')}`);
    }
    clearOwnFd(e.handle.fd, proof);
    for (const u of e.users) this.byUser.delete(u);
    this.remove(e);
    sysClose(e.handle.fd);
    return { name: proof.name, diskseq: proof.diskseq, deferred: isBound(proof.name, proof.diskseq) };
  }

  /**
   * Take back an fd (e.g. from systemd's fd store): it must be one of our loop devices (marker matching
   * its backing inode). The registry owns the fd afterwards; on refusal it is left to the caller. An fd
   * for a device already held is closed and the existing handle returned.
   */
  adopt(fd: number, users: string[] = []): LoopHandle {
    let st;
    try {
      st = fstatSync(fd, { bigint: true });
    } catch (e) {
      throw new RegistryError('not-loop', `adopt: fd ${fd} is not open (${(e as Error).message})`);
    }
    if (!st.isBlockDevice() || devMajor(st.rdev) !== LOOP_MAJOR) {
      throw new RegistryError('not-loop', `adopt: fd ${fd} is not a loop device`);
    }
    const info = tryGetStatus(fd, Buffer.alloc(LOOP_INFO64_SIZE));
    if (!info) throw new RegistryError('not-loop', `adopt: fd ${fd} is an unbound loop device`);
    if (!markerMatches(info)) throw new RegistryError('not-ours', `adopt: fd ${fd} (loop${info.number}) does not carry our marker`);
    const diskseq = String(getDiskseq(fd));
    for (const u of users) {
      const other = this.byUser.get(u);
      if (other && other.handle.diskseq !== diskseq) throw new RegistryError('key-in-use', `adopt: ${u} already holds ${other.handle.name}`);
    }
    let e = this.byDiskseq.get(diskseq);
    if (e) {
      if (e.handle.fd !== fd) sysClose(fd);
    } else {
      const number = info.number;
      const handle: LoopHandle = {
        name: `loop${number}`,
        number,
        major: devMajor(st.rdev),
        minor: devMinor(st.rdev),
        diskseq,
        backing: { dev: String(info.device), ino: String(info.inode) },
        readOnly: (info.flags & LO_FLAGS_READ_ONLY) !== 0,
        fd,
        devPath: `/dev/loop${number}`,
        kind: 'loop',
      };
      e = this.insert(handle, `${info.device}:${info.inode}`);
    }
    for (const u of users) this.addUser(e, u);
    return e.handle;
  }

  /**
   * Take back a device of ours by the proof recorded at attach (e.g. the diskseq in the backend's
   * xenstore dir) when its fd was lost (a restart without the fd store, while blkback kept it bound).
   * Opens it O_EXCL (fails if another process, e.g. a still running xvbd, holds it so; `exclusive: false`
   * when that other holder is expected: taking a served device back for the keepers), checks marker,
   * diskseq and backing like free() does (LoopFreeRefused otherwise), then adopts it for `users`. The
   * checks are made on the fd, after the open: a number re-bound in between is refused, never adopted.
   */
  adoptByProof(proof: FreeProof, users: string[] = [], opts: { exclusive?: boolean } = {}): LoopHandle {
    const held = this.byDiskseq.get(proof.diskseq);
    if (held && held.handle.name === proof.name) {
      for (const u of users) this.addUser(held, u);
      return held.handle;
    }
    if (!/^loop\d{1,9}$/.test(proof.name)) throw new LoopFreeRefused(proof.name, 'bad-name', 'not a loop device name');
    const fd = sysOpenErr(`/dev/${proof.name}`, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (opts.exclusive === false ? 0 : O_EXCL));
    if (fd < 0) {
      const code = new SysError('open', -fd).code;
      if (code === 'EBUSY') throw new RegistryError('in-use', `${proof.name} is claimed by another process (another xvbd, a mount)`);
      throw new LoopFreeRefused(proof.name, code === 'ENXIO' ? 'not-bound' : 'no-device', `cannot open: ${code}`);
    }
    try {
      checkProof(fd, proof);
      return this.adopt(fd, users);
    } catch (e) {
      sysClose(fd);
      throw e;
    }
  }

  /** Every fd we hold, for parking in systemd's fd store (FDNAME = name is a suggestion). */
  fds(): Array<{ diskseq: string; fd: number; name: string; users: string[] }> {
    return [...this.byDiskseq.values()].map((e) => ({
      diskseq: e.handle.diskseq,
      fd: e.handle.fd,
      name: e.handle.name,
      users: [...e.users],
    }));
  }

  handles(): LoopHandle[] {
    return [...this.byDiskseq.values()].map((e) => e.handle);
  }

  get(key: string): LoopHandle | undefined {
    return this.byUser.get(key)?.handle;
  }

  users(diskseq: string): string[] {
    return [...(this.byDiskseq.get(diskseq)?.users ?? [])];
  }

  heldDiskseqs(): Set<string> {
    return new Set(this.byDiskseq.keys());
  }

  /**
   * listLoops() with heldByUs filled in from this registry. Where kernel uevents keep the host index
   * exact, only the devices it knows to be bound are looked at (no sweep over the unbound ones).
   */
  listLoops(opts: Pick<ListOptions, 'mounts'> = {}): LoopObs[] {
    const { names, stale } = this.host.boundNames();
    if (names) return listLoops({ ...opts, held: this.heldDiskseqs(), names });
    const loops = listLoops({ ...opts, held: this.heldDiskseqs() });
    // A stale index is rebuilt from this sweep instead of from a scan of its own just before it.
    if (stale) this.host.replaceFrom(loops);
    return loops;
  }

  /** Close fds with no users (adopted but never claimed). Returns what was dropped. */
  dropUnused(): LoopHandle[] {
    const out: LoopHandle[] = [];
    for (const e of [...this.byDiskseq.values()]) {
      if (e.users.size === 0) {
        this.remove(e);
        sysClose(e.handle.fd);
        out.push(e.handle);
      }
    }
    return out;
  }

  /** Close every fd (shutdown without an fd store): devices nobody else holds are freed by autoclear. */
  closeAll(): void {
    for (const e of this.byDiskseq.values()) sysClose(e.handle.fd);
    this.host.close();
    this.byDiskseq.clear();
    this.byUser.clear();
    this.byIdentity.clear();
  }

  // ------------------------------------------------------------------------------------------------

  private insert(handle: LoopHandle, identity: string): Entry {
    const e: Entry = { handle, users: new Set(), identity };
    this.byDiskseq.set(handle.diskseq, e);
    let set = this.byIdentity.get(identity);
    if (!set) this.byIdentity.set(identity, (set = new Set()));
    set.add(e);
    return e;
  }

  private remove(e: Entry): void {
    if (e.handle.kind === 'loop') this.host.forget(e.handle.name);
    this.byDiskseq.delete(e.handle.diskseq);
    const set = this.byIdentity.get(e.identity);
    set?.delete(e);
    if (set && set.size === 0) this.byIdentity.delete(e.identity);
    for (const u of e.users) if (this.byUser.get(u) === e) this.byUser.delete(u);
    e.users.clear();
  }

  private addUser(e: Entry, key: string): LoopHandle {
    e.users.add(key);
    this.byUser.set(key, e);
    return e.handle;
  }

  /** The held device must still be bound with the same diskseq (nobody cleared it under us). */
  private checkAlive(e: Entry): void {
    if (e.handle.kind === 'block') return;
    const info = tryGetStatus(e.handle.fd);
    const seq = info ? String(getDiskseq(e.handle.fd)) : undefined;
    if (!info || seq !== e.handle.diskseq || !markerMatches(info)) {
      throw new RegistryError('stale', `${e.handle.name} (diskseq ${e.handle.diskseq}) was detached or changed under us`);
    }
  }

  /**
   * A block device used as is. We hold it open O_EXCL (reopened from the fd we identified it by, so no
   * path lookup happens again): that fails if dom0 has it mounted or claimed (LVM, md, a mount), and
   * keeps dom0 from mounting it while a guest uses it. blkback's own open is not exclusive.
   */
  private blockEntry(src: OpenedSource, spec: AcquireSpec, identity: string): Entry {
    const fd = sysOpenErr(`/proc/self/fd/${src.fd}`, (spec.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_EXCL);
    if (fd < 0) {
      const code = new SysError('open', -fd).code;
      throw new SourceError(spec.source, code === 'EBUSY' ? 'busy' : 'io', code === 'EBUSY' ? 'is in use in dom0 (mounted or claimed)' : `cannot claim: ${code}`, code);
    }
    try {
      const st = fstatSync(fd, { bigint: true });
      if (String(st.rdev) !== src.stat.rdev) throw new SourceError(spec.source, 'io', 'changed while being opened');
      const major = src.stat.major ?? 0;
      const minor = src.stat.minor ?? 0;
      const handle: LoopHandle = {
        name: blockName(major, minor) ?? `${major}:${minor}`,
        number: -1,
        major,
        minor,
        diskseq: String(getDiskseq(fd)),
        backing: { dev: src.stat.dev, ino: src.stat.ino },
        readOnly: spec.readOnly,
        fd,
        devPath: src.path,
        kind: 'block',
      };
      return this.insert(handle, identity);
    } catch (e) {
      sysClose(fd);
      throw e;
    }
  }

  /** Look at the host's loop devices for the same file; maybe reuse our own read-only one. */
  private async checkHost(dev: bigint, ino: bigint, spec: AcquireSpec): Promise<Entry | undefined> {
    // A device of ours that was just released goes away at its last close; if some passer-by (a scan,
    // udev) had it open at that moment, that is a few ms later. Give such a device a short while.
    const deadline = Date.now() + (this.opts.settleMs ?? 250);
    for (;;) {
      let conflict: RegistryError | undefined;
      let waitable = true;
      // Cached scan first; anything suspicious is looked at again, fresh.
      let candidates = this.host.lookup(dev, ino, false);
      if (candidates.some((f) => !spec.readOnly || !f.readOnly)) candidates = this.host.lookup(dev, ino, true);
      for (const found of candidates) {
        if (!spec.readOnly) {
          conflict ??= new RegistryError(
            'in-use',
            `${spec.source} already has ${found.name} (${found.ours ? 'made by xvbd earlier' : 'not ours'}, ${found.readOnly ? 'ro' : 'rw'}): refusing a second writable device`,
            { ours: found.ours },
          );
        } else if (!found.readOnly) {
          conflict ??= new RegistryError('rw-conflict', `${spec.source} is attached writable as ${found.name}`);
        } else {
          continue;
        }
        if (!found.ours) waitable = false;
      }
      if (!conflict) break;
      if (!waitable || Date.now() >= deadline) throw conflict;
      await sleep(5 + Math.random() * 10);
    }
    for (const found of this.host.lookup(dev, ino, false)) {
      if (!found.ours || !found.readOnly) continue;
      // Ours, read-only, same file: open it and adopt it (verified under our own fd).
      const fd = sysOpenErr(`/dev/${found.name}`, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
      if (fd < 0) continue;
      try {
        const info = tryGetStatus(fd);
        if (
          !info ||
          !markerMatches(info) ||
          info.device !== dev ||
          info.inode !== ino ||
          !(info.flags & LO_FLAGS_READ_ONLY) ||
          info.offset !== 0n ||
          info.sizeLimit !== 0n ||
          !optionsMatch(fd, spec, info.flags) ||
          this.byDiskseq.has(String(getDiskseq(fd)))
        ) {
          sysClose(fd);
          continue;
        }
        const h = this.adopt(fd);
        return this.byDiskseq.get(h.diskseq);
      } catch {
        sysClose(fd);
      }
    }
    return undefined;
  }
}

export interface BackingFound {
  name: string;
  readOnly: boolean;
  ours: boolean;
}

/** The device has the direct I/O flag and logical block size the disk asks for (default 512). */
function optionsMatch(fd: number, spec: AcquireSpec, flags?: number): boolean {
  const f = flags ?? tryGetStatus(fd)?.flags;
  if (f === undefined) return false;
  if (Boolean(f & LO_FLAGS_DIRECT_IO) !== Boolean(spec.directIo)) return false;
  return getLogicalBlockSize(fd) === (spec.blockSize ?? 512);
}

/** Probe one loop device: what it backs now, or undefined if unbound or gone. */
function probeOne(name: string, buf: Buffer): { key: string; found: BackingFound } | undefined {
  const bound = openBound(name, buf);
  if (!bound) return undefined;
  const { fd, info } = bound;
  try {
    return {
      key: `${info.device}:${info.inode}`,
      found: { name, readOnly: (info.flags & LO_FLAGS_READ_ONLY) !== 0, ours: markerMatches(info) },
    };
  } finally {
    sysClose(fd);
  }
}

/**
 * What every loop device backs, kept current by kernel uevents: after one full scan, each lookup only
 * re-probes the devices that announced a change. Without uevents (or after an overrun, or after
 * maxAgeMs) it scans everything again; with uevents unavailable it falls back to a scan per ttlMs.
 */
class HostIndex {
  private byKey = new Map<string, BackingFound[]>();
  private keyOf = new Map<string, string>();
  /** name -> diskseq of devices we attached and noted. */
  private readonly noted = new Map<string, string>();
  /** Diagnostics: full scans, single-device re-probes, own events skipped, whether uevents are used. */
  readonly stats = { fullScans: 0, reprobes: 0, ownEventsSkipped: 0, uevents: false };
  private takenAt = -Infinity;
  private uevents: LoopUevents | undefined;
  private uneventsTried = false;
  private readonly buf = Buffer.alloc(LOOP_INFO64_SIZE);
  constructor(
    private readonly ttlMs: number,
    private readonly maxAgeMs = 10_000,
  ) {}

  lookup(dev: bigint, ino: bigint, fresh: boolean): BackingFound[] {
    this.refresh(fresh);
    return this.byKey.get(`${dev}:${ino}`) ?? [];
  }

  private refresh(fresh: boolean): void {
    if (this.catchUp(fresh)) this.full();
  }

  /**
   * Drain the uevents and re-probe the devices they name; true if the index needs a full scan instead
   * (asked for, events lost, older than maxAgeMs; without uevents: older than ttlMs).
   */
  private catchUp(fresh: boolean): boolean {
    if (!this.uneventsTried) {
      this.uneventsTried = true;
      try {
        this.uevents = new LoopUevents();
        this.stats.uevents = true;
      } catch {
        this.uevents = undefined;
      }
    }
    const age = Date.now() - this.takenAt;
    if (this.uevents) {
      const changes = this.uevents.drain(); // drain first: what changes during the scan shows up next time
      if (fresh || changes.overrun || age > this.maxAgeMs) return true;
      for (const [name, seq] of changes.names) {
        // The event of our own attach (same diskseq as we noted): nothing new to learn.
        if (seq !== undefined && this.noted.get(name) === seq) {
          this.stats.ownEventsSkipped++;
          continue;
        }
        this.stats.reprobes++;
        this.reprobe(name);
      }
      return false;
    }
    return fresh || age > this.ttlMs;
  }

  private full(): void {
    this.stats.fullScans++;
    this.byKey.clear();
    this.keyOf.clear();
    let names: string[] = [];
    try {
      names = readLoopNames();
    } catch {
      // no sysfs: nothing to see
    }
    for (const name of names) {
      const p = probeOne(name, this.buf);
      if (p) this.put(name, p.key, p.found);
    }
    this.takenAt = Date.now();
  }

  /** The full scan done by a listLoops() sweep: every bound device, as listed. Counts as a full scan. */
  replaceFrom(loops: readonly LoopObs[]): void {
    this.stats.fullScans++;
    this.byKey.clear();
    this.keyOf.clear();
    for (const l of loops) this.put(l.name, `${l.backing.dev}:${l.backing.ino}`, { name: l.name, readOnly: l.readOnly, ours: l.ours });
    this.takenAt = Date.now();
  }

  private reprobe(name: string): void {
    this.drop(name);
    const p = probeOne(name, this.buf);
    if (p) this.put(name, p.key, p.found);
  }

  private put(name: string, key: string, found: BackingFound): void {
    this.drop(name);
    let list = this.byKey.get(key);
    if (!list) this.byKey.set(key, (list = []));
    list.push(found);
    this.keyOf.set(name, key);
  }

  private drop(name: string): void {
    const key = this.keyOf.get(name);
    if (key === undefined) return;
    this.keyOf.delete(name);
    const list = this.byKey.get(key)?.filter((f) => f.name !== name);
    if (list && list.length > 0) this.byKey.set(key, list);
    else this.byKey.delete(key);
  }

  /** A device we just attached, with its diskseq: its own uevent then needs no re-probe. */
  note(name: string, dev: bigint, ino: bigint, readOnly: boolean, diskseq: string): void {
    this.put(name, `${dev}:${ino}`, { name, readOnly, ours: true });
    this.noted.set(name, diskseq);
  }

  /**
   * Names of the bound loop devices, current as of now; undefined without uevents or when the index is
   * stale (then: sweep, and if `stale`, hand the sweep to replaceFrom() in place of a full scan).
   */
  boundNames(): { names?: string[]; stale: boolean } {
    if (this.catchUp(false)) return { stale: true };
    if (!this.uevents) return { stale: false };
    return { names: [...this.keyOf.keys()], stale: false };
  }

  /** We let go of a device we noted: its next events (the detach carries the same diskseq) must be looked at. */
  forget(name: string): void {
    this.noted.delete(name);
  }

  close(): void {
    this.uevents?.close();
    this.noted.clear();
    this.uevents = undefined;
    this.uneventsTried = false;
    this.takenAt = -Infinity;
  }
}
