// Loop devices: struct layouts (linux/loop.h), attach (LOOP_CONFIGURE with a LOOP_SET_FD fallback),
// verification, ownership marker, diskseq, and freeing with proof.
//
// Lock order (as systemd's loop-util.c): flock(LOCK_EX) on /dev/loop-control first, then flock(LOCK_EX)
// on the loop device (through a separate fd, so the close that ends it wakes udev), never the reverse.
// The loop device itself is opened O_EXCL: that claims the block device, so a concurrent LOOP_CONFIGURE
// or LOOP_SET_FD by another allocator (losetup, udisks) on the same device fails with EBUSY instead of
// racing ours, and dom0 cannot mount a disk we are serving while we hold it.
import { instanceOf, isInstanceName } from '../host/instance.js';
import { readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BLKGETDISKSEQ,
  BLKSSZGET,
  BLKFLSBUF,
  E,
  LOCK_EX,
  LOCK_UN,
  LOOP_CLR_FD,
  LOOP_CONFIGURE,
  LOOP_CTL_ADD,
  LOOP_CTL_GET_FREE,
  LOOP_GET_STATUS64,
  LOOP_MAJOR,
  LOOP_SET_BLOCK_SIZE,
  LOOP_SET_DIRECT_IO,
  LOOP_SET_FD,
  LOOP_SET_STATUS64,
  LO_FLAGS_AUTOCLEAR,
  LO_FLAGS_DIRECT_IO,
  LO_FLAGS_PARTSCAN,
  LO_FLAGS_READ_ONLY,
  LO_NAME_SIZE,
  O_CLOEXEC,
  O_EXCL,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  SysError,
  ioctlInt,
  ioctlPtr,
  ioctlPtrErr,
  isSysError,
  sysClose,
  sysFlock,
  sysTryFlock,
  sysOpen,
  sysOpenErr,
} from './ffi.js';

// ---------------------------------------------------------------------------------------------------
// struct loop_info64 (232 bytes) and struct loop_config (304 bytes)
// ---------------------------------------------------------------------------------------------------

export const LOOP_INFO64_SIZE = 232;
export const LOOP_CONFIG_SIZE = 304;
/** Field offsets in struct loop_info64 (checked against the kernel by test/linux/layout.test.ts). */
export const LOOP_INFO64_OFFSETS = {
  lo_device: 0,
  lo_inode: 8,
  lo_rdevice: 16,
  lo_offset: 24,
  lo_sizelimit: 32,
  lo_number: 40,
  lo_encrypt_type: 44,
  lo_encrypt_key_size: 48,
  lo_flags: 52,
  lo_file_name: 56,
  lo_crypt_name: 120,
  lo_encrypt_key: 184,
  lo_init: 216,
} as const;
/** Field offsets in struct loop_config. */
export const LOOP_CONFIG_OFFSETS = { fd: 0, block_size: 4, info: 8, reserved: 240 } as const;

export interface LoopInfo {
  device: bigint;
  inode: bigint;
  rdevice: bigint;
  offset: bigint;
  sizeLimit: bigint;
  number: number;
  flags: number;
  /** lo_file_name up to the first NUL (latin1: the kernel stores raw bytes). */
  fileName: string;
}

export function encodeLoopInfo64(info: Partial<LoopInfo>, buf: Buffer = Buffer.alloc(LOOP_INFO64_SIZE), at = 0): Buffer {
  const o = LOOP_INFO64_OFFSETS;
  buf.fill(0, at, at + LOOP_INFO64_SIZE);
  buf.writeBigUInt64LE(info.device ?? 0n, at + o.lo_device);
  buf.writeBigUInt64LE(info.inode ?? 0n, at + o.lo_inode);
  buf.writeBigUInt64LE(info.rdevice ?? 0n, at + o.lo_rdevice);
  buf.writeBigUInt64LE(info.offset ?? 0n, at + o.lo_offset);
  buf.writeBigUInt64LE(info.sizeLimit ?? 0n, at + o.lo_sizelimit);
  buf.writeUInt32LE(info.number ?? 0, at + o.lo_number);
  buf.writeUInt32LE((info.flags ?? 0) >>> 0, at + o.lo_flags);
  if (info.fileName !== undefined) {
    const name = Buffer.from(info.fileName, 'latin1');
    if (name.length > LO_NAME_SIZE - 1) throw new RangeError(`lo_file_name longer than ${LO_NAME_SIZE - 1} bytes`);
    name.copy(buf, at + o.lo_file_name);
  }
  return buf;
}

