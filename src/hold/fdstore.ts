// The daemon's loop fds and systemd's fd store: every loop fd the registry holds is parked with
// FDSTORE=1 + FDNAME=xvbd-loop-<diskseq> (one message per fd: FDNAME names all fds of a message), and
// unparked with FDSTOREREMOVE=1 when the registry lets go. On start, fds handed back through
// LISTEN_FDS are verified (a loop device, our marker, the diskseq its name says) and adopted; the first
// observation then gives each one its users (the backends recording its diskseq), and what no backend
// uses any more is closed and unparked. Fds stay in systemd's store across restarts: only those we
// park or unpark are messaged.
import type { LoopRegistry } from '../linux/registry.js';
import type { BackendObs, ObservedState } from '../model/observed.js';
import { sysClose } from '../linux/ffi.js';
import { getDiskseq } from '../linux/loopdev.js';
import { parseU64 } from '../xen/vbd.js';
import { letGo } from '../plan/letgo.js';
import type { ListenFd, Notifier } from '../ipc/systemd.js';
import type { FdHolder } from './holder.js';
import type { ProvidedDevice } from './devices.js';

export const FDNAME_PREFIX = 'xvbd-loop-';

export function fdName(diskseq: string): string {
  return `${FDNAME_PREFIX}${diskseq}`;
}

/** The diskseq a fd store name promises, or undefined when the name is not ours. */
export function parseFdName(name: string): string | undefined {
  if (!name.startsWith(FDNAME_PREFIX)) return undefined;
  const d = parseU64(name.slice(FDNAME_PREFIX.length));
  return d !== undefined && d !== '0' ? d : undefined; // the kernel's diskseq starts at 1
}

export interface AdoptReport {
  adopted: { diskseq: string; name: string; fd: number }[];
  refused: { fd: number; fdName: string; reason: string }[];
}

export class FdStore {
  /** diskseq -> fd parked (or handed back by systemd, hence still in its store). */
  private readonly parked = new Map<string, number>();

