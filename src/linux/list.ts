// Enumerate every bound loop device on the host as LoopObs (src/model/observed.ts).
// Unbound devices are skipped by their missing sysfs loop/ directory. Per bound device: one read-only
// open (it pins the binding while we look, so status, diskseq and sysfs agree), LOOP_GET_STATUS64,
// BLKGETDISKSEQ, sysfs backing_file and holders/ (raw syscalls, no Node fs layer); the minor comes from
// lo_number << part_shift. Mounts from one read of /proc/self/mountinfo. Opening a loop device
// read-only changes nothing (no udev event, no rescan).
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import type { LoopObs } from '../model/observed.js';
import { LOOP_MAJOR, LO_FLAGS_AUTOCLEAR, LO_FLAGS_DIRECT_IO, LO_FLAGS_READ_ONLY, O_CLOEXEC, O_NOCTTY, O_NONBLOCK, O_RDONLY, exists, readDirNames, readSmallFile, sysClose, sysOpenErr } from './ffi.js';
import { LOOP_INFO64_SIZE, type LoopInfo, getDiskseq, getLogicalBlockSize, loopMinor, markerMatches, tryGetStatus } from './loopdev.js';

export interface ListOptions {
  /** Diskseqs (decimal strings) this process holds an fd to: they get heldByUs = true. */
  held?: ReadonlySet<string>;
  /** Only these device names (e.g. ["loop3"]); default every /sys/block/loop*. */
  names?: string[];
  /** mountedDevices() if the caller has it already (observe needs it for the sources too). */
  mounts?: ReturnType<typeof mountedDevices>;
}

/** "major:minor" of every block device mounted in this mount namespace, plus the loop devices whose partitions are. */
export function mountedDevices(): { devs: Set<string>; loopNames: Set<string> } {
  const devs = new Set<string>();
  const loopNames = new Set<string>();
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return { devs, loopNames };
  }
  for (const line of text.split('\n')) {
    // mount-id parent-id major:minor root mount-point ...
    const a = line.indexOf(' ');
    const b = line.indexOf(' ', a + 1);
    const c = line.indexOf(' ', b + 1);
    if (a < 0 || b < 0 || c < 0) continue;
    const mm = line.slice(b + 1, c);
    if (mm.startsWith('0:')) continue; // anonymous devices (tmpfs, overlay, proc...)
    devs.add(mm);
  }
  for (const mm of devs) {
    if (mm.startsWith('7:')) continue;
    // A partition of a loop device (blkext major 259...): /sys/dev/block/M:m -> .../block/loopN/loopNpK
    try {
      const link = readlinkSync(`/sys/dev/block/${mm}`);
      const m = /\/block\/(loop\d+)\//.exec(link);
      if (m) loopNames.add(m[1]!);
    } catch {
      // not a block device we can resolve
    }
  }
  return { devs, loopNames };
}

const LOOP_NAME = /^loop\d+$/;

/** Names of every loop device in /sys/block (bound or not), in directory order. Throws without sysfs. */
export function readLoopNames(): string[] {
  return (readDirNames('/sys/block', Buffer.alloc(65536)) ?? readdirSync('/sys/block')).filter((n) => LOOP_NAME.test(n));
}

/**
 * Open a bound loop device read-only and read its status; undefined (nothing left open) if it is unbound
 * or going away. The caller closes `fd`.
 */
export function openBound(name: string, buf: Buffer): { fd: number; info: LoopInfo } | undefined {
  // An unbound device has no sysfs loop/ directory: skip it without opening it (most of a host's loop
  // devices are unbound, and a block device open and last close cost far more than a lookup).
  if (!exists(`/sys/block/${name}/loop`)) return undefined;
  const fd = sysOpenErr(`/dev/${name}`, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return undefined; // ENXIO: being torn down; ENOENT: no node (yet)
  let info: LoopInfo | undefined;
  try {
    info = tryGetStatus(fd, buf);
  } finally {
    if (!info) sysClose(fd);
  }
  return info ? { fd, info } : undefined;
}

/** Every bound loop device, sorted by number. Unbound and vanishing devices are skipped. */
export function listLoops(opts: ListOptions = {}): LoopObs[] {
  let names: string[];
  if (opts.names) {
    names = opts.names.filter((n) => LOOP_NAME.test(n));
  } else {
    try {
      names = readLoopNames();
    } catch {
      return [];
    }
  }
  const mounts = opts.mounts ?? mountedDevices();
  const buf = Buffer.alloc(LOOP_INFO64_SIZE);
  const seqBuf = Buffer.alloc(8);
  const pathBuf = Buffer.alloc(8192); // PATH_MAX plus " (deleted)"
  const dirBuf = Buffer.alloc(8192);
  const out: LoopObs[] = [];
  for (const name of names) {
    const obs = observeOne(name, buf, seqBuf, pathBuf, dirBuf, mounts, opts.held);
    if (obs) out.push(obs);
  }
  out.sort((x, y) => x.number - y.number);
  return out;
}

function observeOne(
  name: string,
  buf: Buffer,
  seqBuf: Buffer,
  pathBuf: Buffer,
  dirBuf: Buffer,
  mounts: { devs: Set<string>; loopNames: Set<string> },
  held: ReadonlySet<string> | undefined,
): LoopObs | undefined {
  const bound = openBound(name, buf);
  if (!bound) return undefined;
  const { fd, info } = bound;
  try {
    const diskseq = String(getDiskseq(fd, seqBuf));
    const blockSize = getLogicalBlockSize(fd, seqBuf);
    // loop_add(): first_minor = index << part_shift (no fstat needed).
    const major = LOOP_MAJOR;
    const minor = loopMinor(info.number);
    // Bound but no sysfs loop/ dir yet: leave the path empty.
    let backingPath = readSmallFile(`/sys/block/${name}/loop/backing_file`, pathBuf) ?? '';
    if (backingPath.endsWith('\n')) backingPath = backingPath.slice(0, -1);
    let backingDeleted = false;
    if (backingPath.endsWith(' (deleted)')) {
      // d_path() appends " (deleted)" to an unlinked file; a file really named so still stats to the inode.
      backingDeleted = true;
      try {
        const s = statSync(backingPath, { bigint: true });
        if (s.dev === info.device && s.ino === info.inode) backingDeleted = false;
      } catch {
        // gone: deleted
      }
    }
    const holders = (readDirNames(`/sys/block/${name}/holders`, dirBuf) ?? []).sort();
    return {
      name,
      number: Number(name.slice(4)),
      major,
      minor,
      diskseq,
      backing: { dev: String(info.device), ino: String(info.inode) },
      backingPath,
      backingDeleted,
      readOnly: (info.flags & LO_FLAGS_READ_ONLY) !== 0,
      autoclear: (info.flags & LO_FLAGS_AUTOCLEAR) !== 0,
      directIo: (info.flags & LO_FLAGS_DIRECT_IO) !== 0,
      blockSize,
      offset: String(info.offset),
      sizeLimit: String(info.sizeLimit),
      ours: markerMatches(info),
      mounted: mounts.devs.has(`${major}:${minor}`) || mounts.loopNames.has(name),
      holders,
      heldByUs: held?.has(diskseq) ?? false,
    };
  } finally {
    sysClose(fd);
  }
}
