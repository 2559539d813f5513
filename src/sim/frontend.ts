// A simulated guest's blkfront for one vbd: it writes as the guest domain (unprivileged, so
// the frontend dir's permissions matter, as on a real host) and follows its backend like
// Linux blkfront: backend Closing -> frontend Closed.
import { availableParallelism } from 'node:os';
import type { Caller, Store } from './store.js';
import { KernelWatcher } from './kwatch.js';
import type { Blkback } from './blkback.js';

export class SimFrontend {
  readonly path: string;
  private readonly caller: Caller;
  private watcher: KernelWatcher | undefined;
  private static ringRef = 8;

  constructor(
    private readonly store: Store,
    readonly domid: number,
    readonly devid: number,
    private readonly blkback: Blkback,
  ) {
    this.path = `/local/domain/${domid}/device/vbd/${devid}`;
    this.caller = { domid, privileged: false };
  }

  private read(p: string): string | undefined {
    return this.store.readValue(p);
  }

  /** Writes a node of the frontend dir as the guest (throws StoreError EACCES if not allowed). */
  writeNode(name: string, value: string): void {
    this.store.write(this.store.main, this.caller, `${this.path}/${name}`, Buffer.from(value));
  }

  state(): number | undefined {
    const s = this.read(`${this.path}/state`);
    return s === undefined ? undefined : Number.parseInt(s, 10);
  }

  backendPath(): string | undefined {
    return this.read(`${this.path}/backend`);
  }

  backendState(): number | undefined {
    const be = this.backendPath();
    const s = be ? this.read(`${be}/state`) : undefined;
    return s === undefined ? undefined : Number.parseInt(s, 10);
  }

  private follow(): void {
    const be = this.backendPath();
    if (!be || this.watcher) return;
    this.watcher = new KernelWatcher(this.store, this.caller, () => {
      // blkback_changed in blkfront: backend Closing -> we close; Connected -> we are connected.
      const bs = this.backendState();
      const fs = this.state();
      try {
        if (bs === 5 && fs !== undefined && fs !== 6) this.writeNode('state', '6');
        else if (bs === 4 && fs === 3) this.writeNode('state', '4');
      } catch {
        // the frontend dir went away
      }
    });
    this.watcher.watch(`${be}/state`, 'be');
  }

  /** Forgets this frontend (its domain went away). */
  dispose(): void {
    this.unfollow();
  }

  private unfollow(): void {
    this.watcher?.stop();
    this.watcher = undefined;
  }

  /**
   * Connects as blkfront does: protocol, ring-ref, event-channel (per queue-N/ with several
   * queues: multi-queue-num-queues), feature-persistent in one transaction (the order a 1-vcpu
   * Linux domU left them in), then state 3; moves to 4 once the backend is Connected.
   * Resolves after the simulator has settled; returns the frontend state.
   */
  async connect(opts: { queues?: number } = {}): Promise<number | undefined> {
    const queues = opts.queues ?? 1;
    const tx = this.store.begin();
    const w = (name: string, value: string) => this.store.write(tx, this.caller, `${this.path}/${name}`, Buffer.from(value));
    w('protocol', 'x86_64-abi');
    if (queues === 1) {
      const ref = SimFrontend.ringRef++;
      w('ring-ref', String(ref));
      w('event-channel', String(ref));
    } else {
      w('multi-queue-num-queues', String(queues));
      for (let q = 0; q < queues; q++) {
        const ref = SimFrontend.ringRef++;
        w(`queue-${q}/ring-ref`, String(ref));
        w(`queue-${q}/event-channel`, String(ref));
      }
    }
    w('feature-persistent', '1');
    tx.commit();
    this.follow();
    this.writeNode('state', '3');
    await this.settle();
    return this.state();
  }

  /** A broken frontend (no driver behind it): Initialised (3) without ring-ref / event-channel. */
  async connectWithoutRing(): Promise<void> {
    this.writeNode('state', '3');
    await this.settle();
  }

