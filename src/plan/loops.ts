// Loop devices on their own: which of ours nothing uses (freed with prune, else reported as leaked),
// which serve guests although their backing file was deleted, and several read-only devices of one file.
import type { Policy } from '../model/desired.js';
import type { LoopObs } from '../model/observed.js';
import type { Action } from '../model/plan.js';
import { devKey, loopRef, vdevName } from './identity.js';
import { guardLetGo } from './backend.js';
import { domLabel, ownLoop, type ObservedIndex } from './observed-index.js';
import { LOOP_SORT, PlanOut } from './order.js';
import { saveCommand } from './safety.js';
import { letGo } from './letgo.js';

/** What makes a loop device wanted although no backend uses it now. */
export interface LoopWants {
  /** Loop devices this plan's attaches, serves and replaces share (reuseLoop), by name. */
  readonly reused: ReadonlySet<string>;
  /** Block devices desired disks name (`device: /dev/loop3`), by devKey: wanted, used or not. */
  readonly desiredDevices: ReadonlySet<string>;
}

/**
 * The free-loop decision for one loop device: 'kept' when it is not ours, something uses or wants it
 * (a backend, a recorded diskseq, this plan, a desired disk) or something in dom0 uses it (mounted,
 * holders: not ours to judge); else free it (prune, under allowedRoots, the data guard allowing) or
 * report it as leaked (or as refused by the data guard). The findings it makes are in `out`.
 */
export function freeLoopDecision(l: LoopObs, ix: ObservedIndex, wants: LoopWants, policy: Policy, out: PlanOut): 'kept' | 'freed' | 'not-freed' {
  if (!ownLoop(ix, l)) return 'kept';
  const used = ix.loopUsers.get(l.name) ?? [];
  const referenced = used.length > 0 || ix.recordedDiskseqs.has(l.diskseq) || wants.reused.has(l.name) || wants.desiredDevices.has(devKey(l));
  if (referenced) return 'kept';
  const v = letGo({ of: 'loop-device', ours: true, referenced, usedInDom0: l.mounted || l.holders.length > 0, scoped: ix.roots.length > 0, prune: policy.prune });
  if (v.keep && v.leaked === undefined) return 'kept'; // something in dom0 uses it: not ours to judge
  const reason = `no backend uses it${l.backingDeleted ? ' (its backing file was deleted)' : ''}`;
  const what = `/dev/${l.name} (${l.backingPath}) is xvbd's and ${reason}`;
  const f = { loops: [loopRef(l)], sortDomain: LOOP_SORT, sortDevid: l.number };
  const unscoped = v.keep && v.leaked === 'unscoped';
  if (!v.keep) {
    const note = guardLetGo('free-loop', l, what, f, policy.allowDataLoss === true, out);
    if (note === undefined) return 'not-freed';
    out.action({ kind: 'free-loop', loop: loopRef(l), reason: reason + note }, '', 0, 0, l.number);
    return 'freed';
  }
  const fix = unscoped
    ? 'not freed: xvbd frees only loop devices of files under policy allowedRoots; set them, then apply with prune'
    : l.backingDeleted
      ? `copy the data out first (${saveCommand(l)}); apply --prune --allow-data-loss frees it`
      : 'apply with prune frees it';
  out.finding('loop-leaked', 'warning', what, fix, f);
  return 'not-freed';
}

/** What wants a loop device besides its backends: the plan's shared devices, the desired block devices. */
export function loopWants(actions: readonly Action[], desiredDevices: ReadonlySet<string>): LoopWants {
  const reused = new Set<string>();
  for (const a of actions) if ((a.kind === 'attach' || a.kind === 'serve' || a.kind === 'replace') && a.reuseLoop) reused.add(a.reuseLoop.name);
  return { reused, desiredDevices };
}

/** The loop-device stage: each device's free-loop decision, deleted backing files in use, duplicates. */
export function planLoops(ix: ObservedIndex, wants: LoopWants, policy: Policy): PlanOut {
  const out = new PlanOut();
  const freed = new Set<string>();
  for (const l of ix.loops) {
    const decision = freeLoopDecision(l, ix, wants, policy, out);
    if (decision === 'freed') freed.add(l.name);
    if (decision !== 'kept' || !ownLoop(ix, l)) continue;
    const used = ix.loopUsers.get(l.name) ?? [];
    if (l.backingDeleted && used.length > 0) {
      const who = used.map((u) => `${domLabel(ix, u.b.frontendDomid)} ${vdevName(u.b.devid)}`).join(', ');
      out.finding(
        'loop-backing-deleted',
        'warning',
        `/dev/${l.name}: its backing file was deleted (${l.backingPath}) but ${who} still use it`,
        `copy the data out before anything detaches it (${saveCommand(l)}), then restore the file and replace the disk`,
        { loops: [loopRef(l)], sortDomain: LOOP_SORT, sortDevid: l.number },
      );
    }
  }
  for (const ls of ix.roLoopsByKey.values()) {
    const remaining = ls.filter((l) => !freed.has(l.name));
    if (remaining.length < 2) continue;
    out.finding(
      'loop-duplicate',
      'warning',
      `${remaining.length} read-only loop devices for one file (${remaining[0]!.backingPath}): ${remaining.map((l) => l.name).join(', ')}`,
      'new guests share the first; detach and re-attach the others\' guests to consolidate, then apply with prune',
      { loops: remaining.map(loopRef), sortDomain: LOOP_SORT, sortDevid: remaining[0]!.number },
    );
  }
  return out;
}
