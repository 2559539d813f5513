// The executor's DeviceProvider on top of src/linux's LoopRegistry.
import { readdirSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import type { LoopObs } from '../model/observed.js';
import type { DiskSpec } from '../model/desired.js';
import type { LoopRef } from '../model/plan.js';
import { isBound, listLoops, LoopFreeRefused, LoopRegistry, mountedDevices, RegistryError } from '../linux/index.js';
import type { DeviceProvider, ProvidedDevice } from '../hold/devices.js';
import { StepError } from './execute.js';

/** How long to wait for a device of ours that is being autocleared (its last holder just died). */
const SETTLE_MS = 3000;

export class RegistryDevices implements DeviceProvider {
  constructor(readonly registry: LoopRegistry = new LoopRegistry()) {}

  async provide(disk: DiskSpec, key: string, opts: { allowedRoots: string[]; reuse?: LoopRef }): Promise<ProvidedDevice> {
    const readOnly = disk.mode === 'ro';
    const before = this.registry.heldDiskseqs();
    const attempts = this.registry.stats.attempts;
    const spec = {
      key,
      source: disk.source,
      readOnly,
      kind: disk.sourceKind,
      directIo: disk.options.directIo,
      ...(disk.options.blockSize !== undefined ? { blockSize: disk.options.blockSize } : {}),
      allowedRoots: opts.allowedRoots,
    };
    const deadline = Date.now() + SETTLE_MS;
    for (;;) {
      try {
        const h = await this.registry.acquire(spec);
        if (h.kind === 'block') {
          try {
            this.checkBlock(disk, h.major, h.minor, h.name);
          } catch (e) {
            this.registry.release(key);
            throw e;
          }
        }
        // not made by this acquire: held already, or our read-only device adopted from the host
        const shared = h.kind === 'loop' && (before.has(h.diskseq) || this.registry.stats.attempts === attempts);
        return {
          key,
          kind: h.kind,
          major: h.major,
          minor: h.minor,
          devPath: h.devPath,
          diskseq: h.diskseq !== '0' ? h.diskseq : undefined,
          sourceInode: h.kind === 'loop' ? h.backing : undefined,
          fd: h.fd,
          shared,
        };
      } catch (err) {
        // A writable file whose earlier loop device (ours, autoclear) is being freed right now because its
        // holder died (crash recovery): wait a moment for the kernel to finish, then try again.
        // Same for a replace that changes only the mode: the old device goes once blkback and its holder let go.
        const settling =
          err instanceof RegistryError &&
          ((err.reason === 'in-use' && err.ours) || err.reason === 'rw-conflict');
        if (settling && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        throw err;
      }
    }
  }

  /** A block device used as is: not mounted in dom0, and when writable not claimed by a holder (dm, md). */
  private checkBlock(disk: DiskSpec, major: number, minor: number, name: string): void {
    const mm = `${major}:${minor}`;
    if (mountedDevices().devs.has(mm)) throw new StepError(`${disk.source} (${mm}) is mounted in dom0`);
    if (disk.mode === 'rw') {
      let holders: string[] = [];
      try {
        holders = readdirSync(`/sys/class/block/${name}/holders`);
      } catch {
        // no sysfs entry: nothing claims it
      }
      if (holders.length > 0) throw new StepError(`${disk.source} (${mm}) is held by ${holders.join(', ')} in dom0`);
    }
  }

  release(key: string): void {
    this.registry.release(key);
  }

  inspect(dev: { major: number; minor: number } | { name: string }): LoopObs | undefined {
    let name: string;
    if ('name' in dev) name = dev.name;
    else {
      try {
        // the kernel's own name for the number (a loop device's minor is not its number with max_part > 0)
        name = basename(readlinkSync(`/sys/dev/block/${dev.major}:${dev.minor}`));
      } catch {
        return undefined;
      }
    }
    if (!/^loop\d{1,9}$/.test(name)) return undefined;
    return listLoops({ names: [name] })[0];
  }

  take(loop: LoopRef, key: string): ProvidedDevice {
    const h = this.registry.adoptByProof({ name: loop.name, diskseq: loop.diskseq, backing: loop.backing }, [key], { exclusive: false });
    return { key, kind: 'loop', major: h.major, minor: h.minor, devPath: h.devPath, diskseq: h.diskseq, sourceInode: h.backing, fd: h.fd, shared: true };
  }

  async free(loop: LoopRef): Promise<'freed' | 'gone'> {
    try {
      this.registry.free({ name: loop.name, diskseq: loop.diskseq, backing: loop.backing });
      return 'freed';
    } catch (err) {
      // The device we planned to free (that name with that diskseq) no longer exists: level-triggered,
      // the step's goal is reached. Whatever now has that number is not ours and was not touched.
      if (err instanceof LoopFreeRefused && !isBound(loop.name, loop.diskseq)) return 'gone';
      throw err;
    }
  }
}
