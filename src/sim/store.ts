// The simulated xenstore database: nodes, permissions, transactions and watches, with the
// semantics of C xenstored (xen 4.17 tools/xenstore: xenstored_core.c, _transaction.c, _watch.c).
import type { XsPerm } from '../xenstore/api.js';
import { PAYLOAD_MAX, nulJoin } from '../xenstore/wire.js';
import { baseName, parentPath, pathProblem } from '../xenstore/paths.js';

export interface SimNode {
  readonly value: Buffer;
  readonly perms: readonly XsPerm[];
  readonly children: readonly string[];
  gen: number;
}

/** Who is asking: a connection acts for a domain; dom0's socket connections are privileged. */
export interface Caller {
  domid: number;
  privileged: boolean;
}

export class StoreError extends Error {
  constructor(
    readonly errno: string,
    message?: string,
  ) {
    super(message ?? errno);
    this.name = 'StoreError';
  }
}

export const SPECIAL_NODES = ['@introduceDomain', '@releaseDomain'] as const;

export interface Change {
  path: string;
  exact: boolean;
  perms: readonly XsPerm[] | undefined;
}

/** A view of the database: the live tree, or a transaction's overlay on it. */
export interface View {
  get(path: string): SimNode | undefined;
  put(path: string, node: SimNode): void;
  del(path: string): void;
  change(c: Change): void;
}

function has(perm: XsPerm['perm'], want: 'r' | 'w'): boolean {
  return perm === 'b' || perm === want;
}

export interface Watcher {
  readonly caller: Caller;
  readonly watches: WatchTable;
  deliver(path: string, token: string): void;
}

export interface WatchEntry {
  /** Canonical (absolute or @special) path watched. */
  node: string;
  token: string;
  /** Set for relative watches: the connection's home, stripped from event paths. */
  relativeTo: string | undefined;
  /** Registration order (set by WatchTable). */
  seq?: number;
}

export function watchKey(node: string, token: string): string {
  return `${node}\0${token}`;
}

/**
 * A connection's watches keyed by watchKey(node, token), also indexed by node, so that firing a
 * change looks up the path and its ancestors instead of scanning every watch (blkback alone
 * holds two watches per vbd). Registration order is kept, as xenstored fires in that order.
 */
export class WatchTable extends Map<string, WatchEntry> {
  private readonly nodes = new Map<string, Map<string, WatchEntry>>();
  private static seq = 0;

  override set(key: string, e: WatchEntry): this {
    e.seq ??= ++WatchTable.seq;
    super.set(key, e);
    let m = this.nodes.get(e.node);
    if (!m) this.nodes.set(e.node, (m = new Map()));
    m.set(key, e);
    return this;
  }

  override delete(key: string): boolean {
    const e = super.get(key);
    if (!e) return false;
    super.delete(key);
    const m = this.nodes.get(e.node);
    m?.delete(key);
    if (m && m.size === 0) this.nodes.delete(e.node);
    return true;
  }

  override clear(): void {
    super.clear();
    this.nodes.clear();
  }

  byNode(node: string): Iterable<WatchEntry> | undefined {
    return this.nodes.get(node)?.values();
  }
}

export class Store {
  readonly nodes = new Map<string, SimNode>();
  private generation = 0;
  readonly watchers = new Set<Watcher>();
  /** Domains that exist (for permission owners); dom0 always does. */
  domainExists: (domid: number) => boolean = (d) => d === 0;
  private readonly live: View;
  private nextTxId = 1;

  constructor() {
    const self = this;
    this.live = {
      get: (p) => self.nodes.get(p),
      put: (p, n) => {
        n.gen = ++self.generation;
        self.nodes.set(p, n);
      },
      del: (p) => {
        self.nodes.delete(p);
      },
      change: (c) => self.fire(c),
    };
    const n0: XsPerm[] = [{ domid: 0, perm: 'n' }];
    const mk = (children: string[]): SimNode => ({ value: Buffer.alloc(0), perms: n0, children, gen: 0 });
    this.live.put('/', mk(['tool']));
    this.live.put('/tool', mk(['xenstored']));
    this.live.put('/tool/xenstored', mk([]));
    for (const s of SPECIAL_NODES) this.live.put(s, mk([]));
  }

  get main(): View {
    return this.live;
  }

  /** A live node's value as a string, ignoring permissions (for the simulator's own drivers); undefined when absent. */
  readValue(path: string): string | undefined {
    return this.nodes.get(path)?.value.toString('utf8');
  }

  allocTxId(): number {
    const id = this.nextTxId;
    this.nextTxId = this.nextTxId >= 0x7fffffff ? 1 : this.nextTxId + 1;
    return id;
  }

  // ---- paths ---------------------------------------------------------------------------------
  /** canonicalize + is_valid_nodename: absolute path or EINVAL. */
  canonical(c: Caller, path: string, allowSpecial = false): string {
    let name = path;
    if (name.length > 0 && !name.startsWith('@') && !name.startsWith('/')) name = `/local/domain/${c.domid}/${name}`;
    const problem = pathProblem(name, { allowSpecial });
    if (problem !== undefined) throw new StoreError('EINVAL', problem);
    return name;
  }

