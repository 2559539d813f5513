// When xvbd may let go of a loop device: close an fd that holds it (a keeper's entry, the daemon's
// registry, the executor's own fd after a step) or free the device (the planner's free-loop). One pure
// rule for every holder and the planner, so that the keepers and the daemon never judge one backend
// differently. Callers: Keeper.check and Keeper.dropByGiver (src/daemon/keeper.ts), sweepRegistry
// (src/daemon/fdstore.ts), the daemon's hook release (src/daemon/daemon.ts), settle and detachBackend
// (src/apply/execute.ts), the hook's remove (src/apply/hook-run.ts), plan()'s loop devices (src/plan/plan.ts).
//
// The rule: no served disk is ever without a holder in dom0; only a device whose ownership is proven is
// freed; when in doubt, keep. A loop device of ours is made with autoclear: closing the last fd of it
// frees it as soon as blkback lets go too (docs/fd-holding.md), so closing an fd is as final as a free
// for a device a backend still names.
//
// (Whether letting go of a device's data is allowed, prune's data guard, is letGoVerdict in safety.ts:
// a question on top of this one, for the planner's detach, replace and free.)
import { parseU64 } from '../xen/vbd.js';

export type LetGoAnswer =
  | { keep: true; reason: string; /** Set for an unused loop device of ours kept only by policy: the planner reports it (loop-leaked). */ leaked?: KeepUnused }
  | { keep: false; reason: string };

/** What a holder knows of the backend dir an fd is held for. */
export type BackendSeen =
  /** Not looked at: xenstore unreachable, the read failed. */
  | { seen: 'unknown' }
  /** The dir does not exist. */
  | { seen: 'gone' }
  /** The dir exists; `diskseq` is its diskseq node as read (undefined: no such node). */
  | { seen: 'present'; diskseq: string | undefined };

export type LetGoQuestion =
  /**
   * An fd a holder keeps for one backend. `diskseq`: the device's (undefined: held for as long as the dir
   * exists, whatever it records). `live`: the backend has been seen recording this device (a pending
   * entry is one whose giver's transaction has not been seen to commit yet); `pending`: for a pending
   * entry, whether its grace period is over and whether its giver was seen dead long enough that its
   * transaction can no longer commit.
   */
  | { of: 'held-fd'; diskseq?: string; live: boolean; backend: BackendSeen; pending?: { expired: boolean; giverGone: boolean } }
  /**
   * The giver of an fd asks its holders to let go of a backend: its transaction failed, or libxl runs the
   * hook's `remove` (before it removes the dirs: blkback's own reference keeps the device until then).
   * Its word is final: the giver is the one that knows the backend no longer needs the device.
   */
  | { of: 'giver-drop' }
  /** A held device no backend claimed: taken back from systemd's fd store or the keepers; `users`: the backends of ours recording its diskseq. */
  | { of: 'unclaimed-fd'; users: number }
  /**
   * The executor's own fd once its step is over: `committed` (the backend names the device, or already
   * did), `loop` (a loop device: a block-device source needs no holder), and whether a durable holder
   * keeps an fd of its own (the keepers), or this process's fd is the hold (the daemon's registry).
   */
  | { of: 'step-fd'; committed: boolean; loop: boolean; holderHasOwnFd: boolean }
  /**
   * A bound loop device in the planner: `ours` (marker and instance), `referenced` (a backend names it
   * by physical-device or records its diskseq, a step of this plan shares it, or a desired disk names it
   * as its block device), `usedInDom0` (mounted, or a kernel holder such as dm or md), `scoped` (the
   * policy has allowedRoots: without them another xvbd instance may have made it), `prune`.
   */
  | { of: 'loop-device'; ours: boolean; referenced: boolean; usedInDom0: boolean; scoped: boolean; prune: boolean };

/** Why a loop device that nothing uses is still not freed (the planner reports it as loop-leaked). */
export type KeepUnused = 'no-prune' | 'unscoped';

const keep = (reason: string): LetGoAnswer => ({ keep: true, reason });
const release = (reason: string): LetGoAnswer => ({ keep: false, reason });

/** The one rule. Pure: the same facts give the same answer in every process. */
export function letGo(q: LetGoQuestion): LetGoAnswer {
  switch (q.of) {
    case 'held-fd':
      return heldFd(q);
    case 'giver-drop':
      return release('giver dropped it');
    case 'unclaimed-fd':
      return q.users > 0 ? keep('a backend of ours records its diskseq') : release('no backend uses it');
    case 'step-fd':
      if (!q.committed) return release('the step did not commit: nothing it wrote names the device');
      if (!q.loop) return release('a block device: nothing frees it when its last fd closes');
      return q.holderHasOwnFd ? release('the durable holder has its own fd') : keep('this fd is the hold');
    case 'loop-device':
      if (!q.ours) return keep('not ours');
      if (q.referenced) return keep('in use by a backend or this plan');
      if (q.usedInDom0) return keep('something in dom0 uses it');
      if (!q.scoped) return { keep: true, reason: 'not under policy allowedRoots: another xvbd instance may have made it', leaked: 'unscoped' };
      if (!q.prune) return { keep: true, reason: 'prune is off', leaked: 'no-prune' };
      return release('no backend uses it');
  }
}

function heldFd(q: Extract<LetGoQuestion, { of: 'held-fd' }>): LetGoAnswer {
  const b = q.backend;
  if (b.seen === 'unknown') return keep('the backend could not be read');
  if (b.seen === 'present') {
    if (q.diskseq === undefined) return keep('held while the backend exists');
    if (b.diskseq === q.diskseq) return keep('the backend records this device');
    // A live entry whose backend records no diskseq (or one that does not parse) is kept: nothing proves
    // the backend let go of this device, and blkback may still use it.
    if (q.live && parseU64(b.diskseq) === undefined) return keep(`the backend records ${b.diskseq === undefined ? 'no diskseq' : 'a malformed diskseq'}`);
    if (q.live) return release(`backend now records diskseq ${b.diskseq}`);
  } else if (q.live) {
    return release('backend removed');
  }
  // pending: the giver's transaction has not been seen to commit
  if (q.pending?.expired) return release('the backend never appeared within the grace period');
  if (q.pending?.giverGone) return release('the giver died before its backend was written');
  return keep('waiting for the giver\'s transaction');
}
