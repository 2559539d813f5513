// The daemon's cache of the xenstore half of an observation (domains, vbd backends with their frontend
// state and error node), kept true by xenstore watch events: each event names a path, dirtOf() says which
// entries that path can have changed (pure), and the next pass re-reads only those. The full walk
// (src/observe/observe.ts) stays the ground truth: the first pass, every periodic resync, any pass after a
// reconnect of the watch connection, a failed pass or an event the cache cannot place reads everything,
// and a full read is compared with what the cache held (drift()), so a missed event shows in the log.
//
// Ordering: the dirt is taken at the start of a refresh, before any read. An event whose change the
// refresh read too early arrives afterwards (the watch connection delivers in order) and dirties the entry
// for the next pass, so no change is lost between two refreshes.
import type { XsOps } from '../xenstore/api.js';
import type { BackendObs, DomainObs } from '../model/observed.js';
import { blkbackSysfs, readBackendErrors, readBackend, readDomains, listFrontendDomids, listDevids, type XsPart } from './observe.js';
import { parseDevid, parseDomid } from './parse.js';

/** What one watch event can have changed. */
export type Dirt =
  /** Anything: read everything again. */
  | { kind: 'all' }
  /** The domain list and names (@introduceDomain, @releaseDomain). */
  | { kind: 'domains' }
  /** A backend domain's vbd tree, or one frontend domain's part of it, or one backend. */
  | { kind: 'backends'; be: number; fe?: number; devid?: number }
  /** A backend domain's error nodes (/local/domain/<be>/error/...). */
  | { kind: 'errors'; be: number }
  /** A node outside the backend trees (a frontend's state): the backends whose frontend path it touches. */
  | { kind: 'frontend'; path: string };

const BACKEND_RE = /^\/local\/domain\/(\d+)\/backend\/vbd(?:\/([^/]+)(?:\/([^/]+)(?:\/.*)?)?)?$/;
const BACKEND_PARENT_RE = /^\/local\/domain\/(\d+)(?:\/backend)?$/;
const ERROR_RE = /^\/local\/domain\/(\d+)\/error(?:\/.*)?$/;

/** The entries a watch event on `path` can have changed (pure). */
export function dirtOf(path: string): Dirt {
  if (path === '@introduceDomain' || path === '@releaseDomain') return { kind: 'domains' };
  let m = BACKEND_RE.exec(path);
  if (m) {
    const be = Number(m[1]);
    if (m[2] === undefined) return { kind: 'backends', be };
    const fe = parseDomid(m[2]);
    // a name that is no domid is not listed by the full walk either: only its listing can have changed
    if (fe === undefined) return { kind: 'backends', be };
    if (m[3] === undefined) return { kind: 'backends', be, fe };
    const devid = parseDevid(m[3]);
    return devid === undefined ? { kind: 'backends', be, fe } : { kind: 'backends', be, fe, devid };
  }
  m = ERROR_RE.exec(path);
  if (m) return { kind: 'errors', be: Number(m[1]) };
  // the removal of a backend tree's parent fires the tree's watch with the parent's path
  m = BACKEND_PARENT_RE.exec(path);
  if (m && path.includes('/backend')) return { kind: 'backends', be: Number(m[1]) };
  if (path.startsWith('/local/domain/')) return { kind: 'frontend', path };
  return { kind: 'all' };
}

/** The dirt collected since the last refresh, merged. */
interface Pending {
  all: boolean;
  domains: boolean;
  /** backend domains whose whole tree is dirty */
  trees: Set<number>;
  /** "be/fe": a frontend domain's devid listing */
  feDirs: Set<string>;
  /** backend paths */
  backends: Set<string>;
  errors: Set<number>;
  frontendPaths: Set<string>;
}

function emptyPending(all: boolean): Pending {
  return { all, domains: false, trees: new Set(), feDirs: new Set(), backends: new Set(), errors: new Set(), frontendPaths: new Set() };
}

interface BeState {
  /** fe -> devid -> backend */
  fes: Map<number, Map<number, BackendObs>>;
  /** "fe/devid" -> error text */
  errors: Map<string, string>;
}

export interface RefreshStats {
  full: boolean;
  /** Backends read again (all of them on a full read). */
  backendsRead: number;
}

export class XenstoreCache {
  private pending: Pending = emptyPending(true);
  private domains: DomainObs[] = [];
  private readonly bes = new Map<number, BeState>();
  /** Frontend path -> backend path, for frontend events. */
  private readonly byFrontend = new Map<string, Set<string>>();
  last: RefreshStats = { full: true, backendsRead: 0 };

  /** Notes a watch event's dirt. */
  mark(d: Dirt): void {
    const p = this.pending;
    switch (d.kind) {
      case 'all':
        p.all = true;
        break;
      case 'domains':
        p.domains = true;
        break;
      case 'errors':
        p.errors.add(d.be);
        break;
      case 'frontend':
        p.frontendPaths.add(d.path);
        break;
      case 'backends':
        if (d.fe === undefined) p.trees.add(d.be);
        else {
          // a backend's dir appearing or going changes its frontend domain's listing too
          p.feDirs.add(`${d.be}/${d.fe}`);
          if (d.devid !== undefined) p.backends.add(`/local/domain/${d.be}/backend/vbd/${d.fe}/${d.devid}`);
        }
        break;
    }
  }