  // ---- permissions ---------------------------------------------------------------------------
  /** perm_for_conn: what caller may do on a node with these perms. */
  permFor(c: Caller, perms: readonly XsPerm[]): { r: boolean; w: boolean; owner: boolean } {
    const owner = perms[0]!;
    if (c.privileged || owner.domid === c.domid) return { r: true, w: true, owner: true };
    for (let i = 1; i < perms.length; i++) {
      const p = perms[i]!;
      if (p.domid === c.domid && this.domainExists(p.domid)) return { r: has(p.perm, 'r'), w: has(p.perm, 'w'), owner: false };
    }
    return { r: has(owner.perm, 'r'), w: has(owner.perm, 'w'), owner: false };
  }

  private allowed(c: Caller, perms: readonly XsPerm[], want: 'r' | 'w' | 'owner'): boolean {
    const p = this.permFor(c, perms);
    return want === 'owner' ? p.owner : p[want];
  }

  /**
   * get_node: the node if it exists and the caller has `want` on it; undefined when it does not
   * exist and the nearest existing ancestor grants `want` (ENOENT case); else throws EACCES.
   */
  private lookup(v: View, c: Caller, path: string, want: 'r' | 'w' | 'owner'): SimNode | undefined {
    const n = v.get(path);
    if (n) {
      if (!this.allowed(c, n.perms, want)) throw new StoreError('EACCES');
      return n;
    }
    // errno_from_parents: do not leak existence below nodes the caller may not see.
    let p = parentPath(path);
    while (p !== undefined) {
      const a = v.get(p);
      if (a) {
        if (!this.allowed(c, a.perms, want === 'owner' ? 'w' : want)) throw new StoreError('EACCES');
        return undefined;
      }
      p = parentPath(p);
    }
    return undefined;
  }

  private need(v: View, c: Caller, path: string, want: 'r' | 'w' | 'owner'): SimNode {
    const n = this.lookup(v, c, path, want);
    if (!n) throw new StoreError('ENOENT');
    return n;
  }

  // ---- operations ----------------------------------------------------------------------------
  read(v: View, c: Caller, path: string): Buffer {
    return this.need(v, c, this.canonical(c, path), 'r').value;
  }

  directory(v: View, c: Caller, path: string): string[] {
    return [...this.need(v, c, this.canonical(c, path), 'r').children];
  }

  /** DIRECTORY_PART reply: "<gen hex>\0" + children from byte offset, "\0" appended at the end. */
  directoryPart(v: View, c: Caller, path: string, offset: number): Buffer {
    const n = this.need(v, c, this.canonical(c, path), 'r');
    const all = nulJoin(...n.children);
    const gen = nulJoin(n.gen.toString(16));
    if (!Number.isInteger(offset) || offset < 0 || offset > all.length) throw new StoreError('EINVAL');
    if (offset === all.length) return Buffer.concat([gen, Buffer.from([0])]);
    let len = 0;
    while (offset + len < all.length) {
      const end = all.indexOf(0, offset + len);
      const i = end - (offset + len) + 1;
      if (gen.length + len + i >= PAYLOAD_MAX) break;
      len += i;
    }
    const parts = [gen, all.subarray(offset, offset + len)];
    if (offset + len === all.length) parts.push(Buffer.from([0]));
    return Buffer.concat(parts);
  }

  write(v: View, c: Caller, path: string, value: Buffer): void {
    const name = this.canonical(c, path);
    const n = this.lookup(v, c, name, 'w');
    if (n) v.put(name, { ...n, value, gen: 0 });
    else this.create(v, c, name, value);
    v.change({ path: name, exact: false, perms: v.get(name)!.perms });
  }

  mkdir(v: View, c: Caller, path: string): void {
    const name = this.canonical(c, path);
    const n = this.lookup(v, c, name, 'w');
    if (n) return;
    this.create(v, c, name, Buffer.alloc(0));
    v.change({ path: name, exact: false, perms: v.get(name)!.perms });
  }

  /** construct_node: implicit parents, perms inherited from the parent, unprivileged own theirs. */
  private create(v: View, c: Caller, name: string, value: Buffer): void {
    const parentName = parentPath(name)!;
    let parent = v.get(parentName);
    if (!parent) {
      this.create(v, c, parentName, Buffer.alloc(0));
      parent = v.get(parentName)!;
    }
    const perms = parent.perms.map((p) => ({ ...p }));
    if (!c.privileged) perms[0] = { domid: c.domid, perm: perms[0]!.perm };
    v.put(name, { value, perms, children: [], gen: 0 });
    v.put(parentName, { ...parent, children: [...parent.children, baseName(name)], gen: 0 });
  }

