// Observed state: one snapshot of the host, taken fresh at the start of every reconcile.
// Produced by src/observe (from xenstore and src/linux), consumed by src/plan.
// Pure data: serialisable as JSON. 64-bit kernel numbers (st_dev, st_ino, diskseq) are decimal strings.

/** A file's identity: (st_dev, st_ino), decimal strings. Never a path. */
export interface Inode {
  dev: string;
  ino: string;
}

export interface DomainObs {
  domid: number;
  /** `/local/domain/<domid>/name`; undefined if the node is missing. Untrusted if the guest could write it. */
  name?: string;
}

/** xenbus states, docs/misc/xenstore... and xen/include/public/io/xenbus.h */
export const XenbusState = {
  Unknown: 0,
  Initialising: 1,
  InitWait: 2,
  Initialised: 3,
  Connected: 4,
  Closing: 5,
  Closed: 6,
  Reconfiguring: 7,
  Reconfigured: 8,
} as const;

const XENBUS_STATE_NAMES = new Map<number, string>(Object.entries(XenbusState).map(([name, n]) => [n, name]));

/** "Connected" for 4; the number itself when it is no xenbus state; "-" when unknown. */
export function xenbusStateName(s: number | undefined): string {
  if (s === undefined) return '-';
  return XENBUS_STATE_NAMES.get(s) ?? String(s);
}

/** One `/local/domain/<backend>/backend/vbd/<frontend domid>/<devid>` directory and its frontend. */
export interface BackendObs {
  backendDomid: number;
  frontendDomid: number;
  devid: number;
  /** Full xenstore path of the backend dir. */
  path: string;
  params?: string;
  /** "r" or "w" as libxl writes it. */
  mode?: string;
  type?: string;
  /** "major:minor" in hex, as the hotplug script writes it (e.g. "7:0"). */
  physicalDevice?: string;
  physicalDevicePath?: string;
  /** The loop device's diskseq we recorded when we served this backend (decimal string). */
  diskseq?: string;
  /** Inode of the source file we recorded when we served it. */
  sourceInode?: Inode;
  state?: number;
  online?: boolean;
  hotplugStatus?: string;
  /** `/local/domain/<backend>/error/backend/vbd/<fe>/<devid>/error`, if present. */
  error?: string;
  /** Our marker node in the backend dir: this backend was written or served by xvbd. */
  ours: boolean;
  /** The backend's script= (libxl writes `script`), if any. */
  script?: string;
  frontendPath?: string;
  /** Frontend state, parsed strictly; undefined if missing or not a number (the guest writes it). */
  frontendState?: number;
  /** Whether the frontend dir exists (observed when frontendPath is sane and under the frontend's domain). */
  frontendExists?: boolean;
  /** blkback has opened the device (sysfs `physical_device` under the xen-backend device exists). */
  kernelHeld: boolean;
  /**
   * blkback has a device for this backend (sysfs `vbd-<fe>-<devid>` exists), whether or not it opened
   * physical-device yet; undefined when not observed (a saved observation from an older xvbd).
   */
  kernelRegistered?: boolean;
  /** Nodes that were present but failed strict parsing (e.g. a guest-written frontend state "abc"). */
  malformed?: string[];
}

export interface LoopObs {
  /** "loop3" */
  name: string;
  number: number;
  major: number;
  minor: number;
  diskseq: string;
  /** Backing file identity from LOOP_GET_STATUS64 (lo_device, lo_inode). */
  backing: Inode;
  /** The kernel's idea of the backing path (sysfs backing_file); may end in " (deleted)". */
  backingPath: string;
  backingDeleted: boolean;
  readOnly: boolean;
  autoclear: boolean;
  directIo: boolean;
  /** Logical block size (BLKSSZGET), for option drift; set by src/linux listLoops. */
  blockSize?: number;
  offset: string;
  sizeLimit: string;
  /** `lo_file_name` carries xvbd's ownership marker. */
  ours: boolean;
  /** Mounted somewhere in dom0 (from /proc/self/mountinfo). */
  mounted: boolean;
  /** Holders (sysfs holders/ entries, e.g. device-mapper). */
  holders: string[];
  /** This process (or the daemon we asked) holds an fd to it. */
  heldByUs: boolean;
  /**
   * The durable holders that keep it open (`keeper-a`, `keeper-b`, `fd-store`), as the observer asked
   * them; undefined when the observer did not ask (nothing is concluded about holding then).
   */
  keptBy?: string[];
}

/** A block device named as a source, or a file named as a source, as found on disk. */
export interface SourceObs {
  path: string;
  exists: boolean;
  kind?: 'file' | 'block' | 'other';
  inode?: Inode;
  /** For block devices: "major:minor" in decimal. */
  rdev?: string;
  /** Mounted in dom0 (a block device, or the loop device of this file). */
  mounted: boolean;
  error?: string;
}

export interface ObservedState {
  /** Monotonic snapshot time (ms) for display; the planner never reads the clock. */
  takenAt: number;
  domains: DomainObs[];
  backends: BackendObs[];
  loops: LoopObs[];
  /** Keyed by normalised absolute path: every source the desired state names. */
  sources: Record<string, SourceObs>;
}
