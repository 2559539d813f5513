// The xenstore layout of one vbd, as libxl writes it (tools/libs/light/libxl_disk.c device_disk_add
// and libxl_device.c libxl__device_generic_add, Xen 4.17), plus xvbd's own nodes (notes/conventions.md).
// Pure functions: no I/O. The executor and the hook turn these into one xenstore transaction.
import type { XsPerms } from './api.js';
import type { DiskMode } from '../model/desired.js';
import type { Inode } from '../model/observed.js';
import { backendPath, DISKSEQ_NODE, formatInode, formatPhysicalDevice, INODE_NODE, isDecimalU64, isDevid, isDomid, MARKER_NODE, MARKER_VALUE, MAX_DOMID, PHYSICAL_DEVICE_NODE, PHYSICAL_DEVICE_PATH_NODE, type VbdId } from '../xen/vbd.js';

export type { VbdId };

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
  if (!isDomid(d)) throw new RangeError(`${what} ${d} is not a valid domid (0..${MAX_DOMID})`);
}

function checkDevid(d: number): void {
  if (!isDevid(d)) throw new RangeError(`devid ${d} is out of range`);
}

export function vbdPaths(id: VbdId): VbdPaths {
  checkDomid('backend domain', id.backendDomid);
  checkDomid('frontend domain', id.frontendDomid);
  checkDevid(id.devid);
  const { backendDomid: be, frontendDomid: fe, devid } = id;
  return {
    backend: backendPath(id),
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
    [PHYSICAL_DEVICE_NODE]: formatPhysicalDevice(dev.major, dev.minor),
    [PHYSICAL_DEVICE_PATH_NODE]: dev.devPath,
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
