// The libxl hook: `xvbd hook add|remove`, usable as a disk's `script=` (libxl runs it with argv[1] = add
// or remove and env XENBUS_PATH=backend/vbd/<frontend domid>/<devid>, relative to the backend domain).
// Everything it reads is checked strictly, as Qubes' not-script does: the path, every xenstore value.
import { posix } from 'node:path';
import type { DesiredState, DiskSpec, DomainSpec } from '../model/desired.js';
import type { XsClient } from '../xenstore/api.js';
import { DOMID_FIRST_RESERVED } from './layout.js';

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

const MAX_VALUE = 4096;

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
  const frontendDomid = strictDecimal(rest[0]!, 'frontend domain ID', DOMID_FIRST_RESERVED - 1);
  const devid = strictDecimal(rest[1]!, 'device ID', 0xffffffff);
  if (!Number.isInteger(backendDomid) || backendDomid < 0 || backendDomid >= DOMID_FIRST_RESERVED) {
    throw new HookError(`bad backend domid ${backendDomid}`);
  }
  return { backendDomid, frontendDomid, devid, path: `/local/domain/${backendDomid}/backend/vbd/${frontendDomid}/${devid}` };
}

/** What the toolstack wrote in the backend dir, each value checked. */
export interface BackendFacts {
  params: string;
  mode: 'r' | 'w';
  frontendId: number;
  /** `dev` (the vdev libxl wrote), if any. */
  dev?: string;
  type?: string;
  physicalDevice?: string;
  domainName: string;
}

function checkValue(path: string, v: string | undefined, required: boolean): string | undefined {
  if (v === undefined) {
    if (required) throw new HookError(`${path} is missing`);
    return undefined;
  }
  if (v.length > MAX_VALUE) throw new HookError(`${path} is too long`);
  if (v.includes('\0')) throw new HookError(`${path} contains a NUL byte`);
  return v;
}

export async function readBackendFacts(xs: XsClient, t: HookTarget): Promise<BackendFacts> {
  const b = t.path;
  const [exists, params, mode, fe, dev, type, pdev, name] = await Promise.all([
    xs.read(b),
    xs.read(`${b}/params`),
    xs.read(`${b}/mode`),
    xs.read(`${b}/frontend-id`),
    xs.read(`${b}/dev`),
    xs.read(`${b}/type`),
    xs.read(`${b}/physical-device`),
    xs.read(`/local/domain/${t.frontendDomid}/name`),
  ]);
  if (exists === undefined) throw new HookError(`${b} does not exist`);
  const p = checkValue(`${b}/params`, params, true)!;
  if (!p.startsWith('/')) throw new HookError(`${b}/params is not an absolute path`);
  if (posix.normalize(p) !== p || (p.length > 1 && p.endsWith('/'))) throw new HookError(`${b}/params is not a normalised path`);
  const m = checkValue(`${b}/mode`, mode, true)!;
  if (m !== 'r' && m !== 'w') throw new HookError(`bad data in ${b}/mode: expected "r" or "w"`);
  const f = checkValue(`${b}/frontend-id`, fe, true)!;
  const frontendId = strictDecimal(f, `${b}/frontend-id`, DOMID_FIRST_RESERVED - 1);
  if (frontendId !== t.frontendDomid) throw new HookError(`${b}/frontend-id is ${frontendId}, the path says ${t.frontendDomid}`);
  const d = checkValue(`${b}/dev`, dev, false);
  if (d !== undefined && !/^[a-z0-9]{1,16}$/.test(d)) throw new HookError(`bad data in ${b}/dev`);
  const n = checkValue(`/local/domain/${t.frontendDomid}/name`, name, true)!;
  if (!/^[\x21-\x7e]{1,64}$/.test(n)) throw new HookError(`the name of domain ${t.frontendDomid} is not printable`);
  return {
    params: p,
    mode: m,
    frontendId,
    dev: d,
    type: checkValue(`${b}/type`, type, false),
    physicalDevice: checkValue(`${b}/physical-device`, pdev, false),
    domainName: n,
  };
}

/** Finds the desired disk this backend is for, or says precisely why it is not one of ours to serve. */
export function matchDesired(
  desired: DesiredState,
  t: HookTarget,
  f: BackendFacts,
  vdevToDevid: (v: string) => number,
): { domain: DomainSpec; disk: DiskSpec } {
  if (desired.policy.serve === 'attach') throw new HookError('the policy says serve: attach: the hook serves nothing');
  const domain = desired.domains.find((d) => d.name === f.domainName);
  if (!domain) throw new HookError(`domain ${f.domainName} (${t.frontendDomid}) is not in the desired state`);
  const disk = domain.disks.find((d) => d.devid === t.devid);
  if (!disk) throw new HookError(`domain ${f.domainName} has no disk with devid ${t.devid} in the desired state`);
  if (f.dev !== undefined) {
    let devid: number | undefined;
    try {
      devid = vdevToDevid(f.dev);
    } catch {
      devid = undefined;
    }
    if (devid !== t.devid) throw new HookError(`the backend's dev ${f.dev} is not devid ${t.devid}`);
  }
  if (disk.backendDomid !== t.backendDomid) {
    throw new HookError(`${domain.name} ${disk.vdev} is desired from backend domain ${disk.backendDomid}, not ${t.backendDomid}`);
  }
  if (f.params !== disk.source) throw new HookError(`params ${f.params} is not the desired source ${disk.source} of ${domain.name} ${disk.vdev}`);
  const want = disk.mode === 'rw' ? 'w' : 'r';
  if (f.mode !== want) throw new HookError(`mode ${f.mode} differs from the desired ${disk.mode} of ${domain.name} ${disk.vdev}`);
  return { domain, disk };
}

/** As the block script's `fatal`: hotplug-error with the message, then hotplug-status = error. */
export async function reportHookError(xs: XsClient, t: HookTarget, message: string): Promise<void> {
  await xs.transaction(async (tx) => {
    if ((await tx.read(t.path)) === undefined) return; // never recreate a removed backend
    await tx.write(`${t.path}/hotplug-error`, message.slice(0, 1024));
    await tx.write(`${t.path}/hotplug-status`, 'error');
  });
}
