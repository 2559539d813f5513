// Who must keep a served loop device open, as one pure rule for the planner, `status` and the daemon.
//
// A loop device of ours is made with autoclear: the kernel frees it at its last close. blkback's own
// reference comes late (it opens physical-device asynchronously) and goes whenever the frontend goes
// away, so a served device needs holders in dom0 that outlive the crash of any one of our processes:
// systemd's fd store (PID 1), or both keepers (two processes that each hold every fd and restart each
// other; docs/fd-holding.md).

/** The keeper slots of one run dir: each keeper holds every fd the other holds. */
export const KEEPER_SLOTS = ['a', 'b'] as const;
export type KeeperSlot = (typeof KEEPER_SLOTS)[number];

/** How LoopObs.keptBy names each durable holder. */
export function keeperHolderName(slot: KeeperSlot): string {
  return `keeper-${slot}`;
}
export const FD_STORE_HOLDER = 'fd-store';

/**
 * - `held`: a holder survives the crash of any one of our processes (the fd store, or both keepers);
 * - `weak`: one keeper only (it restarts its twin, but a second crash meanwhile would free the device);
 * - `unheld`: nobody: the device is freed the moment blkback lets go;
 * - `unknown`: the observer did not ask the holders.
 */
export type HoldVerdict = 'held' | 'weak' | 'unheld' | 'unknown';

export function holdVerdict(keptBy: readonly string[] | undefined): HoldVerdict {
  if (keptBy === undefined) return 'unknown';
  if (keptBy.includes(FD_STORE_HOLDER)) return 'held';
  const keepers = KEEPER_SLOTS.filter((s) => keptBy.includes(keeperHolderName(s))).length;
  if (keepers === KEEPER_SLOTS.length) return 'held';
  return keepers > 0 ? 'weak' : 'unheld';
}
