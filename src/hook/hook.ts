// The libxl hook's pure parts: what libxl hands the script (argv[1] = add or remove, env
// XENBUS_PATH=backend/vbd/<frontend domid>/<devid>, relative to the backend domain), checked strictly as
// Qubes' not-script does, and what to do about the backend, decided from plan() so that the hook and
// `xvbd plan` never disagree (docs/hook.md). native/xvbd-hook.c parses argv and XENBUS_PATH the same way.
import type { DesiredState, DiskSpec } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Action, Finding, Plan } from '../model/plan.js';
import type { XsClient } from '../xenstore/api.js';
import { backendPath, isDomid, MAX_DEVID, MAX_DOMID } from '../xen/vbd.js';

export class HookError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HookError';
  }
}

export interface HookTarget {
  backendDomid: number;
  frontendDomid: number;
  devid: number;
  /** Absolute backend dir. */
  path: string;
}

function strictDecimal(s: string, what: string, max: number): number {
  if (!/^(0|[1-9][0-9]*)$/.test(s) || s.length > 10) throw new HookError(`${what} ${JSON.stringify(s)} is not a decimal number`);
  const n = Number(s);
  if (n > max) throw new HookError(`${what} ${n} is too large (limit ${max})`);
  return n;
}

/**
 * Parses the hook's arguments and XENBUS_PATH. argv[1] may repeat XENBUS_PATH=... (as some toolstacks
 * pass it); both must then agree.
 */
export function parseHookInvocation(
  argv: string[],
  env: NodeJS.ProcessEnv,
  backendDomid = 0,
): { op: 'add' | 'remove'; target: HookTarget } {
  if (argv.length < 1 || argv.length > 2) {
    throw new HookError(`usage: xvbd hook add|remove [XENBUS_PATH=backend/vbd/DOMID/DEVID] (got ${argv.length} arguments)`);
  }
  const op = argv[0];
  if (op !== 'add' && op !== 'remove') throw new HookError(`bad command ${JSON.stringify(op)} (expected "add" or "remove")`);
  let xs = env.XENBUS_PATH;
  if (argv.length === 2) {
    const a = argv[1]!;
    if (!a.startsWith('XENBUS_PATH=')) throw new HookError('the second argument must be XENBUS_PATH=backend/vbd/DOMID/DEVID');
    const v = a.slice('XENBUS_PATH='.length);
    if (xs !== undefined && xs !== v) throw new HookError('XENBUS_PATH given in the environment and as an argument, with different values');
    xs = v;
  }
  if (xs === undefined || xs === '') throw new HookError('XENBUS_PATH is not set');
  return { op, target: parseXenbusPath(xs, backendDomid) };
}

/** `backend/vbd/<domid>/<devid>`, nothing else: no leading slash, no extra component, no leading zeros. */
export function parseXenbusPath(p: string, backendDomid = 0): HookTarget {
  const prefix = 'backend/vbd/';
  if (!p.startsWith(prefix)) throw new HookError(`bad XENBUS_PATH ${JSON.stringify(p)}: must begin with ${prefix}`);
  const rest = p.slice(prefix.length).split('/');
  if (rest.length !== 2) throw new HookError(`bad XENBUS_PATH ${JSON.stringify(p)}: expected backend/vbd/DOMID/DEVID`);
  const frontendDomid = strictDecimal(rest[0]!, 'frontend domain ID', MAX_DOMID);
  const devid = strictDecimal(rest[1]!, 'device ID', MAX_DEVID);
  if (!isDomid(backendDomid)) throw new HookError(`bad backend domid ${backendDomid}`);
  return { backendDomid, frontendDomid, devid, path: backendPath({ backendDomid, frontendDomid, devid }) };
}

/**
 * What the hook does about one backend, decided from a plan (plan() of the desired state and an
 * observation that covers this backend): the same decision `xvbd plan` makes about it.
 * - `execute`: the plan's serve (or hold) step for this backend; run it, then the device is held;
 * - `served`: ours already, synced: nothing to do (libxl may run `add` twice);
 * - `refuse`: not ours to serve, with the reason libxl gets in hotplug-error.
 */
