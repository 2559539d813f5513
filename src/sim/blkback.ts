// A simulated xen-blkback (Linux drivers/block/xen-blkback/xenbus.c + xenbus_probe), as
// observed on Xen 4.17 (see /work/shared/xenlab/README.md):
//  - a new backend dir backend/vbd/<domid>/<devid> whose own state is 1 is probed: needs
//    frontend-id + frontend and an existing frontend dir, else it is left alone for good
//    (until the dir goes away);
//  - probe writes feature-max-indirect-segments=256, multi-queue-max-queues=2,
//    max-ring-page-order=4 and moves to 2 (InitWait);
//  - physical-device (hex major:minor) makes it open the device FOR REAL (O_RDONLY/O_RDWR by
//    mode) and publish <sysfs>/vbd-<domid>-<devid>/physical_device and mode;
//  - a frontend at 3/4 with event-channel + ring-ref connects (4) once the device is open;
//    without them: "22 reading <frontend>/event-channel" under /local/domain/0/error/... and 5;
//  - frontend 5 -> 5; frontend 6 -> 6 (the device stays held while online=1), and when
//    online != 1 unregistered: device closed, sysfs entry gone (state left as it was);
//    frontend 1 while closed -> 2 again ("prepare for reconnect"), device still held;
//  - a frontend state node that disappears (Unknown) -> unregistered as well;
//  - the backend dir removed -> the device is released.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, constants as fsc } from 'node:fs';
import { sysMknodBlock } from '../linux/ffi.js';
import { join } from 'node:path';
import type { Caller, Store } from './store.js';
import { KernelWatcher } from './kwatch.js';
import { XenbusState } from '../model/observed.js';
// (the node names are the schema's; its values are parsed as the kernel's scanf does, on purpose)
import { PHYSICAL_DEVICE_NODE } from '../xen/vbd.js';

const KERNEL: Caller = { domid: 0, privileged: true };
const BE_ROOT = '/local/domain/0/backend/vbd';
const BE_RE = /^\/local\/domain\/0\/backend\/vbd\/(\d+)\/(\d+)(?:\/|$)/;

export { XenbusState };

export interface BackendInfo {
  domid: number;
  devid: number;
  /**
   * 'probed': a registered backend device. 'wedged': connected without a "dev" node (error
   * "2 get blkback dev name"): real blkback then never lets go of the device, even after the
   * backend and frontend dirs are gone (recorded by the Xen suite); only close() releases it.
   * (An unprobed backend is simply not listed.)
   */
  status: 'probed' | 'wedged';
  /** "major:minor" (hex) of the device held open, if any. */
  held: string | undefined;
  mode: 'r' | 'w' | undefined;
  connected: boolean;
}

interface Vbd {
  domid: number;
  devid: number;
  root: string;
  frontend: string;
  fd: number | undefined;
  major: number;
  minor: number;
  writable: boolean;
  ringsConnected: boolean;
  sysDir: string;
  wedged: boolean;
}

export class Blkback {
  private readonly vbds = new Map<string, Vbd>();
  /** Devices of wedged backends that were unregistered: held until shutdown. */
  private readonly wedged: Vbd[] = [];
  private readonly w: KernelWatcher;
  /** Called when a backend reaches InitWait (used for auto-connecting simulated guests). */
  onInitWait: ((domid: number, devid: number) => void) | undefined;
  /** Optional log of what blkback does (xvbd sim --verbose). */
  log: ((line: string) => void) | undefined;
  /** Model the "dev" node wedge (see BackendInfo.status); off unless asked for. */
  requireDev = false;

  constructor(
    private readonly store: Store,
    private readonly sysfsDir: string,
  ) {
    this.w = new KernelWatcher(store, KERNEL, (p, t) => this.event(p, t));
    this.w.watch(BE_ROOT, 'be');
  }

  list(): BackendInfo[] {
    return [...this.vbds.values(), ...this.wedged].map((v) => ({
      domid: v.domid,
      devid: v.devid,
      status: v.wedged ? 'wedged' : 'probed',
      held: v.fd !== undefined ? `${v.major.toString(16)}:${v.minor.toString(16)}` : undefined,
      mode: v.fd !== undefined ? (v.writable ? 'w' : 'r') : undefined,
      connected: v.ringsConnected,
    }));
  }

  async settle(): Promise<void> {
    for (let i = 0; i < 1000 && this.w.busy; i++) await this.w.drained();
  }

  get busy(): boolean {
    return this.w.busy;
  }

  shutdown(): void {
    this.w.stop();
    for (const v of [...this.vbds.values(), ...this.wedged.splice(0)]) {
      v.wedged = false;
      this.unregister(v);
    }
  }

