// The daemon's cache of the sources' half of an observation: each source stat'ed again only when inotify
// (fs.watch on its directory) saw something happen to that name, the directory itself, or anything it
// cannot place. `mounted` is recomputed every time from the pass's loop devices and mount table. A
// directory on the path replaced by a symlink (which no watch on the leaf directory sees) is found by
// the periodic resync, which stats every source again (invalidate()), as the first pass does.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { LoopObs, SourceObs } from '../model/observed.js';
import { mountedBackings, observeSource, sourceMounted } from './observe.js';

export class SourceCache {
  private readonly byPath = new Map<string, SourceObs>();
  private dirty = new Set<string>();
  private all = true;
  private readonly watchers = new Map<string, FSWatcher>();
  /** The directories whose watch could not be set: their sources are stat'ed every time. */
  private readonly unwatched = new Set<string>();
  last = { full: true, statted: 0 };

  invalidate(): void {
    this.all = true;
  }

  /** observeSources() from the cache (same shape, same order). */
  observe(paths: string[], loops: LoopObs[], mountedDevs: Set<string>): Record<string, SourceObs> {
    const all = this.all;
    const dirty = this.dirty;
    this.all = false;
    this.dirty = new Set();
    const want = [...new Set(paths)].sort();
    const dirs = new Set(want.map((p) => dirname(p)));
    // the watches first: a change after a stat below is then always seen
    for (const d of dirs) if (!this.watchers.has(d) && !this.unwatched.has(d)) this.watchDir(d);
    for (const [d, w] of this.watchers) {
      if (dirs.has(d)) continue;
      w.close();
      this.watchers.delete(d);
    }
    for (const d of [...this.unwatched]) if (!dirs.has(d)) this.unwatched.delete(d);
    const mountedInodes = mountedBackings(loops);
    const out: Record<string, SourceObs> = {};
    let statted = 0;
    const keep = new Set(want);
    for (const p of [...this.byPath.keys()]) if (!keep.has(p)) this.byPath.delete(p);
    for (const path of want) {
      const c = this.byPath.get(path);
      if (all || !c || dirty.has(path) || dirty.has(dirname(path)) || this.unwatched.has(dirname(path))) {
        const s = observeSource(path, mountedInodes, mountedDevs);
        this.byPath.set(path, s);
        statted++;
        out[path] = copy(s);
      } else {
        out[path] = { ...copy(c), mounted: sourceMounted(c, mountedInodes, mountedDevs) };
      }
    }
    this.last = { full: all, statted };
    return out;
  }

  private watchDir(dir: string): void {
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: false }, (_ev, name) => {
        // a name: that one (another file's name changes no source); none, or the dir's own (it was
        // renamed or removed): all of the dir
        if (typeof name === 'string' && name !== '' && name !== basename(dir)) this.dirty.add(`${dir}/${name}`);
        else this.dirty.add(dir);
      });
    } catch {
      // gone, not a directory, no inotify watches left: stat'ed every time
      this.unwatched.add(dir);
      return;
    }
    w.on('error', () => {
      w.close();
      this.watchers.delete(dir);
      this.dirty.add(dir);
    });
    this.watchers.set(dir, w);
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}

function copy(s: SourceObs): SourceObs {
  return s.inode ? { ...s, inode: { ...s.inode } } : { ...s };
}

