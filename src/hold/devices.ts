// What the executor needs from the host's block layer, as one small interface (implemented with
// src/linux in src/apply/linux-devices.ts; the executor itself does no ioctl). Here, below the executor,
// because a ProvidedDevice is what every fd holder takes.
import type { DiskSpec } from '../model/desired.js';
import type { Inode, LoopObs } from '../model/observed.js';
import type { LoopRef } from '../model/plan.js';

/** A device ready to be handed to blkback, with the fd that keeps it alive while we hold it. */
export interface ProvidedDevice {
  /** The user key it was acquired under (the backend path). */
  key: string;
  kind: 'loop' | 'block';
  major: number;
  minor: number;
  /** /dev/loopN, or the block device source path. */
  devPath: string;
  /** Decimal u64 (BLKGETDISKSEQ); undefined for a block device without one. */
  diskseq?: string;
  /** The backing file's identity (loop devices). */
  sourceInode?: Inode;
  /** Our fd to the device (open until release(key)). */
  fd: number;
  /** The loop device was shared (read-only, already ours) rather than created. */
  shared: boolean;
}

export interface DeviceProvider {
  /**
   * The device for `disk`, acquired for `key`: a loop device (shared when read-only and the file's inode
   * already has our read-only device, e.g. `reuse`), or the block-device source used as is after checks.
   */
  provide(disk: DiskSpec, key: string, opts: { allowedRoots: string[]; reuse?: LoopRef }): Promise<ProvidedDevice>;
  /** Drops the key's use; closes our fd when it was the last. */
  release(key: string): void;
  /**
   * Frees one of our loop devices, only with proof (marker + the same diskseq). Resolves to 'gone' when
   * the device with that diskseq no longer exists (autoclear freed it, or the number was reused: then the
   * new device is not touched): the goal of the step is reached either way.
   */
  free(loop: LoopRef): Promise<'freed' | 'gone'>;
  /**
   * Opens one of our loop devices that a backend already serves, for `key`, by proof: marker, the
   * diskseq the backend recorded and its backing inode, all checked on the fd after the open (a number
   * re-bound meanwhile is refused). Released like provide()'s devices.
   */
  take(loop: LoopRef, key: string): ProvidedDevice;
  /**
   * A fresh look at a loop device, by device number or name (undefined when it is not a bound loop
   * device): what a step about to let go of it checks once more (its backing file deleted meanwhile?).
   */
  inspect(dev: { major: number; minor: number } | { name: string }): LoopObs | undefined;
}