  // ---- xenstore helpers ----------------------------------------------------------------------
  private read(path: string): string | undefined {
    return this.store.readValue(path);
  }

  private write(path: string, value: string): void {
    this.store.write(this.store.main, KERNEL, path, Buffer.from(value));
  }

  private beState(v: Vbd): number {
    return Number.parseInt(this.read(`${v.root}/state`) ?? '', 10) || 0;
  }

  /** xenbus_switch_state: only if the state node still exists. */
  private switchState(v: Vbd, state: number): void {
    if (this.read(`${v.root}/state`) === undefined) return;
    if (this.beState(v) === state) return;
    this.log?.(`blkback vbd-${v.domid}-${v.devid}: state ${this.beState(v)} -> ${state}`);
    this.write(`${v.root}/state`, String(state));
    if (state === XenbusState.InitWait) this.onInitWait?.(v.domid, v.devid);
  }

  /** xenbus_dev_fatal: "<errno> <message>" under /local/domain/0/error/<nodename>/error, then Closing. */
  private fatal(v: Vbd, errno: number, message: string): void {
    this.log?.(`blkback vbd-${v.domid}-${v.devid}: error ${errno} ${message}`);
    this.write(`/local/domain/0/error/backend/vbd/${v.domid}/${v.devid}/error`, `${errno} ${message}`);
    this.switchState(v, XenbusState.Closing);
  }

  // ---- events --------------------------------------------------------------------------------
  private event(path: string, token: string): void {
    if (token === 'be') return this.devChanged(path);
    const [kind, key] = token.split(':') as [string, string];
    const v = this.vbds.get(key);
    if (!v) return;
    if (kind === 'pd') this.backendChanged(v);
    else if (kind === 'fe') this.frontendChanged(v);
  }

  /** xenbus_dev_changed for the backend bus. */
  private devChanged(path: string): void {
    const m = BE_RE.exec(path);
    if (!m) {
      // backend/vbd or backend/vbd/<domid> (or the whole tree) changed: drop every device whose
      // dir is missing (removed children fired too, but be thorough)
      for (const v of [...this.vbds.values()]) if (!this.store.nodes.has(v.root)) this.unregister(v);
      return;
    }
    const domid = Number(m[1]);
    const devid = Number(m[2]);
    const key = `${domid}/${devid}`;
    const root = `${BE_ROOT}/${domid}/${devid}`;
    const v = this.vbds.get(key);
    if (!this.store.nodes.has(root)) {
      if (v) this.unregister(v);
      return;
    }
    if (v) return;
    // xenbus_probe_node: only a new device (own state Initialising) is probed.
    if (this.read(`${root}/state`) !== '1') return;
    this.probe(domid, devid, key, root);
  }

  private probe(domid: number, devid: number, key: string, root: string): void {
    // Observed on 4.17 / Linux 6.1: while frontend-id/frontend are missing or the frontend dir
    // does not exist, nothing is registered (no sysfs entry, no error, state stays 1); the
    // next change under the backend dir tries again.
    const feId = this.read(`${root}/frontend-id`);
    const fe = this.read(`${root}/frontend`);
    if (feId === undefined || fe === undefined || !/^\d+$/.test(feId)) return;
    if (fe.length === 0 || !fe.startsWith('/') || !this.store.nodes.has(fe)) return;
    const sysDir = join(this.sysfsDir, `vbd-${domid}-${devid}`);
    // a wedged vbd of the same name still holds its sysfs entry: device_register fails (-EEXIST)
    if (this.wedged.some((w) => w.sysDir === sysDir)) {
      this.log?.(`blkback vbd-${domid}-${devid}: not registered (a wedged vbd of that name remains)`);
      return;
    }
    const v: Vbd = {
      domid, devid, root, frontend: fe, fd: undefined, major: 0, minor: 0,
      writable: false, ringsConnected: false, sysDir, wedged: false,
    };
    this.vbds.set(key, v);
    try {
      mkdirSync(sysDir, { recursive: true });
      writeFileSync(join(sysDir, 'nodename'), `backend/vbd/${domid}/${devid}\n`);
    } catch {
      // sysfs mirror is best effort
    }
    // blkback_probe
    this.write(`${root}/feature-max-indirect-segments`, '256');
    this.write(`${root}/multi-queue-max-queues`, '2');
    this.write(`${root}/max-ring-page-order`, '4');
    this.w.watch(`${root}/${PHYSICAL_DEVICE_NODE}`, `pd:${key}`);
    this.switchState(v, XenbusState.InitWait);
    // watch_otherend
    this.w.watch(`${fe}/state`, `fe:${key}`);
  }

