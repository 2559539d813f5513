// Terraform's -target and -replace for xvbd: a domain, or one disk of it (`DOMAIN/VDEV`).
//
// -target is a pure filter over a plan's actions (targetActions): the actions for the named domains and
// disks stay, every other one is left for a later apply. Loop frees (free-loop) name no domain and are
// never targeted. A dangling physical-device taken offline (`offline`) is kept whatever the target as
// soon as anything else stays: it must be gone before any loop device is allocated (src/plan/plan.ts).
//
// -replace is an input of plan() (Policy.replace): the backend of that one disk is replaced when it
// differs from the config, as prune would replace it, without prune's other detaches and replaces; the
// same guards hold (src/plan/safety.ts letGoVerdict, and no read-write file given to two domains).
import { parseVdev, VdevError } from '../config/vdev.js';
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Action } from '../model/plan.js';

/** A domain, or one disk of it (devid set). */
export interface DiskAddress {
  domain: string;
  vdev?: string;
  devid?: number;
}

/** `DOMAIN` or `DOMAIN/VDEV` -> the address, or the sentence saying what is wrong with it. */
export function parseAddress(s: string, opts: { needDisk?: boolean } = {}): DiskAddress | { error: string } {
  const parts = s.split('/');
  if (parts.length > 2 || parts[0] === '' || parts[1] === '') {
    return { error: `${JSON.stringify(s)} is not DOMAIN${opts.needDisk ? '/VDEV' : ' or DOMAIN/VDEV'} (e.g. web1${opts.needDisk ? '' : ' or web1'}/xvda)` };
  }
  const [domain, vdev] = parts as [string, string | undefined];
  if (vdev === undefined) {
    if (opts.needDisk) return { error: `${JSON.stringify(s)} names no disk: write DOMAIN/VDEV (e.g. ${domain}/xvda)` };
    return { domain };
  }
  try {
    const info = parseVdev(vdev);
    return { domain, vdev: vdev.toLowerCase(), devid: info.devid };
  } catch (err) {
    if (err instanceof VdevError) return { error: `${JSON.stringify(s)}: ${err.message}` };
    throw err;
  }
}

/** "web1" / "web1/xvda". */
export function addressText(a: DiskAddress): string {
  return a.vdev !== undefined ? `${a.domain}/${a.vdev}` : a.domain;
}

/** Policy.replace's key for a desired disk. */
export function replaceKey(domain: string, devid: number): string {
  return `${domain}/${devid}`;
}

/** The domain and devid an action is for (none: free-loop, or a backend of a domain without a name). */
function actionAddress(a: Action): { domain: string; devid: number } | undefined {
  switch (a.kind) {
    case 'attach':
    case 'serve':
    case 'replace':
      return { domain: a.domain, devid: a.disk.devid };
    case 'detach':
    case 'hold':
    case 'offline':
    case 'reprobe':
      return a.domain !== undefined ? { domain: a.domain, devid: a.backend.devid } : undefined;
    case 'free-loop':
      return undefined;
  }
}

function hits(t: DiskAddress, at: { domain: string; devid: number }): boolean {
  return t.domain === at.domain && (t.devid === undefined || t.devid === at.devid);
}

/**
 * The actions of `actions` for one of `targets` (in their order), plus the offline actions whatever their
 * domain when any other stays; `left` counts what was left out. No targets: all of them.
 */
export function targetActions(actions: Action[], targets: readonly DiskAddress[]): { actions: Action[]; left: number } {
  if (targets.length === 0) return { actions, left: 0 };
  const aimed = actions.map((a) => {
    const at = actionAddress(a);
    return at !== undefined && targets.some((t) => hits(t, at));
  });
  const anyOther = actions.some((a, i) => aimed[i] && a.kind !== 'offline');
  const kept = actions.filter((a, i) => aimed[i] || (anyOther && a.kind === 'offline'));
  return { actions: kept, left: actions.length - kept.length };
}

/**
 * What is wrong with these addresses for this host, or undefined: a -target must name a domain of the
 * config or one running on the host (whose backends of ours prune may detach); a -replace a disk of the
 * config.
 */
export function checkAddresses(desired: DesiredState, observed: ObservedState, targets: readonly DiskAddress[], replace: readonly DiskAddress[]): string | undefined {
  const known = new Set([...desired.domains.map((d) => d.name), ...observed.domains.flatMap((d) => (d.name !== undefined ? [d.name] : []))]);
  for (const t of targets) {
    if (!known.has(t.domain)) return `-target ${addressText(t)}: no domain ${t.domain} in the config or on the host`;
  }
  for (const r of replace) {
    const dom = desired.domains.find((d) => d.name === r.domain);
    if (!dom) return `-replace ${addressText(r)}: no domain ${r.domain} in the config`;
    if (!dom.disks.some((d) => d.devid === r.devid)) return `-replace ${addressText(r)}: domain ${r.domain} has no disk ${r.vdev} in the config`;
  }
  return undefined;
}

/** A -target or -replace that names nothing of this host (checkAddresses' sentence). */
export class AddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddressError';
  }
}