  /** Frontend domains without a watch (refused by xenstored: a quota): their backends are read every time. */
  private readonly unwatchedFes = new Set<number>();

  /** Whether `fe`'s frontends are watched (false: its backends are read at every refresh). */
  setFrontendWatched(fe: number, watched: boolean): void {
    if (watched) this.unwatchedFes.delete(fe);
    else this.unwatchedFes.add(fe);
  }

  /** The next refresh reads everything (a reconnect, a resync, a failed pass). */
  invalidate(): void {
    this.pending.all = true;
  }

  /** Whether the next refresh is a full read. */
  get fullPending(): boolean {
    return this.pending.all;
  }

  /** The frontend domains whose device/vbd trees the cache relies on events for (the daemon watches them). */
  frontendDomids(): number[] {
    const out = new Set<number>();
    for (const s of this.bes.values()) for (const fe of s.fes.keys()) out.add(fe);
    return [...out].sort((a, b) => a - b);
  }

  /**
   * The xenstore half for `backendDomids`: read in full when needed, else only what the events dirtied
   * (plus the backends whose frontend path lies where no watch looks). `kernelHeld` (sysfs) is checked
   * for every backend on every refresh: blkback's sysfs changes come with no xenstore event.
   */
  async refresh(ops: XsOps, backendDomids: number[], sysfs: string, exists: (p: string) => boolean): Promise<XsPart> {
    const p = this.pending;
    this.pending = emptyPending(false);
    try {
      return await this.refreshWith(ops, p, backendDomids, sysfs, exists);
    } catch (err) {
      // what was taken is unknown now
      this.pending.all = true;
      throw err;
    }
  }

  // Long: one walk over the dirty backend and frontend domains, in the order the full read takes them, so
  // that the two stay comparable line by line (drift()).
  private async refreshWith(ops: XsOps, p: Pending, backendDomids: number[], sysfs: string, exists: (x: string) => boolean): Promise<XsPart> {
    let read = 0;
    const full = p.all;
    if (full) {
      this.bes.clear();
      this.byFrontend.clear();
    }
    const domainsP = full || p.domains || this.domainsUnread ? readDomains(ops) : undefined;
    // which backend paths must be read, per backend domain
    const work: Promise<void>[] = [];
    for (const be of backendDomids) {
      let s = this.bes.get(be);
      const tree = !s || p.trees.has(be);
      if (!s) {
        s = { fes: new Map(), errors: new Map() };
        this.bes.set(be, s);
      }
      const st = s;
      work.push(
        (async () => {
          const errorsP = tree || p.errors.has(be) ? readBackendErrors(ops, be) : undefined;
          const base = `/local/domain/${be}/backend/vbd`;
          const toRead = new Set<string>();
          const listed = new Map<number, Set<number>>();
          let feList: number[] | undefined;
          if (tree) {
            feList = await listFrontendDomids(ops, be);
            for (const fe of [...st.fes.keys()]) if (!feList.includes(fe)) this.dropFe(st, fe);
          }
          const feDirs = tree ? feList! : [...p.feDirs].filter((k) => k.startsWith(`${be}/`)).map((k) => Number(k.slice(k.indexOf('/') + 1)));
          await Promise.all(
            feDirs.map(async (fe) => {
              const devids = await listDevids(ops, `${base}/${fe}`);
              const have = st.fes.get(fe) ?? new Map<number, BackendObs>();
              for (const d of [...have.keys()]) if (!devids.includes(d)) this.dropBackend(have, d);
              if (devids.length === 0) st.fes.delete(fe);
              else st.fes.set(fe, have);
              listed.set(fe, new Set(devids));
              for (const d of devids) if (tree || !have.has(d)) toRead.add(`${base}/${fe}/${d}`);
            }),
          );
          for (const path of p.backends) if (path.startsWith(`${base}/`)) toRead.add(path);
          // frontend events: the backends whose frontend path the event's path is on
          for (const fp of p.frontendPaths) {
            for (const bpath of this.backendsOfFrontend(fp)) if (bpath.startsWith(`${base}/`)) toRead.add(bpath);
          }
          // backends whose frontend lies where no watch looks are read every time
          for (const [fe, m] of st.fes) for (const b of m.values()) if (b.frontendPath !== undefined && (!watchedFrontend(b) || this.unwatchedFes.has(fe))) toRead.add(b.path);
          await Promise.all(
            [...toRead].map(async (path) => {
              const [fe, devid] = path.slice(base.length + 1).split('/').map(Number) as [number, number];
              const m = st.fes.get(fe);
              // only what the full walk would list: the listing read now, else the one cached
              if (!m || !(listed.get(fe)?.has(devid) ?? m.has(devid))) return;
              const b = await readBackend(ops, be, fe, devid, path, sysfs);
              read++;
              const old = m.get(devid);
              if (old) this.unindex(old);
              m.set(devid, b);
              if (b.frontendPath !== undefined) {
                const set = this.byFrontend.get(b.frontendPath) ?? new Set<string>();
                set.add(b.path);
                this.byFrontend.set(b.frontendPath, set);
              }
            }),
          );
          if (errorsP) st.errors = await errorsP;
        })(),
      );
    }
    // both awaited together: a failure of either never leaves the other's rejection unhandled
    const [domains] = await Promise.all([domainsP, Promise.all(work)]);
    if (domains) {
      this.domains = domains;
      this.domainsUnread = false;
    }
    const backends: BackendObs[] = [];
    for (const be of [...backendDomids].sort((a, b) => a - b)) {
      const st = this.bes.get(be)!;
      for (const fe of [...st.fes.keys()].sort((a, b) => a - b)) {
        const m = st.fes.get(fe)!;
        for (const devid of [...m.keys()].sort((a, b) => a - b)) {
          const b = m.get(devid)!;
          Object.assign(b, blkbackSysfs(sysfs, fe, devid, exists));
          const err = st.errors.get(`${fe}/${devid}`);
          if (err !== undefined) b.error = err;
          else delete b.error;
          backends.push(b);
        }
      }
    }
    // backend domains no longer asked for are forgotten (read in full if asked for again)
    for (const be of [...this.bes.keys()]) if (!backendDomids.includes(be)) this.bes.delete(be);
    this.last = { full, backendsRead: read };
    // copies: the caller (the planner, the sweep) must never change the cache's own objects
    return { domains: this.domains.map((d) => ({ ...d })), backends: backends.map(copyBackend) };
  }