export function decodeLoopInfo64(buf: Buffer, at = 0): LoopInfo {
  const o = LOOP_INFO64_OFFSETS;
  const nameBytes = buf.subarray(at + o.lo_file_name, at + o.lo_file_name + LO_NAME_SIZE);
  const nul = nameBytes.indexOf(0);
  return {
    device: buf.readBigUInt64LE(at + o.lo_device),
    inode: buf.readBigUInt64LE(at + o.lo_inode),
    rdevice: buf.readBigUInt64LE(at + o.lo_rdevice),
    offset: buf.readBigUInt64LE(at + o.lo_offset),
    sizeLimit: buf.readBigUInt64LE(at + o.lo_sizelimit),
    number: buf.readUInt32LE(at + o.lo_number),
    flags: buf.readUInt32LE(at + o.lo_flags),
    fileName: nameBytes.subarray(0, nul < 0 ? LO_NAME_SIZE : nul).toString('latin1'),
  };
}

export function encodeLoopConfig(fd: number, blockSize: number, info: Partial<LoopInfo>): Buffer {
  const buf = Buffer.alloc(LOOP_CONFIG_SIZE);
  buf.writeUInt32LE(fd, LOOP_CONFIG_OFFSETS.fd);
  buf.writeUInt32LE(blockSize, LOOP_CONFIG_OFFSETS.block_size);
  encodeLoopInfo64(info, buf, LOOP_CONFIG_OFFSETS.info);
  return buf;
}

// ---------------------------------------------------------------------------------------------------
// Small ioctl helpers
// ---------------------------------------------------------------------------------------------------

/** LOOP_GET_STATUS64; throws SysError ENXIO on an unbound device. */
export function getStatus(fd: number): LoopInfo {
  const buf = Buffer.alloc(LOOP_INFO64_SIZE);
  ioctlPtr(fd, LOOP_GET_STATUS64, buf);
  return decodeLoopInfo64(buf);
}

/** LOOP_GET_STATUS64, or undefined if the device is not bound (ENXIO). */
export function tryGetStatus(fd: number, buf: Buffer = Buffer.alloc(LOOP_INFO64_SIZE)): LoopInfo | undefined {
  const r = ioctlPtrErr(fd, LOOP_GET_STATUS64, buf);
  if (r === -E.ENXIO) return undefined;
  if (r < 0) throw new SysError('ioctl(LOOP_GET_STATUS64)', -r);
  return decodeLoopInfo64(buf);
}

/** BLKGETDISKSEQ: the block device's sequence number (new on every attach), as bigint. */
export function getDiskseq(fd: number, buf: Buffer = Buffer.alloc(8)): bigint {
  ioctlPtr(fd, BLKGETDISKSEQ, buf);
  return buf.readBigUInt64LE(0);
}

export function getLogicalBlockSize(fd: number, buf: Buffer = Buffer.alloc(4)): number {
  ioctlPtr(fd, BLKSSZGET, buf);
  return buf.readInt32LE(0);
}

let partShiftCache: number | undefined;
/** The loop driver's part_shift: fls(max_part) (drivers/block/loop.c); 0 without partitions per device. */
export function partShift(): number {
  if (partShiftCache === undefined) {
    let maxPart = 0;
    try {
      maxPart = Number(readFileSync('/sys/module/loop/parameters/max_part', 'utf8').trim()) || 0;
    } catch {
      // built in without the parameter exposed: the default is 0
    }
    partShiftCache = maxPart > 0 ? 32 - Math.clz32(maxPart) : 0;
  }
  return partShiftCache;
}