  constructor(
    private readonly notifier: Notifier,
    private readonly registry: LoopRegistry,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  get parkedDiskseqs(): string[] {
    return [...this.parked.keys()].sort();
  }

  /**
   * Takes back the fds systemd passed (LISTEN_FDS). Each must be a loop device carrying our marker
   * whose diskseq matches its name; anything else is closed and removed from the store.
   */
  async adoptListenFds(fds: ListenFd[]): Promise<AdoptReport> {
    const report: AdoptReport = { adopted: [], refused: [] };
    for (const { fd, name } of fds) {
      const want = parseFdName(name);
      let reason: string | undefined;
      let diskseq: string | undefined;
      if (!want) reason = `name ${JSON.stringify(name.slice(0, 80))} is not xvbd-loop-<diskseq>`;
      else {
        try {
          diskseq = getDiskseq(fd).toString();
          if (diskseq !== want) reason = `its diskseq is ${diskseq}, the name says ${want}`;
        } catch (err) {
          reason = `not a block device with a diskseq (${(err as Error).message})`;
        }
      }
      if (!reason && diskseq) {
        if (this.parked.has(diskseq)) reason = `a second fd for diskseq ${diskseq}`;
        else {
          try {
            const h = this.registry.adopt(fd, []);
            this.parked.set(diskseq, fd);
            report.adopted.push({ diskseq, name: h.name, fd });
            continue;
          } catch (err) {
            reason = (err as Error).message;
          }
        }
      }
      report.refused.push({ fd, fdName: name, reason: reason ?? 'refused' });
      sysClose(fd);
      if (want || /^[\x21-\x39\x3b-\x7e]{1,255}$/.test(name)) {
        if (!(diskseq && this.parked.has(diskseq))) await this.notifier.removeFds(name).catch(() => false);
      }
    }
    return report;
  }

  /**
   * Drops one device from systemd's store now (the registry has let go of it). Messages are sent in
   * order, so a later sync never races it. Resolves once sent.
   */
  unpark(diskseq: string): Promise<void> {
    if (!this.parked.has(diskseq)) return Promise.resolve();
    this.parked.delete(diskseq);
    const p = this.notifier
      .removeFds(fdName(diskseq))
      .then(() => this.log(`fd store: removed ${diskseq}`))
      .catch((e: Error) => this.log(`fd store: removing ${diskseq} failed: ${e.message}`));
    return p;
  }

  get enabled(): boolean {
    return this.notifier.enabled;
  }

  /**
   * Parks one device now and waits until the manager has it (a barrier): a transaction naming the
   * device may commit afterwards, and a kill -9 from then on leaves the device with PID 1.
   */
  async park(diskseq: string, fd: number): Promise<void> {
    if (this.parked.get(diskseq) === fd) return;
    if (this.parked.has(diskseq)) await this.notifier.removeFds(fdName(diskseq));
    await this.notifier.storeFds(fdName(diskseq), [fd]);
    this.parked.set(diskseq, fd);
    await this.notifier.barrier();
  }

  /** Parks what the registry holds and is not parked; unparks what it no longer holds. */
  async sync(): Promise<{ stored: string[]; removed: string[] }> {
    const held = new Map<string, number>();
    for (const h of this.registry.handles()) if (h.kind === 'loop') held.set(h.diskseq, h.fd);
    const stored: string[] = [];
    const removed: string[] = [];
    for (const [diskseq, fd] of held) {
      if (this.parked.get(diskseq) === fd) continue;
      if (this.parked.has(diskseq)) {
        // Same device, another fd of ours (released and re-acquired): replace the stored one.
        await this.notifier.removeFds(fdName(diskseq));
      }
      if (await this.notifier.storeFds(fdName(diskseq), [fd])) stored.push(diskseq);
      this.parked.set(diskseq, fd);
    }
    for (const diskseq of [...this.parked.keys()]) {
      if (held.has(diskseq)) continue;
      await this.notifier.removeFds(fdName(diskseq));
      this.parked.delete(diskseq);
      removed.push(diskseq);
    }
    if (stored.length || removed.length) {
      this.log(`fd store: parked ${stored.length} (${stored.join(', ') || '-'}), removed ${removed.length} (${removed.join(', ') || '-'})`);
    }
    return { stored, removed };
  }
}

/** Backends that record this device: ours, with its diskseq. */
function usersOf(diskseq: string, byDiskseq: Map<string, BackendObs[]>): string[] {
  return (byDiskseq.get(diskseq) ?? []).map((b) => b.path);
}

/**
 * Matches the registry to a fresh observation (before planning): a user (backend path) whose backend dir
 * is gone, or now records another device, is released; a held device with no user (adopted from the fd
 * store or the keeper) gets the backends that record its diskseq, and is closed when there are none.
 * Returns one line per change: `released` (a user let go, or an fd closed), `claimed` (adopted fds given
 * users), and `closed`: the diskseqs whose fd was closed (their devices are on their way out by autoclear).
 */
export function sweepRegistry(registry: LoopRegistry, observed: ObservedState): { released: string[]; claimed: string[]; closed: string[] } {
  const byPath = new Map<string, BackendObs>();
  const byDiskseq = new Map<string, BackendObs[]>();
  for (const b of observed.backends) {
    byPath.set(b.path, b);
    if (b.ours && b.diskseq) {
      const l = byDiskseq.get(b.diskseq) ?? [];
      l.push(b);
      byDiskseq.set(b.diskseq, l);
    }
  }
  const out: string[] = [];
  const claimed: string[] = [];
  const closed: string[] = [];
  for (const f of registry.fds()) {
    for (const user of f.users) {
      const b = byPath.get(user);
      // a user of the registry is a committed step's backend (a failed step let go of it already): live
      const v = letGo({ of: 'held-fd', diskseq: f.diskseq, live: true, backend: b ? { seen: 'present', diskseq: b.diskseq } : { seen: 'gone' } });
      if (v.keep) continue;
      const r = registry.release(user);
      if (r?.closed) closed.push(f.diskseq);
      out.push(`${f.name} (diskseq ${f.diskseq}): released for ${user} (${b ? `now records diskseq ${b.diskseq}` : 'backend gone'})${r?.closed ? ', fd closed' : ''}`);
    }
  }
  for (const f of registry.fds()) {
    if (f.users.length > 0) continue;
    const users = usersOf(f.diskseq, byDiskseq);
    if (letGo({ of: 'unclaimed-fd', users: users.length }).keep) {
      registry.adopt(f.fd, users);
      claimed.push(`${f.name} (diskseq ${f.diskseq}): held for ${users.join(', ')}`);
    }
  }
  for (const h of registry.dropUnused()) {
    out.push(`${h.name} (diskseq ${h.diskseq}): no backend uses it, fd closed`);
    closed.push(h.diskseq);
  }
  return { released: out, claimed, closed };
}

/**
 * The daemon's holder under systemd: each loop fd is parked in the fd store, and the manager has it,
 * before the transaction that names the device commits. The registry keeps its own fd too; letting go
 * (a failed step, a detach) unparks through StoreAwareDevices when the registry closes it.
 */
export class FdStoreHolder implements FdHolder {
  readonly releaseAfterCommit = false;
  constructor(private readonly store: FdStore) {}

  async hold(dev: ProvidedDevice): Promise<void> {
    if (dev.kind !== 'loop' || dev.diskseq === undefined) return;
    await this.store.park(dev.diskseq, dev.fd);
  }

  async abort(): Promise<void> {
    // the step's release closes the registry's fd; StoreAwareDevices unparks it then
  }
}
