// The FdHolder for one-shot processes (apply, hook): hands each loop fd to the keeper before the
// transaction commits (docs/fd-holding.md).
import { ensureKeeper, type KeeperConnection } from '../daemon/keeper-client.js';
import type { ProvidedDevice } from './devices.js';
import type { FdHolder } from './execute.js';

export class KeeperHolder implements FdHolder {
  readonly releaseAfterCommit = true;
  /** The connection (being) made; requests in flight together share it. */
  private conn: Promise<KeeperConnection> | undefined;

  constructor(
    private readonly runDir: string,
    private readonly graceMs?: number,
  ) {}

  private keeper(): Promise<KeeperConnection> {
    if (!this.conn) {
      const c = ensureKeeper(this.runDir);
      this.conn = c;
      c.catch(() => {
        if (this.conn === c) this.conn = undefined;
      });
    }
    return this.conn;
  }

  /** Forget a connection that failed (once: the others in flight on it find a new one made already). */
  private forget(c: Promise<KeeperConnection>): void {
    if (this.conn !== c) return;
    this.conn = undefined;
    void c.then((k) => k.close(), () => {});
  }

  /** Connects to (or starts) the keeper now rather than at the first hold. */
  async start(): Promise<void> {
    await this.keeper();
  }

  /**
   * The last request per backend: a drop must reach the keeper after the adopt it undoes (the keeper
   * handles requests concurrently). Requests for different backends are in flight together (the keeper
   * answers in order; a batch of attaches hands all its fds over in one round trip).
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

  hold(dev: ProvidedDevice, backend: string): Promise<void> {
    return this.chain(backend, () => this.holdNow(dev, backend));
  }

  private async holdNow(dev: ProvidedDevice, backend: string): Promise<void> {
    const req = { op: 'adopt' as const, pid: process.pid, fd: dev.fd, backend, diskseq: dev.diskseq, graceMs: this.graceMs };
    const c = this.keeper();
    try {
      await (await c).request(req);
    } catch (err) {
      // the keeper may have been exiting just as we connected: start a fresh one once
      this.forget(c);
      if (!(err instanceof Error) || !/closed the connection|connection to the keeper failed/.test(err.message)) throw err;
      await (await this.keeper()).request(req);
    }
  }

  abort(dev: ProvidedDevice, backend: string): Promise<void> {
    return this.chain(backend, () => this.dropNow(dev, backend));
  }

  private async dropNow(dev: ProvidedDevice, backend: string): Promise<void> {
    await (await this.keeper()).request({ op: 'drop', backend, diskseq: dev.diskseq });
  }

  close(): void {
    if (this.conn) this.forget(this.conn);
  }
}