  rm(v: View, c: Caller, path: string): void {
    const name = this.canonical(c, path);
    const n = this.lookup(v, c, name, 'w');
    if (!n) {
      const parent = parentPath(name);
      if (parent !== undefined && v.get(parent)) return; // already gone: fine if the parent exists
      throw new StoreError('ENOENT');
    }
    if (name === '/') throw new StoreError('EINVAL');
    const parentName = parentPath(name)!;
    const parent = v.get(parentName)!;
    // Post-order: descendants fire exact watches, the root fires for itself and its ancestors.
    const del = (p: string, node: SimNode) => {
      for (const child of node.children) {
        const cp = p === '/' ? `/${child}` : `${p}/${child}`;
        const cn = v.get(cp);
        if (cn) del(cp, cn);
      }
      v.del(p);
      v.change({ path: p, exact: p !== name, perms: node.perms });
    };
    del(name, n);
    const base = baseName(name);
    v.put(parentName, { ...parent, children: parent.children.filter((x) => x !== base), gen: 0 });
  }

  /** GET_PERMS: special names are EINVAL here (recorded on 4.17), unlike SET_PERMS. */
  getPerms(v: View, c: Caller, path: string): XsPerm[] {
    const name = this.canonical(c, path);
    return this.need(v, c, name, 'r').perms.map((p) => ({ ...p }));
  }

  setPerms(v: View, c: Caller, path: string, perms: XsPerm[]): void {
    if (perms.length === 0) throw new StoreError('EINVAL');
    const name = this.canonical(c, path, true);
    if (!this.domainExists(perms[0]!.domid)) throw new StoreError('ENOENT', `owner domain ${perms[0]!.domid} does not exist`);
    const n = this.lookup(v, c, name, 'w');
    if (!n) throw new StoreError('ENOENT');
    if (!this.allowed(c, n.perms, 'owner')) throw new StoreError('EACCES');
    if (!c.privileged && perms[0]!.domid !== n.perms[0]!.domid) throw new StoreError('EPERM');
    v.put(name, { ...n, perms: perms.map((p) => ({ ...p })), gen: 0 });
    v.change({ path: name, exact: false, perms: n.perms });
  }

  // ---- watches -------------------------------------------------------------------------------
  /** fire_watches: queue events for every watch on the path (or, unless exact, its ancestors). */
  fire(ch: Change): void {
    const special = ch.path.startsWith('@');
    // the watched nodes that match: the path itself, and unless exact its ancestors
    const nodes: string[] = [ch.path];
    if (!ch.exact && !special) for (let p = parentPath(ch.path); p !== undefined; p = parentPath(p)) nodes.push(p);
    for (const w of this.watchers) {
      // byNode(n) holds exactly the watches on n, so every entry found matches the change
      const found: WatchEntry[] = [];
      for (const n of nodes) for (const e of w.watches.byNode(n) ?? []) found.push(e);
      if (found.length === 0) continue;
      if (ch.perms && !special && !this.allowed(w.caller, ch.perms, 'r')) continue;
      // registration order, as when scanning
      if (nodes.length > 1 && found.length > 1) found.sort((a, b) => a.seq! - b.seq!);
      for (const e of found) {
        let evPath = ch.path;
        if (e.relativeTo !== undefined && evPath.startsWith(e.relativeTo)) {
          evPath = evPath.slice(e.relativeTo.length);
          if (evPath.startsWith('/')) evPath = evPath.slice(1);
        }
        w.deliver(evPath, e.token);
      }
    }
  }

  // ---- transactions --------------------------------------------------------------------------
  begin(): Transaction {
    return new Transaction(this, this.allocTxId());
  }
}

/**
 * A transaction: reads go to the live tree (and are remembered with the generation seen),
 * writes stay in an overlay. Commit fails with EAGAIN if any node it touched changed since.
 */
export class Transaction implements View {
  private readonly overlay = new Map<string, SimNode | null>();
  private readonly seen = new Map<string, number>();
  /** Touched paths in first-touch order (a Set: membership tests stay O(1) in big transactions). */
  private readonly dirty = new Set<string>();
  /** Changes by path; a repeated path moves to the end (Map keeps insertion order). */
  private readonly changes = new Map<string, Change>();

  constructor(
    private readonly store: Store,
    readonly id: number,
  ) {}

  get(path: string): SimNode | undefined {
    if (this.overlay.has(path)) return this.overlay.get(path) ?? undefined;
    const n = this.store.nodes.get(path);
    if (!this.seen.has(path)) this.seen.set(path, n ? n.gen : -1);
    return n;
  }

  put(path: string, node: SimNode): void {
    this.get(path);
    this.dirty.add(path);
    this.overlay.set(path, node);
  }

  del(path: string): void {
    this.get(path);
    this.dirty.add(path);
    this.overlay.set(path, null);
  }

  change(c: Change): void {
    this.changes.delete(c.path);
    this.changes.set(c.path, c);
  }

  /** Applies the overlay, or throws EAGAIN on a conflict. Then fires the recorded watches. */
  commit(): void {
    for (const [path, gen] of this.seen) {
      const n = this.store.nodes.get(path);
      if ((n ? n.gen : -1) !== gen) throw new StoreError('EAGAIN', `conflict on ${path}`);
    }
    const live = this.store.main;
    for (const path of this.dirty) {
      const n = this.overlay.get(path);
      if (n) live.put(path, { ...n });
      else if (this.store.nodes.has(path)) live.del(path);
    }
    for (const c of this.changes.values()) this.store.fire(c);
  }
}