  /** The guest unplugs the disk: Closing then Closed (blkback closes the device). */
  async disconnect(): Promise<void> {
    this.writeNode('state', '5');
    await this.settle();
    this.writeNode('state', '6');
    await this.settle();
    this.unfollow();
  }

  /** Disconnects (if needed), re-initialises (1) and connects again. */
  async reconnect(): Promise<number | undefined> {
    if (this.state() !== 6) await this.disconnect();
    this.writeNode('state', '1');
    await this.settle();
    return this.connect();
  }

  /** Frontend Closed (6) straight away. */
  async close(): Promise<void> {
    this.writeNode('state', '6');
    await this.settle();
    this.unfollow();
  }

  /** Used by auto-connect: connect when the frontend is still Initialising; ignore failures. */
  async autoConnect(): Promise<void> {
    try {
      if (this.probeFailed) return;
      if (this.state() === 1 || this.state() === 6) {
        if (this.state() === 6) this.writeNode('state', '1');
        await this.connect({ queues: this.queuesToUse() });
      }
    } catch {
      // perms or a vanished dir: a real guest would just not connect
    }
  }

  /**
   * blkfront's number of rings: min(its vcpus, the backend's multi-queue-max-queues). A simulated
   * domU has the vcpus libxl lists under cpu/ (1); dom0 has this host's CPUs (the lab's dom0,
   * 2 vcpus, used 2 queues).
   */
  queuesToUse(): number {
    const be = this.backendPath();
    const max = Number.parseInt((be && this.read(`${be}/multi-queue-max-queues`)) || '1', 10) || 1;
    const cpus = this.store.nodes.get(`/local/domain/${this.domid}/cpu`)?.children.length;
    const vcpus = this.domid === 0 ? availableParallelism() : Math.max(1, cpus ?? 1);
    return Math.max(1, Math.min(vcpus, max));
  }

  /** Set when the guest's xenbus could not probe this device (see probe()). */
  probeFailed = false;

  /**
   * What a running guest's xenbus does when the frontend dir appears with state 1
   * (xenbus_probe_node + talk_to_otherend): "backend-id"/"backend" must be readable and the
   * backend dir must exist, else xenbus_dev_fatal: error node under the guest's
   * error/device/vbd/<devid>/error and frontend state 5 (recorded with a real blkfront).
   * Returns true when the device was probed.
   */
  probe(): boolean {
    const name = `device/vbd/${this.devid}`;
    const fatal = (msg: string) => {
      this.probeFailed = true;
      try {
        this.store.write(this.store.main, this.caller, `/local/domain/${this.domid}/error/${name}/error`, Buffer.from(msg));
        this.writeNode('state', '5');
      } catch {
        // no permission / dir gone: nothing more a guest could do
      }
      return false;
    };
    const readAsGuest = (p: string): string | undefined => {
      try {
        return this.store.read(this.store.main, this.caller, p).toString('utf8');
      } catch {
        return undefined;
      }
    };
    const id = readAsGuest(`${this.path}/backend-id`);
    const be = readAsGuest(`${this.path}/backend`);
    if (id === undefined || be === undefined) return fatal(`2 reading other end details from ${name}`);
    const exists = readAsGuest(be) !== undefined;
    if (be.length === 0 || !exists) return fatal(`2 unable to read other end from ${name}.  missing or inaccessible.`);
    this.probeFailed = false;
    return true;
  }

  get busy(): boolean {
    return this.watcher?.busy ?? false;
  }

  async settle(): Promise<void> {
    for (let i = 0; i < 20; i++) {
      await this.blkback.settle();
      if (this.watcher?.busy) await this.watcher.drained();
      else {
        await new Promise((r) => setImmediate(r));
        if (!this.watcher?.busy) {
          await this.blkback.settle();
          return;
        }
      }
    }
  }
}
