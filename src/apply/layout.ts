// The xenstore layout of one vbd, as libxl writes it (tools/libs/light/libxl_disk.c device_disk_add
// and libxl_device.c libxl__device_generic_add, Xen 4.17), plus xvbd's own nodes (notes/conventions.md).
// Pure functions: no I/O. The executor and the hook turn these into one xenstore transaction.
import type { XsPerms } from '../xenstore/api.js';
import type { DiskMode } from '../model/desired.js';
import type { Inode } from '../model/observed.js';

/** Our ownership marker node in a backend dir. */
export const MARKER_NODE = 'xvbd';
export const MARKER_VALUE = '1';
export const DISKSEQ_NODE = 'diskseq';
export const INODE_NODE = 'xvbd-inode';

/** First domid Xen reserves (DOMID_FIRST_RESERVED, xen/include/public/xen.h). */
export const DOMID_FIRST_RESERVED = 0x7ff0;

export interface VbdId {
  backendDomid: number;
  frontendDomid: number;
  devid: number;
}

export interface VbdPaths {
  /** /local/domain/<be>/backend/vbd/<fe>/<devid> */
  backend: string;
  /** /local/domain/<fe>/device/vbd/<devid> */
  frontend: string;
  /** /libxl/<fe>/device/vbd/<devid>: libxl's own copy, what `xl block-list` reads. */
  libxl: string;
  /** /local/domain/<be>/error/backend/vbd/<fe>/<devid>: where blkback and the hotplug scripts write errors. */
  error: string;
}

function checkDomid(what: string, d: number): void {
  if (!Number.isInteger(d) || d < 0 || d >= DOMID_FIRST_RESERVED) {
    throw new RangeError(`${what} ${d} is not a valid domid (0..${DOMID_FIRST_RESERVED - 1})`);
  }
}

function checkDevid(d: number): void {
  if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) throw new RangeError(`devid ${d} is out of range`);
}

export function vbdPaths(id: VbdId): VbdPaths {
  checkDomid('backend domain', id.backendDomid);
  checkDomid('frontend domain', id.frontendDomid);
  checkDevid(id.devid);
  const { backendDomid: be, frontendDomid: fe, devid } = id;
  return {
    backend: `/local/domain/${be}/backend/vbd/${fe}/${devid}`,
    frontend: `/local/domain/${fe}/device/vbd/${devid}`,
    libxl: `/libxl/${fe}/device/vbd/${devid}`,
    error: `/local/domain/${be}/error/backend/vbd/${fe}/${devid}`,
  };
}

/** libxl's backend dir permissions: owned by the backend domain, readable by the frontend. */
export function backendPerms(id: VbdId): XsPerms {
  return [
    { domid: id.backendDomid, perm: 'n' },
    { domid: id.frontendDomid, perm: 'r' },
  ];
}

/** libxl's frontend dir permissions: owned by the frontend domain, readable by the backend. */
export function frontendPerms(id: VbdId): XsPerms {
  return [
    { domid: id.frontendDomid, perm: 'n' },
    { domid: id.backendDomid, perm: 'r' },
  ];
}

/** "major:minor" in lower-case hex without padding, as `stat -c %t:%T` and the block script write it. */
export function formatPhysicalDevice(major: number, minor: number): string {
  if (!Number.isInteger(major) || major < 0 || !Number.isInteger(minor) || minor < 0) {
    throw new RangeError(`bad device number ${major}:${minor}`);
  }
  return `${major.toString(16)}:${minor.toString(16)}`;
}

/** Strict inverse of formatPhysicalDevice: undefined for anything else (leading zeros, upper case, spaces). */
export function parsePhysicalDevice(s: string): { major: number; minor: number } | undefined {
  const m = /^(0|[1-9a-f][0-9a-f]{0,7}):(0|[1-9a-f][0-9a-f]{0,7})$/.exec(s);
  if (!m) return undefined;
  const major = parseInt(m[1]!, 16);
  const minor = parseInt(m[2]!, 16);
  if (major > 0xfff || minor > 0xfffff) return undefined;
  return { major, minor };
}

/** A decimal u64 without sign, leading zeros or spaces (diskseq, st_dev, st_ino). */
export function isDecimalU64(s: string): boolean {
  return /^(0|[1-9][0-9]{0,19})$/.test(s) && BigInt(s) <= 0xffffffffffffffffn;
}

export function formatInode(i: Inode): string {
  if (!isDecimalU64(i.dev) || !isDecimalU64(i.ino)) throw new RangeError(`bad inode ${i.dev}:${i.ino}`);
  return `${i.dev}:${i.ino}`;
}

export function parseInode(s: string): Inode | undefined {
  const m = /^([0-9]+):([0-9]+)$/.exec(s);
  if (!m || !isDecimalU64(m[1]!) || !isDecimalU64(m[2]!)) return undefined;
  return { dev: m[1]!, ino: m[2]! };
}

