// Worker thread entry: runs XenSource.load() (config parse, xenstore walk, loop device scan, plan)
// off the UI thread, so keys and redraws never wait for an observation. See worker-source.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { XenSource, type XenSourceOptions } from './xen-source.js';

export interface LoadRequest {
  id: number;
  force: boolean;
}

export type LoadReply =
  | { id: number; ok: true; observation: import('./source.js').Observation }
  | { id: number; ok: false; error: string };

const port = parentPort;
if (port) {
  const source = new XenSource(workerData as XenSourceOptions);
  // One load at a time, in order (the UI side coalesces already).
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (m: LoadRequest | 'close') => {
    if (m === 'close') {
      void chain.then(() => source.close()).finally(() => port.close());
      return;
    }
    chain = chain.then(async () => {
      let reply: LoadReply;
      try {
        reply = { id: m.id, ok: true, observation: await source.load({ force: m.force }) };
      } catch (err) {
        reply = { id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) };
      }
      port.postMessage(reply);
    });
  });
}
