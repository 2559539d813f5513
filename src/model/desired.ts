// Desired state: what the administrator's YAML says, after parsing, schema validation,
// defaulting and the semantic checks. Produced by src/config, consumed by src/plan.
// Pure data: no functions, no class instances, serialisable as JSON.

/** Where something was written in the config directory (1-based line and column). */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

export type DiskMode = 'ro' | 'rw';

/** What the source path names: a regular file (gets a loop device) or a block device (used as is). */
export type SourceKind = 'file' | 'block';

export interface DiskOptions {
  /** LO_FLAGS_DIRECT_IO on the loop device. Off by default: it breaks on Btrfs and 4Kn disks. */
  directIo: boolean;
  /** Logical block size of the loop device (512, 1024, 2048 or 4096), or undefined for the kernel default. */
  blockSize?: number;
  /** Advertise discard (feature-discard) to the frontend. */
  discard: boolean;
}

export interface DiskSpec {
  /** The vdev as written, normalised to lower case: "xvda", "xvdq", "hda", "sdb", "xvda1"... */
  vdev: string;
  /** The numeric xenstore device id computed as docs/misc/vbd-interface.txt says (xvda = 51712). */
  devid: number;
  /** Absolute, normalised path of the source. */
  source: string;
  sourceKind: SourceKind;
  mode: DiskMode;
  options: DiskOptions;
  /** The domain that serves the backend (a domid; 0 = dom0). */
  backendDomid: number;
  /** Where this disk was written. */
  at: SourceLocation;
}

export interface DomainSpec {
  /** The domain's name as the toolstack knows it (`/local/domain/<domid>/name`). */
  name: string;
  disks: DiskSpec[];
  at: SourceLocation;
}

export type ServeMode = 'attach' | 'hook' | 'both';

export interface Policy {
  /** Detach backends and free loop devices that are ours and no longer desired. Off by default. */
  prune: boolean;
  /**
   * Let prune detach, replace or free a loop device that holds the only copy of some data (its backing
   * file deleted, or not the recorded inode). Only the command line sets it (`--allow-data-loss` of plan
   * and apply): the schema has no such key, so no config, and no daemon, can.
   */
  allowDataLoss?: boolean;
  /**
   * Vbds ("<frontend domid>/<devid>", src/plan/outside.ts) whose backend of ours someone else removed
   * while the domain runs: not attached again. Only the daemon sets it, from what its passes saw.
   */
  detachedOutside?: ReadonlySet<string>;
  /**
   * `-replace DOMAIN/VDEV` (the command line only): these desired disks ("<domain>/<devid>",
   * src/plan/target.ts replaceKey) are replaced when their backend differs from the config, as with
   * prune, but without prune's other detaches and replaces.
   */
  replace?: ReadonlySet<string>;
  /** Sources must lie under one of these absolute directories (after normalisation). Empty = any. */
  allowedRoots: string[];
  /**
   * How backends come into being: `attach` = xvbd writes frontends and backends for running domains
   * (GitOps attacher); `hook` = only serve backends the toolstack created (libxl `script=`);
   * `both` = the two.
   */
  serve: ServeMode;
  /** Detach: how long to wait for a frontend to close before removing the dirs (ms). */
  detachTimeoutMs: number;
  /** Defaults applied to disks that do not say otherwise. */
  defaults: {
    mode: DiskMode;
    options: DiskOptions;
    backendDomid: number;
  };
  at?: SourceLocation;
}

/** A host of a fleet (a `kind: Host` document): its name, folded to lower case, and its labels. */
export interface HostSpec {
  name: string;
  labels: Record<string, string>;
  at: SourceLocation;
}

export interface DesiredState {
  domains: DomainSpec[];
  policy: Policy;
  /** In a fleet directory (one with Host documents): the host this desired state is for. */
  host?: HostSpec;
}

export const DEFAULT_POLICY: Policy = {
  prune: false,
  allowedRoots: [],
  serve: 'both',
  detachTimeoutMs: 10_000,
  defaults: {
    mode: 'rw',
    options: { directIo: false, discard: false },
    backendDomid: 0,
  },
};
