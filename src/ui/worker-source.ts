// A LiveSource whose load() runs in a worker thread (observe-worker.ts): the observation (config,
// xenstore, loop devices, plan) costs tens to hundreds of ms of CPU at 1,000 disks, and on the UI
// thread that is time keys and redraws wait. Change events (xenstore watches, chokidar) and apply
// stay on the UI thread: they are light, or must not race the user.
import { Worker } from 'node:worker_threads';
import type { LoadReply, LoadRequest } from './observe-worker.js';
import type { LiveSource, Observation } from './source.js';
import { XenSource, type XenSourceOptions } from './xen-source.js';

export class WorkerSource implements LiveSource {
  readonly host: string;
  readonly socket: string;
  readonly configDir: string;
  readonly apply?: XenSource['apply'];
  private readonly local: XenSource;
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(o: Observation): void; reject(e: Error): void }>();
  private dead: Error | undefined;

  constructor(opts: XenSourceOptions) {
    this.local = new XenSource(opts);
    this.host = this.local.host;
    this.socket = this.local.socket;
    this.configDir = this.local.configDir;
    if (this.local.apply) this.apply = this.local.apply;
    const { apply: _apply, ...data } = opts;
    void _apply;
    this.worker = new Worker(new URL('./observe-worker.js', import.meta.url), { workerData: data });
    this.worker.unref();
    this.worker.on('message', (r: LoadReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.observation);
      else p.reject(new Error(r.error));
    });
    const fail = (err: Error) => {
      this.dead = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    this.worker.on('error', (err) => fail(new Error(`observer thread failed: ${err.message}`)));
    this.worker.on('exit', (code) => fail(new Error(`observer thread exited (${code})`)));
  }

  load(opts: { force?: boolean } = {}): Promise<Observation> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const req: LoadRequest = { id, force: opts.force ?? false };
      this.worker.postMessage(req);
    });
  }

  subscribe(onChange: (why: string) => void): () => Promise<void> {
    return this.local.subscribe(onChange);
  }

  observed(o: Observation): void {
    this.local.observed(o);
  }

  async close(): Promise<void> {
    if (!this.dead) {
      const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
      this.worker.postMessage('close');
      const timer = setTimeout(() => void this.worker.terminate(), 2000);
      await exited;
      clearTimeout(timer);
    }
    await this.local.close();
  }
}