  /** The physical-device watch (backend_changed in xen-blkback/xenbus.c). */
  private backendChanged(v: Vbd): void {
    if (v.fd !== undefined) return;
    const pd = this.read(`${v.root}/${PHYSICAL_DEVICE_NODE}`);
    if (pd === undefined) return; // fires once at registration: wait for the hotplug script
    // xenbus_scanf("%x:%x"): no conversion at all counts as "not there yet" (-ERANGE, ignored,
    // as observed); one conversion is a fatal "-1 reading physical-device".
    const m = /^\s*(?:0[xX])?([0-9a-fA-F]+)(?::\s*(?:0[xX])?([0-9a-fA-F]+))?/.exec(pd);
    if (!m) return;
    if (m[2] === undefined) {
      this.fatal(v, -1, 'reading physical-device');
      return;
    }
    const mode = this.read(`${v.root}/mode`);
    if (mode === undefined) {
      this.fatal(v, 2, 'reading mode');
      return;
    }
    this.open(v, Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16), mode.includes('w'));
    if (v.fd !== undefined) this.updateStatus(v);
  }

  private open(v: Vbd, major: number, minor: number, writable: boolean): void {
    const node = join(this.sysfsDir, `.dev-${process.pid}-${v.domid}-${v.devid}`);
    let fd: number | undefined;
    try {
      try {
        unlinkSync(node); // a leftover of a killed simulator (rmSync would walk it as a tree)
      } catch {
        // none
      }
      // mknod(2) in-process: a forked mknod(1) blocked the simulator's event loop for milliseconds per device
      sysMknodBlock(node, major, minor);
      fd = openSync(node, (writable ? fsc.O_RDWR : fsc.O_RDONLY));
    } catch {
      fd = undefined;
    } finally {
      try {
        unlinkSync(node);
      } catch {
        // not created
      }
    }
    if (fd === undefined) {
      // xen_vbd_create: "device %08x could not be opened" -> -ENOENT
      this.fatal(v, 2, 'creating vbd structure');
      return;
    }
    v.fd = fd;
    this.log?.(`blkback vbd-${v.domid}-${v.devid}: holds ${major.toString(16)}:${minor.toString(16)} (${writable ? 'rw' : 'ro'})`);
    v.major = major;
    v.minor = minor;
    v.writable = writable;
    try {
      writeFileSync(join(v.sysDir, 'physical_device'), `${major.toString(16)}:${minor.toString(16)}\n`);
      writeFileSync(join(v.sysDir, 'mode'), `${writable ? 'w' : 'r'}\n`);
      mkdirSync(join(v.sysDir, 'statistics'), { recursive: true });
      for (const f of ['oo_req', 'rd_req', 'wr_req', 'f_req', 'ds_req', 'rd_sect', 'wr_sect']) writeFileSync(join(v.sysDir, 'statistics', f), '0\n');
    } catch {
      // best effort
    }
  }

  private closeDevice(v: Vbd): void {
    if (v.fd === undefined || v.wedged) return;
    this.log?.(`blkback vbd-${v.domid}-${v.devid}: releases ${v.major.toString(16)}:${v.minor.toString(16)}`);
    try {
      closeSync(v.fd);
    } catch {
      // already closed
    }
    v.fd = undefined;
    v.major = 0;
    v.minor = 0;
    rmSync(join(v.sysDir, 'physical_device'), { force: true });
    rmSync(join(v.sysDir, 'mode'), { force: true });
    rmSync(join(v.sysDir, 'statistics'), { recursive: true, force: true });
  }

  /** frontend_changed in xen-blkback/xenbus.c. */
  private frontendChanged(v: Vbd): void {
    const raw = this.read(`${v.frontend}/state`);
    const fs = raw === undefined ? XenbusState.Unknown : Number.parseInt(raw, 10) || 0;
    const be = this.beState(v);
    switch (fs) {
      case XenbusState.Initialising:
        // "prepare for reconnect": back to InitWait. The device stays open (observed).
        if (be === XenbusState.Closed) this.switchState(v, XenbusState.InitWait);
        break;
      case XenbusState.Initialised:
      case XenbusState.Connected: {
        if (be === XenbusState.Connected) break;
        v.ringsConnected = false;
        if (!this.connectRing(v)) break;
        this.updateStatus(v);
        break;
      }
      case XenbusState.Closing:
        this.switchState(v, XenbusState.Closing);
        break;
      case XenbusState.Closed: {
        // xen_blkif_disconnect only frees the rings: the device stays held while online=1
        // (observed: losetup -d then only sets autoclear). online=0: unregistered, released.
        v.ringsConnected = false;
        this.switchState(v, XenbusState.Closed);
        if (this.read(`${v.root}/online`) === '1') break;
        this.unregister(v);
        break;
      }
      case XenbusState.Unknown:
        this.unregister(v);
        break;
      default:
        this.fatal(v, 22, `saw state ${fs} at frontend`);
    }
  }

  /** connect_ring: the frontend's event-channel and ring-ref(s). */
  private connectRing(v: Vbd): boolean {
    const fe = v.frontend;
    const proto = this.read(`${fe}/protocol`);
    if (proto !== undefined && !['x86_32-abi', 'x86_64-abi', 'arm-abi'].includes(proto)) {
      this.fatal(v, 38, `unknown fe protocol ${proto}`);
      return false;
    }
    // multi-queue-num-queues (default 1, at most multi-queue-max-queues = 2)
    const nq = this.read(`${fe}/multi-queue-num-queues`);
    const queues = nq === undefined ? 1 : Number.parseInt(nq, 10);
    if (!Number.isInteger(queues) || queues < 1 || queues > 2) {
      this.fatal(v, 38, `Invalid number of requested queues ${nq}`);
      return false;
    }
    const dirs = queues === 1 ? [fe] : Array.from({ length: queues }, (_, i) => `${fe}/queue-${i}`);
    for (const dir of dirs) {
      const evtchn = this.read(`${dir}/event-channel`);
      if (evtchn === undefined || !/^\d+$/.test(evtchn.trim())) {
        this.fatal(v, 22, `reading ${dir}/event-channel`);
        return false;
      }
      const ring = this.read(`${dir}/ring-ref`) ?? this.read(`${dir}/ring-ref0`);
      if (ring === undefined || !/^\d+$/.test(ring.trim())) {
        this.fatal(v, 22, `reading ${dir}/ring-ref`);
        return false;
      }
    }
    v.ringsConnected = true;
    return true;
  }

  /** xen_update_blkif_status + connect(): Connected once rings and device are both there. */
  private updateStatus(v: Vbd): void {
    if (this.beState(v) === XenbusState.Connected) return;
    if (!v.ringsConnected || v.fd === undefined) return;
    const sys = `/sys/dev/block/${v.major}:${v.minor}`;
    const num = (f: string, dflt: string) => {
      try {
        return readFileSync(join(sys, f), 'utf8').trim() || dflt;
      } catch {
        return dflt;
      }
    };
    const r = v.root;
    this.write(`${r}/feature-flush-cache`, '1');
    if (this.read(`${r}/discard-enable`) !== '0') {
      this.write(`${r}/discard-granularity`, num('queue/discard_granularity', '4096'));
      this.write(`${r}/discard-alignment`, num('discard_alignment', '0'));
      this.write(`${r}/discard-secure`, '0');
      this.write(`${r}/feature-discard`, '1');
    }
    this.write(`${r}/feature-barrier`, '1');
    this.write(`${r}/feature-persistent`, '1');
    this.write(`${r}/sectors`, num('size', '0'));
    const cdrom = this.read(`${r}/device-type`) === 'cdrom';
    this.write(`${r}/info`, String((v.writable ? 0 : 4) | (cdrom ? 1 : 0)));
    this.write(`${r}/sector-size`, num('queue/logical_block_size', '512'));
    this.write(`${r}/physical-sector-size`, num('queue/physical_block_size', '512'));
    this.switchState(v, XenbusState.Connected);
    // blkback_name(): the kthreads are named after the backend's "dev" node. Without it:
    // xenbus_dev_error (state stays 4) and the device is never released (recorded).
    if (this.requireDev && this.read(`${r}/dev`) === undefined) {
      this.write(`/local/domain/0/error/backend/vbd/${v.domid}/${v.devid}/error`, '2 get blkback dev name');
      this.log?.(`blkback vbd-${v.domid}-${v.devid}: error 2 get blkback dev name (wedged: the device stays held)`);
      v.wedged = true;
    }
  }

  /** device_unregister: the device is closed and the sysfs entry goes (neither for a wedged vbd). */
  private unregister(v: Vbd): void {
    this.closeDevice(v);
    v.ringsConnected = false;
    const key = `${v.domid}/${v.devid}`;
    this.w.unwatch(`${v.root}/${PHYSICAL_DEVICE_NODE}`, `pd:${key}`);
    this.w.unwatch(`${v.frontend}/state`, `fe:${key}`);
    this.vbds.delete(key);
    if (v.wedged) {
      // recorded on 4.17: the wedged vbd's sysfs entry stays, with physical_device and mode,
      // after the backend and frontend dirs are gone; shutdown() clears v.wedged and comes back here
      if (!this.wedged.includes(v)) this.wedged.push(v);
      return;
    }
    rmSync(v.sysDir, { recursive: true, force: true });
  }
}