/** loop_add(): first_minor = index << part_shift. */
export function loopMinor(index: number): number {
  return index * 2 ** partShift();
}

export { devMajor, devMinor } from './devnum.js';

// ---------------------------------------------------------------------------------------------------
// Ownership marker in lo_file_name
// ---------------------------------------------------------------------------------------------------

export const MARKER_PREFIX = 'xvbd:v1:';
const MARKER_RE = /^xvbd:v1:(\d{1,20}):(\d{1,20}):(ro|rw)(?::([a-z0-9][a-z0-9-]{0,9}))?$/;

/**
 * The xvbd instance this process is (src/linux/instance.ts): env XVBD_INSTANCE, else one derived from
 * the run dir ($XVBD_RUN_DIR; none for the default /run/xvbd). Devices are ours only if their marker
 * names the same instance (or none, for none), so test runs, demo hosts and second configs sharing a
 * machine never take, free or adopt each other's devices.
 */
export function currentInstance(): string | undefined {
  return instanceOf(process.env);
}

/**
 * The marker xvbd writes into lo_file_name: "xvbd:v1:<st_dev>:<st_ino>:<ro|rw>[:<instance>]" of the
 * backing file (at most 8+20+1+20+3+11 = 63 bytes, the room lo_file_name has). Binding the backing
 * inode into the marker lets a check compare it with lo_device/lo_inode: a device someone re-pointed
 * (LOOP_CHANGE_FD) no longer matches.
 */
export function makeMarker(backing: { dev: bigint; ino: bigint }, readOnly: boolean, instance: string | undefined = currentInstance()): string {
  if (instance !== undefined && !isInstanceName(instance)) throw new RangeError(`bad xvbd instance name ${JSON.stringify(instance)}`);
  return `${MARKER_PREFIX}${backing.dev}:${backing.ino}:${readOnly ? 'ro' : 'rw'}${instance !== undefined ? `:${instance}` : ''}`;
}

/** True if lo_file_name is a well-formed xvbd v1 marker of this instance (XVBD_INSTANCE, or none). */
export function isOurMarker(name: string, instance: string | undefined = currentInstance()): boolean {
  const m = parseMarker(name);
  return m !== undefined && m.instance === instance;
}

export function parseMarker(name: string): { dev: bigint; ino: bigint; readOnly: boolean; instance?: string } | undefined {
  const m = MARKER_RE.exec(name);
  if (!m) return undefined;
  const out: { dev: bigint; ino: bigint; readOnly: boolean; instance?: string } = { dev: BigInt(m[1]!), ino: BigInt(m[2]!), readOnly: m[3] === 'ro' };
  if (m[4] !== undefined) out.instance = m[4];
  return out;
}

/**
 * A device is ours if its marker is well formed, is this instance's, and names the inode and mode the
 * device actually has.
 */
export function markerMatches(info: LoopInfo, instance: string | undefined = currentInstance()): boolean {
  const m = parseMarker(info.fileName);
  return (
    m !== undefined &&
    m.instance === instance &&
    m.dev === info.device &&
    m.ino === info.inode &&
    m.readOnly === ((info.flags & LO_FLAGS_READ_ONLY) !== 0)
  );
}

// ---------------------------------------------------------------------------------------------------
// Attach
// ---------------------------------------------------------------------------------------------------

export interface AttachOptions {
  readOnly: boolean;
  directIo?: boolean;
  /** Logical block size (512..4096, power of two); undefined = kernel default. */
  blockSize?: number;
  offset?: bigint;
  sizeLimit?: bigint;
  /** Force the pre-5.8 path (LOOP_SET_FD + LOOP_SET_STATUS64), for tests and old kernels. */
  legacy?: boolean;
  /** Give up after this many retries on EBUSY/ENXIO/EAGAIN (default 64, as systemd). */
  maxAttempts?: number;
  /** Open the loop device O_EXCL (default true). */
  exclusive?: boolean;
  /** How long to wait for another allocator's lock on /dev/loop-control (default 10 s). */
  lockTimeoutMs?: number;
  /** Diagnostics: counts of retries and which path configured the device. */
  stats?: AttachStats;
}

