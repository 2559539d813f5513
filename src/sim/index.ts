// The embedded xenstore simulator: a xenstored-compatible unix socket (the real xenstore-*
// tools and libxenstore work against it with XENSTORED_PATH), simulated domains, a simulated
// blkback that really opens the devices it is given, and simulated guest frontends.
import { mkdirSync, rmSync } from 'node:fs';
import type { XsPerm } from '../xenstore/api.js';
import { Store, type Caller } from './store.js';
import { serveSocket } from './server.js';
import { Domains, type SimDomain } from './domains.js';
import { Blkback, type BackendInfo } from './blkback.js';
import { SimFrontend } from './frontend.js';
import { KernelWatcher } from './kwatch.js';

export type { SimDomain } from './domains.js';
export type { BackendInfo } from './blkback.js';
export type { SimFrontend } from './frontend.js';

export interface SimulatorOptions {
  socketPath: string;
  /** Where vbd-<domid>-<devid>/physical_device appear; default `<socketPath>.sysfs`. */
  sysfsDir?: string;
  domains?: { name: string; domid?: number }[];
  /**
   * Simulated guests run a blkfront (default false): a vbd frontend dir that appears with state 1
   * is probed (backend-id/backend readable and the backend dir existing, else the recorded
   * error and frontend 5), and connected once its backend waits in InitWait.
   */
  autoConnect?: boolean;
  /** Log every request and what blkback does (one line each). */
  log?: (line: string) => void;
  /**
   * Real blkback needs the backend's "dev" node when it connects: without it, error node
   * "2 get blkback dev name" and the device is never released (recorded on Xen 4.17 / Linux 6.1).
   * Default: on with autoConnect (the "running real guests" mode), off otherwise (many
   * fixtures omit "dev"); set it to test that a toolstack writes it.
   */
  requireDevNode?: boolean;
}

export interface Simulator {
  readonly socketPath: string;
  readonly sysfsDir: string;
  /** Creates a domain as libxl does and fires @introduceDomain; returns its domid. */
  addDomain(name: string, domid?: number): number;
  /** Destroys a domain as `xl destroy` does and fires @releaseDomain. */
  removeDomain(domid: number): void;
  domains(): SimDomain[];
  /** The simulated guest frontend of a vbd (its driver: connect / disconnect / reconnect / close). */
  frontend(domid: number, devid: number): SimFrontend;
  /** What the simulated blkback holds, per backend (domid/devid). */
  backends(): BackendInfo[];
  /** Resolves once blkback has processed everything pending (watch events are asynchronous). */
  settle(): Promise<void>;
  /** Direct, synchronous access to the tree as dom0 (for tests): read a node or undefined. */
  read(path: string): string | undefined;
  /** Writes a node as the given domain (default dom0, privileged). */
  write(path: string, value: string, asDomid?: number): void;
  getPerms(path: string): XsPerm[] | undefined;
  /**
   * What a guest's own xenbus connection may do (unprivileged, as that domid): the operations throw
   * StoreError with xenstored's error name (`errno`: EACCES, ENOENT...) as the real one answers.
   */
  asDomain(domid: number): GuestView;
  close(): Promise<void>;
}

export interface GuestView {
  read(path: string): string;
  directory(path: string): string[];
  write(path: string, value: string): void;
  rm(path: string): void;
}

