// What libxl's device_disk_add (tools/libs/light/libxl_disk.c, Xen 4.17) writes for a disk whose spec is
// `format=raw,vdev=VDEV,access=rw|ro,script=SCRIPT,target=PATH`, in one transaction: the frontend dir,
// the backend dir (no physical-device: the hotplug script provides it) and libxl's own copy. Used by the
// hook tests and `bench hook`, so that both see the backends libxl would hand the script.
import { backendPerms, frontendPerms, vbdPaths, type VbdPaths } from '../../src/xenstore/layout.js';
import type { XsClient } from '../../src/xenstore/api.js';

export interface LibxlDisk {
  frontendDomid: number;
  devid: number;
  vdev: string;
  target: string;
  mode: 'r' | 'w';
  script: string;
  /** libxl writes `phy` for a raw file handed to a script (the backend type blkback serves). */
  type?: string;
}

export async function libxlDiskAdd(xs: XsClient, d: LibxlDisk): Promise<VbdPaths> {
  const id = { backendDomid: 0, frontendDomid: d.frontendDomid, devid: d.devid };
  const p = vbdPaths(id);
  const bents: Record<string, string> = {
    params: d.target,
    script: d.script,
    'frontend-id': String(d.frontendDomid),
    online: '1',
    removable: '0',
    bootable: '1',
    state: '1',
    dev: d.vdev,
    type: d.type ?? 'phy',
    mode: d.mode,
    'device-type': 'disk',
    'discard-enable': '0',
  };
  await xs.transaction(async (tx) => {
    await tx.rm(p.libxl);
    await tx.write(`${p.libxl}/frontend`, p.frontend);
    await tx.write(`${p.libxl}/backend`, p.backend);
    await tx.mkdir(p.frontend);
    await tx.setPerms(p.frontend, frontendPerms(id));
    await tx.write(`${p.frontend}/backend`, p.backend);
    for (const [k, v] of Object.entries({ 'backend-id': '0', state: '1', 'virtual-device': String(d.devid), 'device-type': 'disk' })) {
      await tx.write(`${p.frontend}/${k}`, v);
    }
    await tx.mkdir(p.backend);
    await tx.setPerms(p.backend, backendPerms(id));
    await tx.write(`${p.backend}/frontend`, p.frontend);
    for (const [k, v] of Object.entries(bents)) await tx.write(`${p.backend}/${k}`, v);
    for (const [k, v] of Object.entries(bents)) await tx.write(`${p.libxl}/${k}`, v);
  });
  return p;
}

/** What libxl does after the script's `remove`: the three dirs go, in one transaction. */
export async function libxlDiskRemove(xs: XsClient, p: VbdPaths): Promise<void> {
  await xs.transaction(async (tx) => {
    for (const x of [p.backend, p.frontend, p.libxl]) await tx.rm(x);
  });
}
