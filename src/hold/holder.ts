// The FdHolder that hands each loop fd to both keepers of the run dir before the transaction commits
// (docs/fd-holding.md): one-shot processes (apply, the hook) and the daemon when no fd store is there.
import { ensureKeeper, KeeperError, type KeeperConnection } from './keeper-client.js';
import { KEEPER_SLOTS, type KeeperSlot } from '../plan/holding.js';
import type { ProvidedDevice } from './devices.js';

/** Who keeps a loop device's fd after the step: the keeper process (apply, hook) or this process (daemon). */
export interface FdHolder {
  /** Called before the transaction that names the device commits. */
  hold(dev: ProvidedDevice, backend: string): Promise<void>;
  /** The transaction failed or was not needed: let go of what hold() took. */
  abort(dev: ProvidedDevice, backend: string): Promise<void>;
  /** Whether the executor should close its own fd once the step committed (the holder has its own). */
  readonly releaseAfterCommit: boolean;
}

/** The daemon keeps the registry's fd itself. */
export const selfHolder: FdHolder = {
  async hold() {},
  async abort() {},
  releaseAfterCommit: false,
};

export class KeeperHolder implements FdHolder {
  /** One-shot processes close their own fd after the commit; the daemon keeps its own as well. */
  readonly releaseAfterCommit: boolean;
  /** The connection (being) made to each keeper; requests in flight together share it. */
  private readonly conns = new Map<KeeperSlot, Promise<KeeperConnection>>();

  constructor(
    private readonly runDir: string,
    private readonly opts: { graceMs?: number; keepOwn?: boolean } = {},
  ) {
    this.releaseAfterCommit = !opts.keepOwn;
  }

  private keeper(slot: KeeperSlot): Promise<KeeperConnection> {
    let c = this.conns.get(slot);
    if (!c) {
      c = ensureKeeper(this.runDir, slot);
      this.conns.set(slot, c);
      const made = c;
      made.catch(() => {
        if (this.conns.get(slot) === made) this.conns.delete(slot);
      });
    }
    return c;
  }

  /** Forget a connection that failed (once: the others in flight on it find a new one made already). */
  private forget(slot: KeeperSlot, c: Promise<KeeperConnection>): void {
    if (this.conns.get(slot) !== c) return;
    this.conns.delete(slot);
    void c.then((k) => k.close(), () => {});
  }

  /** Connects to (or starts) both keepers now rather than at the first hold. */
  async start(): Promise<void> {
    await Promise.all(KEEPER_SLOTS.map((s) => this.keeper(s)));
  }

  /**
   * The last request per backend: a drop must reach the keepers after the adopt it undoes (they handle
   * requests concurrently). Requests for different backends are in flight together (a keeper answers
   * in order; a batch of attaches hands all its fds over in one round trip to each).
   */
  private readonly last = new Map<string, Promise<unknown>>();

  private chain(backend: string, f: () => Promise<void>): Promise<void> {
    const prev = this.last.get(backend) ?? Promise.resolve();
    const p = prev.then(f, f);
    const tail = p.catch(() => {});
    this.last.set(backend, tail);
    void tail.then(() => {
      if (this.last.get(backend) === tail) this.last.delete(backend);
    });
    return p;
  }

  /** Resolves once BOTH keepers hold the fd: the commit that names the device may go out then. */
  hold(dev: ProvidedDevice, backend: string): Promise<void> {
    return this.chain(backend, async () => {
      const rs = await Promise.allSettled(KEEPER_SLOTS.map((s) => this.holdAt(s, dev, backend)));
      const bad = rs.find((r) => r.status === 'rejected');
      if (bad) {
        // one keeper holding is no hold that survives a crash: undo what the other took
        await Promise.allSettled(KEEPER_SLOTS.map((s) => this.dropAt(s, dev, backend)));
        throw (bad as PromiseRejectedResult).reason;
      }
    });
  }

  private async holdAt(slot: KeeperSlot, dev: ProvidedDevice, backend: string): Promise<void> {
    const req = { op: 'adopt' as const, pid: process.pid, fd: dev.fd, backend, diskseq: dev.diskseq, graceMs: this.opts.graceMs };
    const c = this.keeper(slot);
    try {
      await (await c).request(req);
    } catch (err) {
      // The keeper died or was exiting just as we connected: the next one (started by us, or by its
      // twin) gets the same request once. A keeper's refusal (not a block device, wrong diskseq) stands.
      this.forget(slot, c);
      if (!(err instanceof KeeperError && err.connectionLost)) throw err;
      await (await this.keeper(slot)).request(req);
    }
  }

  private async dropAt(slot: KeeperSlot, dev: ProvidedDevice, backend: string): Promise<void> {
    await (await this.keeper(slot)).request({ op: 'drop', backend, diskseq: dev.diskseq });
  }

  abort(dev: ProvidedDevice, backend: string): Promise<void> {
    return this.chain(backend, async () => {
      const rs = await Promise.allSettled(KEEPER_SLOTS.map((s) => this.dropAt(s, dev, backend)));
      const bad = rs.find((r) => r.status === 'rejected');
      if (bad) throw (bad as PromiseRejectedResult).reason;
    });
  }

  close(): void {
    for (const [slot, c] of [...this.conns]) this.forget(slot, c);
  }
}
