// The daemon's DeviceProvider: the executor's registry-backed provider, plus the fd store. When the
// registry closes its fd for a device (detach, free), systemd's stored copy must go too, at once:
// otherwise the stored fd keeps the (autoclear) device bound, and a step that needs the file again in
// the same pass (replace with another mode, re-attach after xenstore lost the backend) finds it busy.
import type { DiskSpec } from '../model/desired.js';
import type { LoopObs } from '../model/observed.js';
import type { LoopRef } from '../model/plan.js';
import type { LoopRegistry } from '../linux/registry.js';
import type { DeviceProvider, ProvidedDevice } from '../hold/devices.js';
import type { FdStore } from '../hold/fdstore.js';

export class StoreAwareDevices implements DeviceProvider {
  constructor(
    private readonly inner: DeviceProvider,
    private readonly registry: LoopRegistry,
    private readonly fdStore: FdStore,
  ) {}

  provide(disk: DiskSpec, key: string, opts: { allowedRoots: string[]; reuse?: LoopRef }): Promise<ProvidedDevice> {
    return this.inner.provide(disk, key, opts);
  }

  take(loop: LoopRef, key: string): ProvidedDevice {
    return this.inner.take(loop, key);
  }

  inspect(dev: { major: number; minor: number } | { name: string }): LoopObs | undefined {
    return this.inner.inspect(dev);
  }

  release(key: string): void {
    const h = this.registry.get(key);
    this.inner.release(key);
    if (h && !this.registry.heldDiskseqs().has(h.diskseq)) this.fdStore.unpark(h.diskseq);
  }

  async free(loop: LoopRef): Promise<'freed' | 'gone'> {
    const r = await this.inner.free(loop);
    if (!this.registry.heldDiskseqs().has(loop.diskseq)) await this.fdStore.unpark(loop.diskseq);
    return r;
  }
}
