// Prune never destroys data: whether the planner may let go of a loop device (detach or replace the
// backend that uses it, or free it), decided in one place for every caller.
//
// A loop device whose backing file was deleted holds the only copy of that file's data: the kernel keeps
// the inode alive only for as long as the device is bound. Detaching its backend lets autoclear free it,
// and a free-loop frees it outright; either way the data is gone. The same holds when the device backs
// another inode than the one recorded in the backend (`xvbd-inode`): xvbd can no longer say where that
// data lives, so it does not assume it lives anywhere else.
import type { Inode, LoopObs } from '../model/observed.js';

/** What letting go of the device would do: detach or replace a backend that uses it, or free it. */
export type LetGo = 'detach' | 'replace' | 'free-loop';

export type LetGoVerdict =
  | { allowed: true; /** Set when allowed only because the caller accepted the loss (--allow-data-loss). */ loss?: string }
  | { allowed: false; /** Why the data would be lost. */ why: string; /** How to save it first. */ save: string };

function sameInode(a: Inode, b: Inode): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** The path a loop device's backing file had, without the kernel's " (deleted)". */
function livePath(loop: LoopObs): string {
  return loop.backingPath.replace(/ \(deleted\)$/, '');
}

/** Why letting go of `loop` loses data, or undefined when its data also lives in a file xvbd knows. */
export function dataLossReason(loop: LoopObs, recorded: Inode | undefined): string | undefined {
  if (loop.backingDeleted) {
    return `the backing file of /dev/${loop.name} (${livePath(loop)}) was deleted: the loop device holds the only copy of its data`;
  }
  if (recorded !== undefined && !sameInode(loop.backing, recorded)) {
    return (
      `/dev/${loop.name} backs inode ${loop.backing.dev}:${loop.backing.ino}, not the one recorded in the backend ` +
      `(xvbd-inode ${recorded.dev}:${recorded.ino}): where its data lives is unknown`
    );
  }
  return undefined;
}

/** The command that copies a loop device's data out, to a file next to the one it was made of. */
export function saveCommand(loop: LoopObs): string {
  const base = livePath(loop);
  const to = base.startsWith('/') ? `${base}.rescued` : `/var/tmp/${loop.name}.rescued`;
  return `dd if=/dev/${loop.name} of=${to} bs=1M conv=sparse status=progress`;
}

/**
 * May the plan `what` a backend's device or a loop device? `loop` is the device itself (undefined when the
 * backend names no loop device of the same diskseq: then nothing of ours holds data and it may);
 * `recorded` the backend's xvbd-inode (none for a free). `allowDataLoss` is only ever the command line's
 * --allow-data-loss, never the config.
 */
export function letGoVerdict(what: LetGo, loop: LoopObs | undefined, recorded: Inode | undefined, allowDataLoss: boolean): LetGoVerdict {
  if (loop === undefined) return { allowed: true };
  const why = dataLossReason(loop, what === 'free-loop' ? undefined : recorded);
  if (why === undefined) return { allowed: true };
  if (allowDataLoss) return { allowed: true, loss: `${why}; --allow-data-loss discards it` };
  const verb = what === 'free-loop' ? 'freed' : what === 'detach' ? 'detached' : 'replaced';
  return {
    allowed: false,
    why,
    save: `copy the data out first (${saveCommand(loop)}); once it is safe, apply --prune --allow-data-loss lets the device be ${verb}`,
  };
}