export interface AttachStats {
  attempts: number;
  retries: Record<string, number>;
  ctlAdd: number;
  legacy: number;
}

/** An attached, verified loop device and the fd we hold on it. */
export interface AttachedLoop {
  fd: number;
  number: number;
  name: string;
  devPath: string;
  major: number;
  minor: number;
  diskseq: bigint;
  backing: { dev: bigint; ino: bigint };
  readOnly: boolean;
  marker: string;
}

/** Backing file as the caller opened it (see openSource). */
export interface BackingFd {
  fd: number;
  dev: bigint;
  ino: bigint;
}

/** A configure that did not give what we asked for: the device was detached again. */
export class LoopVerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoopVerifyError';
  }
}

// LOOP_CONFIGURE (5.8+) answered ENOTTY once: do not try it again in this process.
let loopConfigureMissing = false;

const RETRYABLE = new Set(['EBUSY', 'ENXIO', 'ENODEV', 'ENOENT', 'EAGAIN', 'EUCLEAN']);

/**
 * Attach `backing` to a free loop device with LO_FLAGS_AUTOCLEAR, verify it, and return it with the fd
 * we keep. Retries (bounded, randomized backoff) when another allocator races us to the device.
 */
export async function attachLoop(backing: BackingFd, opts: AttachOptions): Promise<AttachedLoop> {
  const bs = opts.blockSize;
  if (bs !== undefined && bs !== 0 && !(Number.isInteger(bs) && bs >= 512 && bs <= 4096 && (bs & (bs - 1)) === 0)) {
    throw new RangeError(`block size ${bs}: must be 512, 1024, 2048 or 4096`);
  }
  // One attach at a time in this process: the control fd (and so its flock) is shared by all of them.
  const run = attachQueue.then(() => attachSerialized(backing, opts));
  attachQueue = run.catch(() => undefined);
  return run;
}

let attachQueue: Promise<unknown> = Promise.resolve();
let controlFd = -1;

