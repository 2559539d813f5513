// What the daemon's caches (cache.ts, loop-cache.ts, source-cache.ts) read in place of the full walks.
import type { LoopObs } from '../model/observed.js';
import type { XenstoreReader, observeSources } from './observe.js';
import type { Mounts } from './loop-cache.js';

export interface CachedReaders {
  xenstore?: XenstoreReader;
  loops?: (mounts: Mounts) => LoopObs[];
  sources?: typeof observeSources;
}
