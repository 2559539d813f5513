// The daemon's cache of the loop-device half of an observation, kept true by the kernel's uevents: the
// loop driver announces every bind and unbind (src/linux/uevent.ts), so between two passes only the
// devices named by an event are looked at again. What a device's state says without any uevent is
// recomputed every time from what the pass has anyway: `mounted` (this pass's mount table) and
// `heldByUs` (the registry). Two fields change with no event at all, the backing file deleted and a
// holder (dm, md) stacked on the device: they are read again by every full look (the first pass, the
// periodic resync, a uevent overrun); the executor reads a device afresh before any destructive step
// (the data-loss guard of detach, replace and free-loop), so a stale value there never frees data.
import type { LoopObs } from '../model/observed.js';
import type { LoopChanges } from '../linux/uevent.js';

export interface LoopCacheDeps {
  /** Every bound loop device (a full look). */
  all: (mounts: Mounts) => LoopObs[];
  /** These devices only (the unbound ones are left out). */
  some: (names: string[], mounts: Mounts) => LoopObs[];
  /** The kernel's loop uevents since the last call; undefined: none available (every look is full). */
  changes: () => LoopChanges | undefined;
  held: () => ReadonlySet<string>;
}

export interface Mounts {
  devs: Set<string>;
  loopNames: Set<string>;
}

/**
 * The cached devices after a set of uevents (pure): the devices looked at again replace those named,
 * the named ones no longer bound are dropped. Sorted by number, as listLoops() returns them.
 */
export function applyLoopChanges(cached: ReadonlyMap<string, LoopObs>, named: Iterable<string>, lookedAt: LoopObs[]): Map<string, LoopObs> {
  const out = new Map(cached);
  for (const n of named) out.delete(n);
  for (const l of lookedAt) out.set(l.name, l);
  return out;
}

export class LoopCache {
  private byName = new Map<string, LoopObs>();
  private full = true;
  last = { full: true, lookedAt: 0 };

  constructor(private readonly d: LoopCacheDeps) {}

  /** The next look is a full one (the periodic resync). */
  invalidate(): void {
    this.full = true;
  }

  list(mounts: Mounts): LoopObs[] {
    // drained first: what changes while we look shows up next time
    const ch = this.d.changes();
    const full = this.full || !ch || ch.overrun;
    this.full = false;
    if (full) {
      const all = this.d.all(mounts);
      this.byName = new Map(all.map((l) => [l.name, l]));
      this.last = { full: true, lookedAt: all.length };
    } else if (ch.names.size > 0) {
      const names = [...ch.names.keys()];
      this.byName = applyLoopChanges(this.byName, names, this.d.some(names, mounts));
      this.last = { full: false, lookedAt: names.length };
    } else {
      this.last = { full: false, lookedAt: 0 };
    }
    const held = this.d.held();
    const out: LoopObs[] = [];
    for (const l of this.byName.values()) {
      out.push({
        ...l,
        holders: [...l.holders],
        backing: { ...l.backing },
        mounted: mounts.devs.has(`${l.major}:${l.minor}`) || mounts.loopNames.has(l.name),
        heldByUs: held.has(l.diskseq),
      });
    }
    out.sort((x, y) => x.number - y.number);
    return out;
  }
}