export type HookDecision =
  | { kind: 'execute'; action: Extract<Action, { kind: 'serve' | 'hold' }> }
  | { kind: 'served'; physicalDevice: string }
  | { kind: 'refuse'; reason: string };

const SEVERITY_RANK: Record<Finding['severity'], number> = { error: 0, warning: 1, info: 2 };

/** The desired disk (by the domain's observed name and the path's devid) this backend would be, if any. */
export function desiredDiskFor(desired: DesiredState, observed: ObservedState, t: HookTarget): { domain?: string; disk?: DiskSpec } {
  const name = observed.domains.find((d) => d.domid === t.frontendDomid)?.name;
  if (name === undefined) return {};
  const disk = desired.domains.find((d) => d.name === name)?.disks.find((k) => k.devid === t.devid);
  return disk ? { domain: name, disk } : { domain: name };
}

export function hookDecision(desired: DesiredState, observed: ObservedState, p: Plan, t: HookTarget): HookDecision {
  const mine = p.actions.filter((a) => 'backend' in a && a.backend.path === t.path);
  const step = mine.find((a): a is Extract<Action, { kind: 'serve' | 'hold' }> => a.kind === 'serve' || a.kind === 'hold');
  if (step) return { kind: 'execute', action: step };
  const b = observed.backends.find((x) => x.path === t.path);
  if (!b) return { kind: 'refuse', reason: `${t.path} does not exist` };
  const domid = t.frontendDomid;
  const running = observed.domains.find((d) => d.domid === domid);
  if (!running) return { kind: 'refuse', reason: `domain ${domid} is not running` };
  if (running.name === undefined) return { kind: 'refuse', reason: `the name of domain ${domid} is missing or unreadable` };
  const { domain, disk } = desiredDiskFor(desired, observed, t);
  const row = disk && p.disks.find((r) => r.domain === domain && r.devid === disk.devid);
  if (mine.length === 0 && b.ours && b.physicalDevice !== undefined && row?.sync === 'synced' && row.backend?.path === t.path) {
    return { kind: 'served', physicalDevice: b.physicalDevice };
  }
  // The plan's own words: the worst finding about this backend or this disk, else its status row.
  const about = p.findings
    .filter(
      (f) =>
        f.backend?.path === t.path ||
        (disk !== undefined && f.domain === domain && f.vdev === disk.vdev) ||
        (disk !== undefined && f.kind === 'rw-shared' && f.source === disk.source),
    )
    .sort((x, y) => SEVERITY_RANK[x.severity] - SEVERITY_RANK[y.severity]);
  const other = mine[0];
  if (other) return { kind: 'refuse', reason: `the plan for ${t.path} is ${other.kind}, not serve${about[0] ? `: ${about[0].message}` : ''}` };
  if (about[0]) return { kind: 'refuse', reason: about[0].message };
  if (desired.policy.serve === 'attach') return { kind: 'refuse', reason: 'the policy says serve: attach: the hook serves nothing' };
  if (!desired.domains.some((d) => d.name === running.name)) {
    return { kind: 'refuse', reason: `domain ${running.name} (${domid}) is not in the desired state` };
  }
  if (!disk) return { kind: 'refuse', reason: `domain ${running.name} has no disk with devid ${t.devid} in the desired state` };
  const why = row?.healthReason ?? row?.syncReason ?? 'nothing to serve';
  return { kind: 'refuse', reason: `${domain} ${disk.vdev}: not served (${why})` };
}

/** As the block script's `fatal`: hotplug-error with the message, then hotplug-status = error. */
export async function reportHookError(xs: XsClient, t: HookTarget, message: string): Promise<void> {
  await xs.transaction(async (tx) => {
    if ((await tx.read(t.path)) === undefined) return; // never recreate a removed backend
    await tx.write(`${t.path}/hotplug-error`, message.slice(0, 1024));
    await tx.write(`${t.path}/hotplug-status`, 'error');
  });
}