/** /dev/loop-control, opened once per process (an fd to it holds nothing). */
function loopControl(): number {
  if (controlFd < 0) controlFd = sysOpen('/dev/loop-control', O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  return controlFd;
}

async function attachSerialized(backing: BackingFd, opts: AttachOptions): Promise<AttachedLoop> {
  const maxAttempts = opts.maxAttempts ?? 64;
  const stats = opts.stats;
  const control = loopControl();
  let busyInARow = 0;
  for (let attempt = 0; ; attempt++) {
    if (stats) stats.attempts++;
    await lockControl(control, opts.lockTimeoutMs ?? 10_000);
    let nr: number;
    let lastErr: unknown;
    try {
      // After two devices in a row were taken from under us, stop asking for "a free one" (which the
      // other allocators are asking for too) and create a fresh device nobody has heard of yet.
      if (busyInARow >= 2) {
        nr = ioctlInt(control, LOOP_CTL_ADD, 0xffffffff /* (int)-1: any free index */);
        if (stats) stats.ctlAdd++;
      } else {
        nr = ioctlInt(control, LOOP_CTL_GET_FREE, 0);
      }
      return configureOne(nr, backing, opts);
    } catch (e) {
      lastErr = e;
    } finally {
      sysFlock(control, LOCK_UN);
    }
    const code = lastErr instanceof SysError ? lastErr.code : undefined;
    if (code === undefined || !RETRYABLE.has(code)) throw lastErr;
    if (stats) stats.retries[code] = (stats.retries[code] ?? 0) + 1;
    busyInARow = code === 'EBUSY' ? busyInARow + 1 : 0;
    if (attempt + 1 >= maxAttempts) throw lastErr;
    // systemd's backoff: random in [0, 10ms + 240ms * attempt/64].
    await sleep(Math.random() * (10 + (240 * attempt) / 64));
  }
}

/**
 * flock(LOCK_EX) on /dev/loop-control without blocking the event loop: poll with LOCK_NB and short
 * randomized sleeps, up to timeoutMs (a peer holds it only for the few ioctls of one attach).
 */
async function lockControl(control: number, timeoutMs: number): Promise<void> {
  const start = Date.now();
  for (let n = 0; !sysTryFlock(control, LOCK_EX); n++) {
    if (Date.now() - start > timeoutMs) throw new SysError('flock', E.ETIMEDOUT, '/dev/loop-control held by another process');
    await sleep(Math.min(1 + n, 20) * (0.5 + Math.random()));
  }
}

function configureOne(nr: number, backing: BackingFd, opts: AttachOptions): AttachedLoop {
  const devPath = `/dev/loop${nr}`;
  const exclusive = opts.exclusive ?? true;
  // O_RDWR for a read-write disk: the kernel makes the device read-only if the opener cannot write.
  // First a plain read-only fd: the BSD lock udev and systemd honour (on a second fd, so that closing
  // it later wakes udev), and a look whether someone bound the device meanwhile. A device that turns
  // out to be somebody else's has then only seen a read-only open and close from us.
  const lockFd = sysOpen(devPath, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  let fd = -1;
  let bound = false;
  try {
    // Somebody (udev probing, systemd-dissect, another xvbd) has it locked: treat it as taken.
    if (!sysTryFlock(lockFd, LOCK_EX)) throw new SysError('flock', E.EBUSY, `${devPath} is locked by another process`);
    if (tryGetStatus(lockFd) !== undefined) throw new SysError('attach', E.EBUSY, `${devPath} already bound`);
    fd = sysOpen(devPath, (opts.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (exclusive ? O_EXCL : 0));
    // Bound between our look and here by a tool that does not lock: LOOP_CONFIGURE / LOOP_SET_FD
    // then fail with EBUSY (the kernel checks Lo_unbound under its lock), and we retry elsewhere.

    const readOnly = opts.readOnly;
    const marker = makeMarker(backing, readOnly);
    const flags = LO_FLAGS_AUTOCLEAR | (readOnly ? LO_FLAGS_READ_ONLY : 0) | (opts.directIo ? LO_FLAGS_DIRECT_IO : 0);
    const info: Partial<LoopInfo> = {
      flags,
      offset: opts.offset ?? 0n,
      sizeLimit: opts.sizeLimit ?? 0n,
      fileName: marker,
    };
    let configured = false;
    if (!opts.legacy && !loopConfigureMissing) {
      const cfg = encodeLoopConfig(backing.fd, opts.blockSize ?? 0, info);
      try {
        ioctlPtr(fd, LOOP_CONFIGURE, cfg, devPath);
        configured = true;
        bound = true;
      } catch (e) {
        if (!isSysError(e, 'ENOTTY', 'EINVAL', 'EOPNOTSUPP')) throw e;
        if (isSysError(e, 'ENOTTY', 'EOPNOTSUPP')) loopConfigureMissing = true;
      }
    }
    if (!configured) {
      if (opts.stats) opts.stats.legacy++;
      configureLegacy(fd, backing.fd, info, opts, () => (bound = true));
    }

    const diskseq = verify(fd, backing, opts, marker);
    const attached: AttachedLoop = {
      fd,
      number: nr,
      name: `loop${nr}`,
      devPath,
      major: LOOP_MAJOR,
      minor: loopMinor(nr),
      diskseq,
      backing: { dev: backing.dev, ino: backing.ino },
      readOnly,
      marker,
    };
    return attached;
  } catch (e) {
    if (bound) {
      // Ours, half-done: let it go (autoclear is set, or CLR_FD frees it at our close).
      try {
        ioctlInt(fd, LOOP_CLR_FD, 0);
      } catch {
        // already clearing
      }
    }
    if (fd >= 0) sysClose(fd);
    throw e;
  } finally {
    sysClose(lockFd);
  }
}

/** The pre-5.8 way: LOOP_SET_FD, then LOOP_SET_STATUS64 (retrying EAGAIN), block size, direct I/O. */
function configureLegacy(fd: number, backingFd: number, info: Partial<LoopInfo>, opts: AttachOptions, onBound: () => void): void {
  ioctlInt(fd, LOOP_SET_FD, backingFd);
  onBound();
  // LOOP_SET_STATUS64 only takes AUTOCLEAR and PARTSCAN; READ_ONLY comes from the backing fd's mode.
  const settable = { ...info, flags: (info.flags ?? 0) & (LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN) };
  const buf = encodeLoopInfo64(settable);
  for (let n = 0; ; n++) {
    const r = ioctlPtrErr(fd, LOOP_SET_STATUS64, buf);
    if (r >= 0) break;
    if (-r !== E.EAGAIN || n >= 64) throw new SysError('ioctl(LOOP_SET_STATUS64)', -r);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10 + Math.random() * 40);
  }
  if ((info.offset ?? 0n) !== 0n || (info.sizeLimit ?? 0n) !== 0n) {
    try {
      ioctlInt(fd, BLKFLSBUF, 0);
    } catch {
      // best effort (systemd ignores it too)
    }
  }
  if (opts.blockSize) ioctlInt(fd, LOOP_SET_BLOCK_SIZE, opts.blockSize);
  if (opts.directIo) ioctlInt(fd, LOOP_SET_DIRECT_IO, 1);
}

/** Check that the device is what we configured; return its diskseq. Throws LoopVerifyError otherwise. */
function verify(fd: number, backing: BackingFd, opts: AttachOptions, marker: string): bigint {
  const st = getStatus(fd);
  const problems: string[] = [];
  if (st.device !== backing.dev || st.inode !== backing.ino) {
    problems.push(`backs ${st.device}:${st.inode}, not the file we opened (${backing.dev}:${backing.ino})`);
  }
  if (!(st.flags & LO_FLAGS_AUTOCLEAR)) problems.push('autoclear not set');
  if (Boolean(st.flags & LO_FLAGS_READ_ONLY) !== opts.readOnly) {
    problems.push(opts.readOnly ? 'not read-only' : 'read-only (is the file or its mount writable?)');
  }
  if (opts.directIo && !(st.flags & LO_FLAGS_DIRECT_IO)) problems.push('direct I/O was refused');
  if (!opts.directIo && st.flags & LO_FLAGS_DIRECT_IO) problems.push('direct I/O is on but was not asked for');
  if (st.offset !== (opts.offset ?? 0n)) problems.push(`offset ${st.offset}`);
  if (st.sizeLimit !== (opts.sizeLimit ?? 0n)) problems.push(`size limit ${st.sizeLimit}`);
  if (st.fileName !== marker) problems.push(`lo_file_name is "${st.fileName}"`);
  if (opts.blockSize) {
    const bs = getLogicalBlockSize(fd);
    if (bs !== opts.blockSize) problems.push(`block size ${bs}, asked ${opts.blockSize}`);
  }
  if (problems.length > 0) throw new LoopVerifyError(`loop device verification failed: ${problems.join('; ')}`);
  return getDiskseq(fd);
}

// ---------------------------------------------------------------------------------------------------
// Free with proof
// ---------------------------------------------------------------------------------------------------

export type FreeRefusal = 'not-bound' | 'not-ours' | 'diskseq-mismatch' | 'backing-mismatch' | 'no-device' | 'bad-name';

/** Why xvbd would not free a loop device. `reason` is machine-readable. */
export class LoopFreeRefused extends Error {
  readonly reason: FreeRefusal;
  readonly device: string;
  constructor(device: string, reason: FreeRefusal, detail: string) {
    super(`refusing to free ${device}: ${detail}`);
    this.name = 'LoopFreeRefused';
    this.reason = reason;
    this.device = device;
  }
}

/** What the caller recorded when it made the device: the proof that it is still that device. */
export interface FreeProof {
  /** "loop3" */
  name: string;
  /** The diskseq recorded at attach (decimal string). */
  diskseq: string;
  /** The backing inode recorded at attach, checked if given. */
  backing?: { dev: string; ino: string };
}

export interface FreeResult {
  name: string;
  diskseq: string;
  /** Still bound after our close: another opener (blkback, a mount) holds it; autoclear frees it later. */
  deferred: boolean;
}

/** Verify `fd` (an open loop device) against the proof; throws LoopFreeRefused. */
export function checkProof(fd: number, proof: FreeProof): LoopInfo {
  const info = tryGetStatus(fd);
  if (!info) throw new LoopFreeRefused(proof.name, 'not-bound', 'not bound to any file');
  if (!isOurMarker(info.fileName)) {
    throw new LoopFreeRefused(proof.name, 'not-ours', `no xvbd marker of this instance (lo_file_name "${info.fileName}")`);
  }
  if (!markerMatches(info)) {
    throw new LoopFreeRefused(proof.name, 'not-ours', `marker "${info.fileName}" does not match its backing ${info.device}:${info.inode}`);
  }
  const seq = getDiskseq(fd);
  if (String(seq) !== proof.diskseq) {
    throw new LoopFreeRefused(proof.name, 'diskseq-mismatch', `diskseq is ${seq}, recorded ${proof.diskseq} (the device was reused)`);
  }
  if (proof.backing && (String(info.device) !== proof.backing.dev || String(info.inode) !== proof.backing.ino)) {
    throw new LoopFreeRefused(
      proof.name,
      'backing-mismatch',
      `backs ${info.device}:${info.inode}, recorded ${proof.backing.dev}:${proof.backing.ino}`,
    );
  }
  return info;
}

/**
 * Free a loop device we made, given the proof recorded at attach: LOOP_CLR_FD on our own freshly
 * opened fd (the kernel then clears it at the last close; if blkback still holds it, when blkback lets go).
 */
export function freeLoop(proof: FreeProof): FreeResult {
  if (!/^loop\d{1,9}$/.test(proof.name)) throw new LoopFreeRefused(proof.name, 'bad-name', 'not a loop device name');
  const fd = sysOpenErr(`/dev/${proof.name}`, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    if (-fd === E.ENXIO) throw new LoopFreeRefused(proof.name, 'not-bound', 'being torn down');
    throw new LoopFreeRefused(proof.name, 'no-device', `cannot open: ${new SysError('open', -fd).code}`);
  }
  try {
    clearOwnFd(fd, proof);
  } finally {
    sysClose(fd);
  }
  // Our close was the last one unless someone else (blkback, a mount) still has it open.
  return { name: proof.name, diskseq: proof.diskseq, deferred: isBound(proof.name, proof.diskseq) };
}

/** checkProof + LOOP_CLR_FD on `fd` (the device clears when its last opener, maybe us, closes). */
export function clearOwnFd(fd: number, proof: FreeProof): void {
  checkProof(fd, proof);
  ioctlInt(fd, LOOP_CLR_FD, 0, proof.name);
}

/** Is /dev/<name> bound right now (with the given diskseq, if given)? Opens it read-only for the check. */
export function isBound(name: string, diskseq?: string): boolean {
  const fd = sysOpenErr(`/dev/${name}`, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return false;
  try {
    if (tryGetStatus(fd) === undefined) return false;
    return diskseq === undefined || String(getDiskseq(fd)) === diskseq;
  } finally {
    sysClose(fd);
  }
}

/** Resolve a block device's kernel name ("loop3", "sdb", "nvme0n1p2") from its major:minor via sysfs. */
export function blockName(major: number, minor: number): string | undefined {
  try {
    const link = readlinkSync(`/sys/dev/block/${major}:${minor}`);
    return link.slice(link.lastIndexOf('/') + 1);
  } catch {
    return undefined;
  }
}