// Long: the composition of the simulator (store, domains, blkback, guests, socket) and its handle's methods, which close over them.
export async function startSimulator(opts: SimulatorOptions): Promise<Simulator> {
  const store = new Store();
  const domains = new Domains(store);
  domains.initDom0();
  const sysfsDir = opts.sysfsDir ?? `${opts.socketPath}.sysfs`;
  mkdirSync(sysfsDir, { recursive: true });
  const blkback = new Blkback(store, sysfsDir);
  blkback.log = opts.log;
  blkback.requireDev = opts.requireDevNode ?? opts.autoConnect === true;
  const frontends = new Map<string, SimFrontend>();
  const frontendOf = (domid: number, devid: number): SimFrontend => {
    const key = `${domid}/${devid}`;
    let f = frontends.get(key);
    if (!f) {
      f = new SimFrontend(store, domid, devid, blkback);
      frontends.set(key, f);
    }
    return f;
  };
  // Running guests (autoConnect): each domain's xenbus probes its vbd frontends as they appear
  // and connects them once their backend waits (InitWait).
  const guests = new Map<number, KernelWatcher>();
  const startGuest = (domid: number) => {
    if (!opts.autoConnect || guests.has(domid)) return;
    const probed = new Set<number>();
    const base = `/local/domain/${domid}/device/vbd`;
    const devRe = new RegExp(`^${base}/(\\d+)(?:/|$)`);
    const w = new KernelWatcher(store, { domid, privileged: false }, (path) => {
      const m = devRe.exec(path);
      const devids = m ? [Number(m[1])] : [...probed];
      for (const devid of devids) {
        const fe = `${base}/${devid}`;
        if (!store.nodes.has(fe)) {
          probed.delete(devid);
          continue;
        }
        if (probed.has(devid) || store.readValue(`${fe}/state`) !== '1') continue;
        probed.add(devid);
        const f = frontendOf(domid, devid);
        if (f.probe() && store.readValue(`${f.backendPath()}/state`) === '2') void f.autoConnect();
      }
    });
    w.watch(base, 'guest');
    guests.set(domid, w);
  };
  const stopGuest = (domid: number) => {
    guests.get(domid)?.stop();
    guests.delete(domid);
  };
  if (opts.autoConnect) blkback.onInitWait = (domid, devid) => void frontendOf(domid, devid).autoConnect();
  startGuest(0); // dom0 runs a blkfront too (frontends of domid 0, as the Xen suite uses)
  for (const d of opts.domains ?? []) startGuest(domains.add(d.name, d.domid).domid);
  const srv = await serveSocket(
    store,
    {
      introduce: (d) => domains.introduce(d),
      release: (d) => domains.release(d),
      isIntroduced: (d) => domains.introduced.has(d),
    },
    opts.socketPath,
    opts.log,
  );
  const dom0: Caller = { domid: 0, privileged: true };
  let closed = false;
  return {
    socketPath: opts.socketPath,
    sysfsDir,
    addDomain: (name, domid) => {
      const id = domains.add(name, domid).domid;
      startGuest(id);
      return id;
    },
    removeDomain: (domid) => {
      stopGuest(domid);
      domains.remove(domid);
      for (const [k, f] of frontends) {
        if (f.domid !== domid) continue;
        f.dispose();
        frontends.delete(k);
      }
    },
    domains: () => [...domains.byId.values()],
    frontend: frontendOf,
    backends: () => blkback.list(),
    settle: async () => {
      // blkback, the guests' xenbus and their blkfronts react to each other: until all are idle
      for (let round = 0; round < 100; round++) {
        await blkback.settle();
        let busy = false;
        for (const w of guests.values()) if (w.busy) (busy = true), await w.drained();
        for (const f of frontends.values()) if (f.busy) (busy = true), await f.settle();
        await new Promise((r) => setImmediate(r));
        if (!busy && !blkback.busy && ![...guests.values()].some((w) => w.busy)) return;
      }
    },
    read: (path) => store.readValue(path),
    write: (path, value, asDomid) => {
      const c: Caller = asDomid === undefined || asDomid === 0 ? dom0 : { domid: asDomid, privileged: false };
      store.write(store.main, c, path, Buffer.from(value, 'utf8'));
    },
    getPerms: (path) => store.nodes.get(path)?.perms.map((p) => ({ ...p })),
    asDomain: (domid) => {
      const c: Caller = { domid, privileged: false };
      return {
        read: (path) => store.read(store.main, c, path).toString('utf8'),
        directory: (path) => store.directory(store.main, c, path),
        write: (path, value) => store.write(store.main, c, path, Buffer.from(value, 'utf8')),
        rm: (path) => store.rm(store.main, c, path),
      };
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await srv.close();
      for (const f of frontends.values()) f.dispose();
      for (const id of [...guests.keys()]) stopGuest(id);
      blkback.shutdown();
      if (opts.sysfsDir === undefined) rmSync(sysfsDir, { recursive: true, force: true });
    },
  };
}
