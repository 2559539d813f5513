// The plan: what `plan(desired, observed, policy)` returns and the executor carries out.
// Plan-as-data (Terraform): ordered actions plus findings, printable, serialisable, comparable.
// Sync status and health are kept apart (Argo CD).
import type { DiskSpec, SourceLocation } from './desired.js';
import type { Inode } from './observed.js';

/** A reference to an existing backend, with what identifies it beyond its path. */
export interface BackendRef {
  path: string;
  backendDomid: number;
  frontendDomid: number;
  devid: number;
  /** The diskseq recorded in the backend dir when it was served, if any. */
  diskseq?: string;
}

/** A reference to an existing loop device: a name is only valid together with its diskseq. */
export interface LoopRef {
  name: string;
  diskseq: string;
  backing: Inode;
}

export type Action =
  /** `+` Write frontend + backend for a running domain, with a loop device (new, or shared when read-only). */
  | { kind: 'attach'; domain: string; domid: number; disk: DiskSpec; reuseLoop?: LoopRef }
  /** `+` A backend the toolstack created (hotplug pending): provide its device and physical-device. */
  | { kind: 'serve'; domain: string; domid: number; disk: DiskSpec; backend: BackendRef; reuseLoop?: LoopRef }
  /** `-` Detach a backend of ours that is no longer desired (prune only). */
  | { kind: 'detach'; domain?: string; backend: BackendRef; reason: string }
  /** `~` Replace a backend whose source or mode differs from the desired disk: detach, then attach. */
  | { kind: 'replace'; domain: string; domid: number; disk: DiskSpec; backend: BackendRef; reason: string; reuseLoop?: LoopRef }
  /** `-` Free one of our loop devices that no backend uses (prune only; ownership proven by marker + diskseq). */
  | { kind: 'free-loop'; loop: LoopRef; reason: string }
  /**
   * `+` Take back a device of ours that a backend of ours serves but no durable holder (both keepers, or
   * systemd's fd store) keeps open: proven by marker, the backend's recorded diskseq and source inode.
   * Never gated by prune: without a holder the device is freed as soon as blkback lets go.
   */
  | { kind: 'hold'; domain?: string; backend: BackendRef; loop: LoopRef }
  /**
   * `-` A backend of ours whose physical-device names a loop device that is gone, or whose number now
   * belongs to another device (diskseq differs): its physical-device is removed before anything else is
   * allocated, so blkback can never open what that number names next. `close` also closes the backend
   * (online=0, Closing): the number is bound to another device that blkback may already have opened.
   */
  | { kind: 'offline'; domain?: string; backend: BackendRef; physicalDevice: string; close: boolean; reason: string }
  /**
   * `~` A backend of ours, serving the desired device, whose guest removed its frontend dir (the way a
   * frontend comes back as a new device) or, blkback having let go, writes a new frontend that waits:
   * `frontend` has the frontend dir written anew as attach writes it, and the backend's `state` is
   * written 1 again, the one change that makes the kernel probe a backend dir anew (src/plan/reprobe.ts).
   */
  | { kind: 'reprobe'; domain: string; domid: number; backend: BackendRef; physicalDevice: string; backendState: number; frontend: boolean; reason: string };

/** How a plan marks each action: `+` adds a disk, `-` removes one, `~` changes one in place. */
export const ACTION_SIGN: Record<Action['kind'], '+' | '-' | '~'> = {
  attach: '+',
  serve: '+',
  detach: '-',
  'free-loop': '-',
  replace: '~',
  hold: '+',
  offline: '-',
  reprobe: '~',
};

export type FindingKind =
  | 'missing-backend'
  | 'unexpected-backend'
  | 'mode-mismatch'
  | 'source-mismatch'
  /** The loop device's direct I/O or logical block size differs from the desired disk's options. */
  | 'options-mismatch'
  | 'loop-leaked'
  | 'loop-duplicate'
  | 'loop-backing-deleted'
  | 'loop-reused'
  | 'rw-shared'
  | 'source-mounted'
  | 'source-missing'
  | 'domain-not-running'
  | 'backend-error'
  /** A served device of ours that no durable holder keeps open: blkback letting go would free it. */
  | 'loop-unheld'
  /**
   * Prune refused to detach, replace or free a loop device that holds the only copy of some data (its
   * backing file was deleted, or is not the inode the backend recorded); the fix says how to save it.
   */
  | 'data-loss-refused'
  /** Another tool's loop device (losetup...) has the source: an attach would fail, so none is planned. */
  | 'source-in-use'
  /** The daemon saw a backend of ours removed by someone else while its domain runs: not put back by a pass. */
  | 'detached-outside';

export type Severity = 'info' | 'warning' | 'error';

export interface Finding {
  kind: FindingKind;
  severity: Severity;
  /** One sentence for a human. */
  message: string;
  /** What fixes it (a command, a config change, or "apply" / "apply with prune"). */
  fix: string;
  domain?: string;
  vdev?: string;
  backend?: BackendRef;
  loops?: LoopRef[];
  source?: string;
  at?: SourceLocation;
}

export type SyncStatus = 'synced' | 'out-of-sync' | 'pending' | 'unknown';
export type Health = 'healthy' | 'progressing' | 'degraded' | 'missing';

/** One row of `xvbd status`: a desired disk, or an observed backend of ours nobody desires. */
export interface DiskStatus {
  domain: string;
  domid?: number;
  vdev: string;
  devid: number;
  source?: string;
  mode?: 'ro' | 'rw';
  sync: SyncStatus;
  health: Health;
  /** Why the health is what it is (for degraded / progressing / missing). */
  healthReason?: string;
  /** Why the sync is not `synced`: the planned action, or the finding that blocks one. */
  syncReason?: string;
  backend?: BackendRef;
  loop?: LoopRef;
  /** How many backends share this disk's loop device (read-only sharing). */
  sharedBy: number;
  backendState?: number;
  frontendState?: number;
}

export interface Plan {
  actions: Action[];
  findings: Finding[];
  disks: DiskStatus[];
}
