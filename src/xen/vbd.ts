// The xenstore vbd schema, spelled out once: the node names libxl, blkback and xvbd use in a backend
// dir, the limits Xen puts on domids and devids, and strict parsers for the values xvbd reads back.
// Pure: imports nothing but the model. Whatever a guest or another tool may have written is untrusted:
// a parser returns undefined for anything that is not exactly the form, never throws.
// (native/xvbd-hook.c checks XENBUS_PATH with the same limits, in C.)
import type { Inode } from '../model/observed.js';

/** xvbd's ownership marker in a backend dir (`xvbd = 1`). */
export const MARKER_NODE = 'xvbd';
export const MARKER_VALUE = '1';
/** The loop device's diskseq xvbd recorded when it served the backend. */
export const DISKSEQ_NODE = 'diskseq';
/** The source file's identity xvbd recorded, "<st_dev>:<st_ino>". */
export const INODE_NODE = 'xvbd-inode';
/** hex "major:minor" of the device blkback opens (the hotplug script's output). */
export const PHYSICAL_DEVICE_NODE = 'physical-device';
export const PHYSICAL_DEVICE_PATH_NODE = 'physical-device-path';

/** The nodes that say which device a backend is served from (the marker is not one: it says whose). */
export const SERVED_DEVICE_NODES = [PHYSICAL_DEVICE_NODE, PHYSICAL_DEVICE_PATH_NODE, 'node', DISKSEQ_NODE, INODE_NODE] as const;

/** DOMID_FIRST_RESERVED (xen/include/public/xen.h): domids at or above are not real domains. */
export const DOMID_FIRST_RESERVED = 0x7ff0;
/** The largest real domid. */
export const MAX_DOMID = DOMID_FIRST_RESERVED - 1;
/** The largest devid a vbd path may carry (libxl's devid is a 32-bit number; so is the C hook's). */
export const MAX_DEVID = 0xffffffff;

export interface VbdId {
  backendDomid: number;
  frontendDomid: number;
  devid: number;
}

/** A decimal domid 0..MAX_DOMID, canonical (no sign, no leading zeros), or undefined. */
export function parseDomid(s: string | undefined): number | undefined {
  if (s === undefined || !/^(0|[1-9]\d{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_DOMID ? n : undefined;
}

/** A decimal devid 0..MAX_DEVID, canonical, or undefined. */
export function parseDevid(s: string | undefined): number | undefined {
  if (s === undefined || !/^(0|[1-9]\d{0,9})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_DEVID ? n : undefined;
}

export function isDomid(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_DOMID;
}

export function isDevid(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= MAX_DEVID;
}

/** A 64-bit unsigned decimal (diskseq, st_dev, st_ino): digits only, no sign, no leading zeros. */
export function parseU64(s: string | undefined): string | undefined {
  if (s === undefined || !/^(0|[1-9]\d{0,19})$/.test(s)) return undefined;
  return BigInt(s) <= 0xffffffffffffffffn ? s : undefined;
}

export function isDecimalU64(s: string): boolean {
  return parseU64(s) !== undefined;
}

/** `xvbd-inode` as xvbd writes it: "<st_dev>:<st_ino>", both canonical u64. */
export function parseInode(s: string | undefined): Inode | undefined {
  if (s === undefined) return undefined;
  const i = s.indexOf(':');
  if (i < 0) return undefined;
  const dev = parseU64(s.slice(0, i));
  const ino = parseU64(s.slice(i + 1));
  return dev !== undefined && ino !== undefined ? { dev, ino } : undefined;
}

export function formatInode(i: Inode): string {
  if (!isDecimalU64(i.dev) || !isDecimalU64(i.ino)) throw new RangeError(`bad inode ${i.dev}:${i.ino}`);
  return `${i.dev}:${i.ino}`;
}

/** Linux's device number limits (MINORBITS 20: majors below 4096, minors below 2^20). */
const MAX_MAJOR = 0xfff;
const MAX_MINOR = 0xfffff;

/** "major:minor" in lower-case hex without padding, as `stat -c %t:%T` and the block script write it. */
export function formatPhysicalDevice(major: number, minor: number): string {
  if (!Number.isInteger(major) || major < 0 || !Number.isInteger(minor) || minor < 0) {
    throw new RangeError(`bad device number ${major}:${minor}`);
  }
  return `${major.toString(16)}:${minor.toString(16)}`;
}

/**
 * `physical-device` exactly as xvbd and the block script write it (formatPhysicalDevice: lower-case hex,
 * no padding) and within Linux's device number limits: what xvbd checks a value it wrote against.
 */
export function parsePhysicalDevice(s: string | undefined): { major: number; minor: number } | undefined {
  if (s === undefined) return undefined;
  const m = /^(0|[1-9a-f][0-9a-f]{0,7}):(0|[1-9a-f][0-9a-f]{0,7})$/.exec(s);
  if (!m) return undefined;
  const major = parseInt(m[1]!, 16);
  const minor = parseInt(m[2]!, 16);
  if (major > MAX_MAJOR || minor > MAX_MINOR) return undefined;
  return { major, minor };
}

/**
 * `physical-device` as any hotplug script may have written it: hex "major:minor", 1..8 digits each, either
 * case, padding allowed ("7:0", "fd:1", "FD:01"). What the observer records and the planner counts as the
 * device a backend uses: reading more forms than xvbd writes only ever counts more devices as in use.
 * Nothing else (spaces, "0x", a third field) is taken as a device.
 */
export function readPhysicalDevice(s: string | undefined): { major: number; minor: number } | undefined {
  if (s === undefined) return undefined;
  const m = /^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,8})$/.exec(s);
  if (!m) return undefined;
  return { major: parseInt(m[1]!, 16), minor: parseInt(m[2]!, 16) };
}

/** `/local/domain/<be>/backend/vbd/<fe>/<devid>`: the path of a vbd backend dir. */
export function backendPath(id: VbdId): string {
  return `/local/domain/${id.backendDomid}/backend/vbd/${id.frontendDomid}/${id.devid}`;
}

/** Parses a backend dir path `/local/domain/<be>/backend/vbd/<fe>/<devid>` strictly (canonical decimals, limits). */
export function parseBackendPath(p: string): VbdId | undefined {
  const m = /^\/local\/domain\/([0-9]{1,5})\/backend\/vbd\/([0-9]{1,5})\/([0-9]{1,10})$/.exec(p);
  if (!m) return undefined;
  const backendDomid = parseDomid(m[1]);
  const frontendDomid = parseDomid(m[2]);
  const devid = parseDevid(m[3]);
  if (backendDomid === undefined || frontendDomid === undefined || devid === undefined) return undefined;
  return { backendDomid, frontendDomid, devid };
}

/**
 * A backend path as a request names it: XENBUS_PATH as libxl hands it to the hook (`backend/vbd/<fe>/<devid>`,
 * relative to dom0's home) or the absolute path. Undefined for anything else.
 */
export function parseBackendArg(raw: string): VbdId | undefined {
  return parseBackendPath(raw.startsWith('/') ? raw : `/local/domain/0/${raw}`);
}
