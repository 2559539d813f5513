// The holders a loop device has, put into an observation (LoopObs.keptBy). Who asks them is the
// caller's business (src/hold/holdings.ts): the observation only records the answer.
import type { ObservedState } from '../model/observed.js';

/** diskseq -> the durable holders keeping that device open. */
export type Holdings = Map<string, string[]>;

/** The observation with every loop device's keptBy from `holdings` (none listed: nobody holds it). */
export function withKeptBy(observed: ObservedState, holdings: Holdings): ObservedState {
  return { ...observed, loops: observed.loops.map((l) => ({ ...l, keptBy: [...(holdings.get(l.diskseq) ?? [])].sort() })) };
}
