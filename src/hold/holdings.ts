// Who durably holds each loop device, asked of the holders themselves: both keepers of the run dir
// and, under systemd, the daemon's fd store (its own list, or asked over the control socket).
import { FD_STORE_HOLDER } from '../plan/holding.js';
import type { Holdings } from '../observe/holders.js';
import { join } from 'node:path';
import { askDaemon } from '../ipc/control.js';
import { keeperHoldings } from './keeper-client.js';

function add(m: Holdings, diskseq: string, who: string): void {
  const l = m.get(diskseq) ?? [];
  if (!l.includes(who)) l.push(who);
  m.set(diskseq, l);
}

/**
 * `parked`: the fd store's diskseqs when the caller is the daemon; `askDaemon`: ask a running daemon for
 * its fd store's (a one-shot command). A daemon that does not answer counts as holding nothing.
 */
export async function durableHoldings(runDir: string, opts: { parked?: Iterable<string>; askDaemon?: boolean } = {}): Promise<Holdings> {
  const [m, rep] = await Promise.all([
    keeperHoldings(runDir),
    opts.askDaemon ? askDaemon({ op: 'status' }, { path: join(runDir, 'control.sock'), timeoutMs: 5000 }).catch(() => undefined) : undefined,
  ]);
  for (const d of opts.parked ?? []) add(m, d, FD_STORE_HOLDER);
  const parked = (rep as { parked?: unknown } | undefined)?.parked;
  if (Array.isArray(parked)) for (const d of parked) if (typeof d === 'string') add(m, d, FD_STORE_HOLDER);
  return m;
}
