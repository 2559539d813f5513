// The FdHolder for one-shot processes (apply, hook): hands each loop fd to the keeper before the
// transaction commits (docs/fd-holding.md).
import { ensureKeeper, type KeeperConnection } from '../daemon/keeper-client.js';
import type { ProvidedDevice } from './devices.js';
import type { FdHolder } from './execute.js';

export class KeeperHolder implements FdHolder {
  readonly releaseAfterCommit = true;
  private conn: KeeperConnection | undefined;

  constructor(
    private readonly runDir: string,
    private readonly graceMs?: number,
  ) {}

  private async keeper(): Promise<KeeperConnection> {
    if (!this.conn) this.conn = await ensureKeeper(this.runDir);
    return this.conn;
  }

  /** Connects to (or starts) the keeper now rather than at the first hold. */
  async start(): Promise<void> {
    await this.keeper();
  }

  /** The last request: the next waits for it (one adopt in flight at a time, whatever the keeper's age). */
  private last: Promise<unknown> = Promise.resolve();

  hold(dev: ProvidedDevice, backend: string): Promise<void> {
    const p = this.last.then(
      () => this.holdNow(dev, backend),
      () => this.holdNow(dev, backend),
    );
    this.last = p.catch(() => {});
    return p;
  }

  private async holdNow(dev: ProvidedDevice, backend: string): Promise<void> {
    const req = { op: 'adopt' as const, pid: process.pid, fd: dev.fd, backend, diskseq: dev.diskseq, graceMs: this.graceMs };
    try {
      await (await this.keeper()).request(req);
    } catch (err) {
      // the keeper may have been exiting just as we connected: start a fresh one once
      this.conn?.close();
      this.conn = undefined;
      if (!(err instanceof Error) || !/closed the connection|connection failed/.test(err.message)) throw err;
      await (await this.keeper()).request(req);
    }
  }

  abort(dev: ProvidedDevice, backend: string): Promise<void> {
    const p = this.last.then(
      () => this.dropNow(dev, backend),
      () => this.dropNow(dev, backend),
    );
    this.last = p.catch(() => {});
    return p;
  }

  private async dropNow(dev: ProvidedDevice, backend: string): Promise<void> {
    await (await this.keeper()).request({ op: 'drop', backend, diskseq: dev.diskseq });
  }

  close(): void {
    this.conn?.close();
    this.conn = undefined;
  }
}