  private domainsUnread = true;

  private dropFe(s: BeState, fe: number): void {
    const m = s.fes.get(fe);
    if (m) for (const d of [...m.keys()]) this.dropBackend(m, d);
    s.fes.delete(fe);
  }

  private dropBackend(m: Map<number, BackendObs>, devid: number): void {
    const b = m.get(devid);
    if (b) this.unindex(b);
    m.delete(devid);
  }

  private unindex(b: BackendObs): void {
    if (b.frontendPath === undefined) return;
    const set = this.byFrontend.get(b.frontendPath);
    set?.delete(b.path);
    if (set?.size === 0) this.byFrontend.delete(b.frontendPath);
  }

  /** The backends whose frontend dir is `path`, lies under it, or contains it. */
  private backendsOfFrontend(path: string): string[] {
    const out: string[] = [];
    // a node in (or the dir of) a frontend: its ancestors are looked up
    for (let p = path; p.length > '/local/domain/'.length; p = p.slice(0, p.lastIndexOf('/'))) {
      const set = this.byFrontend.get(p);
      if (set) out.push(...set);
    }
    // a dir above the frontends (a whole device/vbd tree or domain removed): every frontend under it
    if (path.split('/').length <= 6) for (const [front, set] of this.byFrontend) if (front.startsWith(`${path}/`)) out.push(...set);
    return out;
  }
}

/** The frontend watch the daemon sets for a frontend domain. */
export function frontendWatchPath(fe: number): string {
  return `/local/domain/${fe}/device/vbd`;
}

function watchedFrontend(b: BackendObs): boolean {
  return b.frontendPath !== undefined && b.frontendPath.startsWith(`${frontendWatchPath(b.frontendDomid)}/`);
}

function copyBackend(b: BackendObs): BackendObs {
  const c: BackendObs = { ...b };
  if (b.sourceInode) c.sourceInode = { ...b.sourceInode };
  if (b.malformed) c.malformed = [...b.malformed];
  return c;
}

/**
 * What differs between the cache's xenstore half and a full read of the same moment (domains by domid,
 * backends by path), in a few words; undefined when they agree.
 */
export function drift(cached: XsPart, full: XsPart): string | undefined {
  const out: string[] = [];
  const key = (x: unknown) => JSON.stringify(x);
  const cd = new Map(cached.domains.map((d) => [d.domid, key(d)]));
  const fd = new Map(full.domains.map((d) => [d.domid, key(d)]));
  const dd = [...new Set([...cd.keys(), ...fd.keys()])].filter((k) => cd.get(k) !== fd.get(k));
  if (dd.length) out.push(`domains ${dd.slice(0, 3).join(', ')}${dd.length > 3 ? ` +${dd.length - 3}` : ''}`);
  const cb = new Map(cached.backends.map((b) => [b.path, key(sortedKeys(b))]));
  const fb = new Map(full.backends.map((b) => [b.path, key(sortedKeys(b))]));
  const bd = [...new Set([...cb.keys(), ...fb.keys()])].filter((k) => cb.get(k) !== fb.get(k));
  if (bd.length) out.push(`backends ${bd.slice(0, 3).join(', ')}${bd.length > 3 ? ` +${bd.length - 3}` : ''}`);
  return out.length ? out.join('; ') : undefined;
}

function sortedKeys(b: BackendObs): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of Object.keys(b).sort()) o[k] = (b as unknown as Record<string, unknown>)[k];
  return o;
}