/** The device xvbd gives blkback: a loop device it made, or a block-device source used as is. */
export interface ServedDevice {
  major: number;
  minor: number;
  /** /dev/loopN, or the block device's path. */
  devPath: string;
  /** Decimal u64; undefined for a block device without one. */
  diskseq?: string;
  /** The source file's identity (for a loop device). */
  sourceInode?: Inode;
}

/** The nodes that say "this backend is served by xvbd with this device": written by attach and by serve. */
export function servedNodes(dev: ServedDevice): Record<string, string> {
  const out: Record<string, string> = {
    'physical-device': formatPhysicalDevice(dev.major, dev.minor),
    'physical-device-path': dev.devPath,
    node: dev.devPath,
    [MARKER_NODE]: MARKER_VALUE,
  };
  if (dev.diskseq !== undefined) {
    if (!isDecimalU64(dev.diskseq)) throw new RangeError(`bad diskseq ${dev.diskseq}`);
    out[DISKSEQ_NODE] = dev.diskseq;
  }
  if (dev.sourceInode) out[INODE_NODE] = formatInode(dev.sourceInode);
  return out;
}

export interface AttachSpec extends VbdId {
  /** The vdev as libxl writes it in `dev` ("xvda"). */
  vdev: string;
  /** The source path (`params`). */
  params: string;
  mode: DiskMode;
  discard: boolean;
  /**
   * libxl writes `script` (default /etc/xen/scripts/block). `xl block-detach` runs it with `remove`
   * and fails without one: xvbd writes the path of its hook here so that a detach by xl releases cleanly.
   */
  script?: string;
  device: ServedDevice;
}

export interface AttachLayout {
  paths: VbdPaths;
  backendPerms: XsPerms;
  frontendPerms: XsPerms;
  /** Nodes of the backend dir (relative names), `frontend` included. */
  backend: Record<string, string>;
  /** Nodes of the frontend dir, `backend` included. */
  frontend: Record<string, string>;
  /** Nodes of libxl's dir: frontend + backend paths and a copy of the backend entries, as libxl keeps them. */
  libxl: Record<string, string>;
}

/** What libxl writes in its backend entries (bents), in libxl's order. */
function libxlBackendEntries(s: AttachSpec): Record<string, string> {
  const out: Record<string, string> = { params: s.params };
  if (s.script !== undefined) out.script = s.script;
  Object.assign(out, {
    'frontend-id': String(s.frontendDomid),
    online: '1',
    removable: '0',
    bootable: '1',
    state: '1',
    dev: s.vdev,
    type: 'phy',
    mode: s.mode === 'rw' ? 'w' : 'r',
    'device-type': 'disk',
    'discard-enable': s.discard ? '1' : '0',
  });
  return out;
}

/** The nodes of a new frontend dir, as libxl writes them (`state` 1: the guest's xenbus probes it). */
export function frontendNodes(id: VbdId): Record<string, string> {
  return {
    backend: vbdPaths(id).backend,
    'backend-id': String(id.backendDomid),
    state: '1',
    'virtual-device': String(id.devid),
    'device-type': 'disk',
  };
}

export function attachLayout(s: AttachSpec): AttachLayout {
  const paths = vbdPaths(s);
  if (!s.params.startsWith('/')) throw new RangeError(`params must be an absolute path: ${s.params}`);
  if (!/^[a-z]+[0-9]*$/.test(s.vdev) && !/^d[0-9]+p?[0-9]*$/.test(s.vdev)) {
    throw new RangeError(`bad vdev ${JSON.stringify(s.vdev)}`);
  }
  const bents = libxlBackendEntries(s);
  const backend: Record<string, string> = { frontend: paths.frontend, ...bents, ...servedNodes(s.device) };
  const frontend = frontendNodes(s);
  const libxl: Record<string, string> = { frontend: paths.frontend, backend: paths.backend, ...bents };
  return { paths, backendPerms: backendPerms(s), frontendPerms: frontendPerms(s), backend, frontend, libxl };
}

/** Parses a backend dir path `/local/domain/<be>/backend/vbd/<fe>/<devid>` strictly. */
export function parseBackendPath(p: string): VbdId | undefined {
  const m = /^\/local\/domain\/(0|[1-9][0-9]{0,4})\/backend\/vbd\/(0|[1-9][0-9]{0,4})\/(0|[1-9][0-9]{0,9})$/.exec(p);
  if (!m) return undefined;
  const id = { backendDomid: Number(m[1]), frontendDomid: Number(m[2]), devid: Number(m[3]) };
  if (id.backendDomid >= DOMID_FIRST_RESERVED || id.frontendDomid >= DOMID_FIRST_RESERVED) return undefined;
  if (id.devid > 0xffffffff) return undefined;
  return id;
}
