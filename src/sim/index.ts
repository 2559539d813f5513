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

export type { SimDomain } from './domains.js';
export type { BackendInfo } from './blkback.js';
export type { SimFrontend } from './frontend.js';

export interface SimulatorOptions {
  socketPath: string;
  /** Where vbd-<domid>-<devid>/physical_device appear; default `<socketPath>.sysfs`. */
  sysfsDir?: string;
  domains?: { name: string; domid?: number }[];
  /** Simulated guests connect their disks by themselves once the backend is ready (default false). */
  autoConnect?: boolean;
  /** Log every request and what blkback does (one line each). */
  log?: (line: string) => void;
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
  close(): Promise<void>;
}

export async function startSimulator(opts: SimulatorOptions): Promise<Simulator> {
  const store = new Store();
  const domains = new Domains(store);
  domains.initDom0();
  const sysfsDir = opts.sysfsDir ?? `${opts.socketPath}.sysfs`;
  mkdirSync(sysfsDir, { recursive: true });
  const blkback = new Blkback(store, sysfsDir);
  blkback.log = opts.log;
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
  if (opts.autoConnect) blkback.onInitWait = (domid, devid) => void frontendOf(domid, devid).autoConnect();
  for (const d of opts.domains ?? []) domains.add(d.name, d.domid);
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
    addDomain: (name, domid) => domains.add(name, domid).domid,
    removeDomain: (domid) => {
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
    settle: () => blkback.settle(),
    read: (path) => {
      const n = store.nodes.get(path);
      return n ? n.value.toString('utf8') : undefined;
    },
    write: (path, value, asDomid) => {
      const c: Caller = asDomid === undefined || asDomid === 0 ? dom0 : { domid: asDomid, privileged: false };
      store.write(store.main, c, path, Buffer.from(value, 'utf8'));
    },
    getPerms: (path) => store.nodes.get(path)?.perms.map((p) => ({ ...p })),
    close: async () => {
      if (closed) return;
      closed = true;
      await srv.close();
      for (const f of frontends.values()) f.dispose();
      blkback.shutdown();
      if (opts.sysfsDir === undefined) rmSync(sysfsDir, { recursive: true, force: true });
    },
  };
}
