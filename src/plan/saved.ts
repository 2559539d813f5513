// Saved plans (`xvbd plan -out FILE`, `xvbd apply FILE`, `xvbd show FILE`): the format and its checks.
// Pure apart from hashing: reading and writing the file is the CLI's.
//
// A saved plan still holds when, at apply time,
//   - the desired state is the same (desiredDigest: the config as loaded, policy included),
//   - what the actions touch is as it was (observedDigest, below), and
//   - a fresh plan with the same flags has exactly the saved actions.
// observedDigest covers, for the saved actions only: the domains they name (domid and name); the
// backends they name and any backend at a (frontend, devid) they attach to (identity fields: path,
// domids, devid, params, mode, type, physical-device, diskseq, xvbd-inode, ours, script; not the
// xenbus states, which move on their own); the loop devices they name or that those backends'
// physical-device names (name, number, diskseq, backing inode and path, deleted, read-only, offset,
// size limit, direct I/O, block size, ours; not who holds them); and the sources of the disks they
// attach (exists, kind, inode, rdev, mounted). Anything else on the host may change meanwhile.
import { createHash } from 'node:crypto';
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Action, DiskStatus, Finding } from '../model/plan.js';
import { readPhysicalDevice } from '../xen/vbd.js';

export const SAVED_PLAN_FORMAT = 'xvbd-plan';
export const SAVED_PLAN_VERSION = 1;

/** The flags the plan was made with: apply FILE plans again with these. */
export interface SavedFlags {
  prune: boolean;
  allowDataLoss: boolean;
  /** -target addresses ("web1", "web1/xvda"). */
  targets: string[];
  /** -replace addresses ("web1/xvda"). */
  replace: string[];
}

export interface SavedPlan {
  format: typeof SAVED_PLAN_FORMAT;
  version: typeof SAVED_PLAN_VERSION;
  createdAt: string;
  /** The config directory, absolute. */
  configDir: string;
  /** The host whose desired state the plan is for (--host, else this machine's). */
  host: string;
  /** The machine it was observed on (`uname -n` / $XVBD_HOST): apply FILE runs only there. */
  observedOn: string;
  flags: SavedFlags;
  desiredDigest: string;
  observedDigest: string;
  actions: Action[];
  /** For `xvbd show`: the findings and disks of the plan when it was made. */
  findings: Finding[];
  disks: DiskStatus[];
}

/** JSON with sorted keys and Sets as sorted arrays: the same value, the same text. */
function canonical(v: unknown): unknown {
  if (v instanceof Set) return [...v].map(String).sort();
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) o[k] = canonical(x);
    }
    return o;
  }
  return v;
}

export function digest(v: unknown): string {
  return 'sha256:' + createHash('sha256').update(JSON.stringify(canonical(v))).digest('hex');
}

export function desiredDigest(d: DesiredState): string {
  return digest(d);
}

function pick<T extends object>(o: T, keys: readonly (keyof T)[]): Partial<T> {
  const out: Partial<T> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** What of `observed` the actions touch (see the head of this file). */
export function touched(actions: readonly Action[], observed: ObservedState): unknown {
  const domids = new Set<number>();
  const paths = new Set<string>();
  const vbds = new Set<string>();
  const loopNames = new Set<string>();
  const sources = new Set<string>();
  for (const a of actions) {
    if ('domid' in a) domids.add(a.domid);
    if ('backend' in a) {
      paths.add(a.backend.path);
      domids.add(a.backend.frontendDomid);
    }
    if ('disk' in a) {
      vbds.add(`${a.domid}:${a.disk.devid}`);
      sources.add(a.disk.source);
    }
    if ('reuseLoop' in a && a.reuseLoop) loopNames.add(a.reuseLoop.name);
    if ('loop' in a) loopNames.add(a.loop.name);
  }
  const backends = observed.backends.filter((b) => paths.has(b.path) || vbds.has(`${b.frontendDomid}:${b.devid}`));
  const devs = new Set(backends.flatMap((b) => {
    const d = readPhysicalDevice(b.physicalDevice);
    return d ? [`${d.major}:${d.minor}`] : [];
  }));
  const loops = observed.loops.filter((l) => loopNames.has(l.name) || devs.has(`${l.major}:${l.minor}`));
  return {
    domains: observed.domains.filter((d) => domids.has(d.domid)).map((d) => pick(d, ['domid', 'name'])).sort((a, b) => a.domid! - b.domid!),
    backends: backends
      .map((b) => pick(b, ['path', 'backendDomid', 'frontendDomid', 'devid', 'params', 'mode', 'type', 'physicalDevice', 'diskseq', 'sourceInode', 'ours', 'script']))
      .sort((a, b) => (a.path! < b.path! ? -1 : 1)),
    loops: loops
      .map((l) => pick(l, ['name', 'number', 'diskseq', 'backing', 'backingPath', 'backingDeleted', 'readOnly', 'offset', 'sizeLimit', 'directIo', 'blockSize', 'ours']))
      .sort((a, b) => a.number! - b.number!),
    sources: [...sources].sort().map((p) => {
      const s = observed.sources[p];
      return s ? pick(s, ['path', 'exists', 'kind', 'inode', 'rdev', 'mounted']) : { path: p, observed: false };
    }),
  };
}

export function observedDigest(actions: readonly Action[], observed: ObservedState): string {
  return digest(touched(actions, observed));
}

export class SavedPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SavedPlanError';
  }
}

/** Reads a saved plan's text; a file that is not one (or of another version) is a SavedPlanError. */
export function parseSavedPlan(text: string, file: string): SavedPlan {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new SavedPlanError(`${file} is not a saved plan: not JSON (${(err as Error).message})`);
  }
  const o = v as Partial<SavedPlan> | null;
  if (o === null || typeof o !== 'object' || o.format !== SAVED_PLAN_FORMAT) throw new SavedPlanError(`${file} is not a saved plan (made by \`xvbd plan -out FILE\`)`);
  if (o.version !== SAVED_PLAN_VERSION) throw new SavedPlanError(`${file} is a saved plan of version ${JSON.stringify(o.version)}; this xvbd reads version ${SAVED_PLAN_VERSION}: plan again`);
  const f = o.flags as Partial<SavedFlags> | undefined;
  const strings = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (
    typeof o.createdAt !== 'string' ||
    typeof o.configDir !== 'string' ||
    typeof o.host !== 'string' ||
    typeof o.observedOn !== 'string' ||
    typeof o.desiredDigest !== 'string' ||
    typeof o.observedDigest !== 'string' ||
    !Array.isArray(o.actions) ||
    !Array.isArray(o.findings) ||
    !Array.isArray(o.disks) ||
    !f ||
    typeof f.prune !== 'boolean' ||
    typeof f.allowDataLoss !== 'boolean' ||
    !strings(f.targets) ||
    !strings(f.replace)
  ) {
    throw new SavedPlanError(`${file} is a damaged saved plan (a field is missing or of the wrong type): plan again`);
  }
  return o as SavedPlan;
}
