// The executor: carries out a Plan's actions in order, and reports every step through an event callback
// (CLI, daemon and TUI show progress from it). Each step is one xenstore transaction, except that a run of
// consecutive attaches and serves (up to BATCH_MAX: the disks of a domain starting, a hook burst) shares
// one: one commit for the lot, each disk still all or nothing, a disk its checks refuse left out without
// failing the others. Every attach, serve and replace goes through one path, attachBatch: a lone disk,
// a replace (after its detach) and stopOnError are groups committed one disk at a time.
//
// Crash safety (kill -9 at any point, then run again):
// - a loop device is created with autoclear and held by our fd: if we die before the step's transaction
//   commits, the device has no other opener and frees itself (or the keeper, which adopted it as
//   "pending", drops it after its grace period when the backend never appeared);
// - frontend, backend and libxl's dirs are written in ONE transaction: all or nothing;
// - the fd is handed to its long-term holder (keeper or daemon) BEFORE the commit, so a committed backend
//   always has a holder for its device;
// - detach removes the three dirs in one transaction; the holder notices and closes its fd.
import { existsSync } from 'node:fs';
import type { Policy } from '../model/desired.js';
import { XenbusState, type Inode, type LoopObs } from '../model/observed.js';
import { letGoVerdict, type LetGo } from '../plan/safety.js';
import { letGo } from '../plan/letgo.js';
import { modeWords } from '../plan/identity.js';
import type { Action, BackendRef, Plan } from '../model/plan.js';
import type { XsClient, XsOps, XsTransaction } from '../xenstore/api.js';
import type { DeviceProvider, ProvidedDevice } from '../hold/devices.js';
import type { FdHolder } from '../hold/holder.js';
import { attachLayout, type AttachLayout, frontendNodes, frontendPerms, servedNodes, vbdPaths, type VbdPaths } from '../xenstore/layout.js';
import {
  DISKSEQ_NODE,
  formatPhysicalDevice,
  INODE_NODE,
  MARKER_NODE,
  MARKER_VALUE,
  parseInode,
  PHYSICAL_DEVICE_NODE,
  readPhysicalDevice,
  SERVED_DEVICE_NODES,
} from '../xen/vbd.js';
import { waitFor } from './watch.js';
import { defaultXenBackendSysfs } from '../host/env.js';

export type StepEvent =
  | { type: 'step-start'; index: number; total: number; action: Action; summary: string }
  | { type: 'step-progress'; index: number; message: string }
  | { type: 'step-done'; index: number; action: Action; summary: string; ms: number; detail?: string }
  | { type: 'step-failed'; index: number; action: Action; summary: string; ms: number; error: string };

export interface StepResult {
  action: Action;
  summary: string;
  ok: boolean;
  ms: number;
  detail?: string;
  error?: string;
  /** The step failed with a StepError that retrying alone cannot fix. */
  terminal?: boolean;
}

export interface ExecuteResult {
  ok: boolean;
  steps: StepResult[];
}

export interface ExecuteContext {
  xs: XsClient;
  devices: DeviceProvider;
  policy: Policy;
  holder: FdHolder;
  /** Written as the backend's `script` so that `xl block-detach` runs our hook's `remove`. */
  hookScript?: string;
  onEvent?: (e: StepEvent) => void;
  /** Stop at the first failed step (default false: independent disks go on). */
  stopOnError?: boolean;
  /** Where blkback's devices appear (default: src/observe's). */
  xenBackendSysfs?: string;
}

/** How long a reprobe waits for blkback to let go of a backend whose frontend is gone. */
const REPROBE_WAIT_MS = 5_000;

/** Polls `f` until true or `ms` pass; true if it became true. */
async function until(f: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; !f(); ) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

export class StepError extends Error {
  /**
   * Retrying cannot help until something else changes (a backend that is not ours, a refusal to lose
   * data): the daemon does not retry it by itself, only when the config changes or an operator asks.
   */
  readonly terminal: boolean;
  constructor(message: string, opts: { terminal?: boolean } = {}) {
    super(message);
    this.name = 'StepError';
    this.terminal = opts.terminal === true;
  }
}

export function summarize(a: Action): string {
  const mode = (m: string) => (m === 'ro' ? 'ro' : 'rw');
  switch (a.kind) {
    case 'attach':
      return `attach ${a.domain} ${a.disk.vdev} <- ${a.disk.source} (${mode(a.disk.mode)}${a.reuseLoop ? `, shares /dev/${a.reuseLoop.name}` : ''})`;
    case 'serve':
      return `serve ${a.domain} ${a.disk.vdev} <- ${a.disk.source} (${mode(a.disk.mode)}) for ${a.backend.path}`;
    case 'detach':
      return `detach ${a.domain ?? `domain ${a.backend.frontendDomid}`} devid ${a.backend.devid} (${a.reason})`;
    case 'replace':
      return `replace ${a.domain} ${a.disk.vdev} <- ${a.disk.source} (${a.reason})`;
    case 'free-loop':
      return `free /dev/${a.loop.name} diskseq ${a.loop.diskseq} (${a.reason})`;
    case 'hold':
      return `hold /dev/${a.loop.name} diskseq ${a.loop.diskseq} for ${a.domain ?? `domain ${a.backend.frontendDomid}`} devid ${a.backend.devid}`;
    case 'offline':
      return `${a.close ? 'close' : 'offline'} ${a.domain ?? `domain ${a.backend.frontendDomid}`} devid ${a.backend.devid} (${a.reason})`;
    case 'reprobe':
      return `reprobe ${a.domain} devid ${a.backend.devid} (${a.reason})`;
  }
}

/** A step event as one line of progress (`xvbd apply`, the TUI, the demo): "[n] ...". */
export function stepLine(e: StepEvent, ellipsis = '...'): string {
  const n = `[${e.index + 1}]`;
  switch (e.type) {
    case 'step-start':
      return `${n} ${e.summary} ${ellipsis}`;
    case 'step-progress':
      return `${n}   ${e.message}`;
    case 'step-done':
      return `${n} done in ${e.ms.toFixed(0)} ms${e.detail ? `: ${e.detail}` : ''}`;
    case 'step-failed':
      return `${n} FAILED after ${e.ms.toFixed(0)} ms: ${e.error}`;
  }
}

/** Issues every request at once (the client pipelines them; xenstored handles one connection in order). */
async function all(ops: Promise<unknown>[]): Promise<void> {
  const rs = await Promise.allSettled(ops);
  const bad = rs.find((r) => r.status === 'rejected');
  if (bad) throw (bad as PromiseRejectedResult).reason;
}

function checkDomainName(now: string | undefined, domid: number, name: string): void {
  if (now !== name) {
    throw new StepError(
      now === undefined ? `domain ${name} (${domid}) is gone` : `domid ${domid} is now ${JSON.stringify(now)}, not ${name}`,
    );
  }
}

/** A holder's hold() under way: started at once, awaited before the commit. */
interface PendingHold {
  /** Resolves once the holder has the fd; rejects with its error. */
  done(): Promise<void>;
  /** Waits for the outcome: true if the holder took the fd (so it must be aborted on failure). */
  settled(): Promise<boolean>;
}

/** The libxl paths of an attach (or replace) action's disk. */
function pathsOf(a: { domid: number; disk: { backendDomid: number; devid: number } }): VbdPaths {
  return vbdPaths({ backendDomid: a.disk.backendDomid, frontendDomid: a.domid, devid: a.disk.devid });
}

/** The backend a step of the attach path is about (a serve's is the one the toolstack made): the key its device is provided and held under. */
function backendKey(a: GroupAction): string {
  return a.kind === 'serve' ? a.backend.path : pathsOf(a).backend;
}

/** The progress line for a step's device. */
function deviceLine(dev: ProvidedDevice): string {
  return `${dev.shared ? 'shares' : 'using'} ${dev.devPath} (${dev.major}:${dev.minor}${dev.diskseq ? `, diskseq ${dev.diskseq}` : ''})`;
}

function startHold(ctx: ExecuteContext, dev: ProvidedDevice, backend: string): PendingHold {
  if (dev.kind !== 'loop') return { done: async () => {}, settled: async () => false };
  const p = ctx.holder.hold(dev, backend);
  // settled() below observes a failure: never an unhandled rejection while the transaction runs
  const outcome = p.then(
    () => true,
    () => false,
  );
  return { done: () => p, settled: () => outcome };
}

type AttachAction = Extract<Action, { kind: 'attach' | 'replace' }>;

/** The layout an attach writes for its device. */
function layoutFor(ctx: ExecuteContext, a: AttachAction, dev: ProvidedDevice): AttachLayout {
  return attachLayout({
    backendDomid: a.disk.backendDomid,
    frontendDomid: a.domid,
    devid: a.disk.devid,
    vdev: a.disk.vdev,
    params: a.disk.source,
    mode: a.disk.mode,
    discard: a.disk.options.discard,
    script: ctx.hookScript,
    device: { major: dev.major, minor: dev.minor, devPath: dev.devPath, diskseq: dev.diskseq, sourceInode: dev.sourceInode },
  });
}

/** An attach's requests inside a transaction: the checks' reads, and the writes right behind them. */
interface IssuedAttach {
  reads: Promise<(string | undefined)[]>;
  writes: Promise<PromiseSettledResult<unknown>[]>;
}

/**
 * Issues an attach's reads (the domain check and the existence checks) and, right behind them in the same
 * round trip, its writes: they stay inside the transaction, which is aborted unless the reads allow them
 * (xenstored answers in order: the reads see the state before the writes). Backend and libxl's dir are
 * only written when read as absent: no rm. New nodes inherit their parent's permissions (xenstored's
 * construct_node), so each dir's permissions are set once, on the dir.
 */
function issueAttach(tx: XsTransaction, a: AttachAction, layout: AttachLayout): IssuedAttach {
  const { paths } = layout;
  const reads = Promise.all([
    tx.read(`/local/domain/${a.domid}/name`),
    tx.read(paths.backend),
    tx.read(`${paths.backend}/${MARKER_NODE}`),
    tx.read(`${paths.backend}/${DISKSEQ_NODE}`),
    tx.read(paths.libxl),
  ]);
  const ops = [tx.rm(paths.frontend), ...layoutWrites(tx, layout), tx.rm(paths.error)];
  return { reads, writes: Promise.allSettled(ops) };
}

/** The requests that write an attach's layout (frontend, backend, libxl's dir), issued at once. */
export function layoutWrites(tx: XsOps, layout: AttachLayout): Promise<unknown>[] {
  const { paths } = layout;
  const ops: Promise<unknown>[] = [];
  // frontend first: blkback ignores a backend whose frontend does not exist (same transaction anyway)
  ops.push(tx.mkdir(paths.frontend), tx.setPerms(paths.frontend, layout.frontendPerms));
  for (const [k, v] of Object.entries(layout.frontend)) ops.push(tx.write(`${paths.frontend}/${k}`, v));
  ops.push(tx.mkdir(paths.backend), tx.setPerms(paths.backend, layout.backendPerms));
  for (const [k, v] of Object.entries(layout.backend)) ops.push(tx.write(`${paths.backend}/${k}`, v));
  ops.push(tx.write(`${paths.backend}/hotplug-status`, 'connected'));
  for (const [k, v] of Object.entries(layout.libxl)) ops.push(tx.write(`${paths.libxl}/${k}`, v));
  return ops;
}

/** What the reads allow: write the disk, nothing to do (ours already, same device), or refuse. */
function attachVerdict(a: AttachAction, paths: VbdPaths, dev: ProvidedDevice, reads: (string | undefined)[]): 'write' | 'already' {
  const [domName, be, beMarker, beSeq, lx] = reads;
  checkDomainName(domName, a.domid, a.domain);
  if (be !== undefined) {
    if (beMarker === MARKER_VALUE && dev.diskseq !== undefined && beSeq === dev.diskseq) return 'already';
    throw new StepError(`${paths.backend} already exists${beMarker === MARKER_VALUE ? ' (ours, another device)' : ' (not ours)'}`);
  }
  if (lx !== undefined) throw new StepError(`${paths.libxl} already exists: the toolstack has a device there`);
  return 'write';
}

function firstRejection(rs: PromiseSettledResult<unknown>[]): unknown {
  const bad = rs.find((r) => r.status === 'rejected');
  return bad ? (bad as PromiseRejectedResult).reason : undefined;
}

/** After a step: a committed device goes to its holder (our fd closed if it keeps its own); else let go. */
async function settle(ctx: ExecuteContext, dev: ProvidedDevice, hold: PendingHold, key: string, committed: boolean): Promise<void> {
  if (letGo({ of: 'step-fd', committed, loop: dev.kind === 'loop', holderHasOwnFd: ctx.holder.releaseAfterCommit }).keep) return;
  // the holder took it for a backend that will not name it: the giver's drop
  if (!committed && (await hold.settled())) await ctx.holder.abort(dev, key).catch(() => {});
  ctx.devices.release(key);
}

type ServeArgs = { domain: string; domid: number; disk: Extract<Action, { kind: 'serve' }>['disk']; backend: BackendRef };

/**
 * Issues a serve's reads (the domain, and what the toolstack wrote in the backend) and, right behind them,
 * its writes (the served nodes): the transaction is aborted unless the reads allow them.
 */
function issueServe(tx: XsTransaction, a: ServeArgs, dev: ProvidedDevice): IssuedAttach {
  const b = a.backend.path;
  const reads = Promise.all([
    tx.read(`/local/domain/${a.domid}/name`),
    tx.read(b),
    tx.read(`${b}/frontend-id`),
    tx.read(`${b}/params`),
    tx.read(`${b}/mode`),
    tx.read(`${b}/${PHYSICAL_DEVICE_NODE}`),
    tx.read(`${b}/${MARKER_NODE}`),
    tx.read(`${b}/${DISKSEQ_NODE}`),
  ]);
  const nodes = servedNodes({ major: dev.major, minor: dev.minor, devPath: dev.devPath, diskseq: dev.diskseq, sourceInode: dev.sourceInode });
  const ops: Promise<unknown>[] = Object.entries(nodes).map(([k, v]) => tx.write(`${b}/${k}`, v));
  ops.push(tx.rm(`${b}/hotplug-error`), tx.write(`${b}/hotplug-status`, 'connected'));
  return { reads, writes: Promise.allSettled(ops) };
}

/** What a serve's reads allow: write the served nodes, nothing to do (ours already, same device), or refuse. */
function serveVerdict(a: ServeArgs, dev: ProvidedDevice, reads: (string | undefined)[]): 'write' | 'already' {
  const b = a.backend.path;
  const [domName, exists, fe, params, mode, pdev, marker, seq] = reads;
  checkDomainName(domName, a.domid, a.domain);
  if (exists === undefined) throw new StepError(`${b} is gone`);
  if (fe !== String(a.domid)) throw new StepError(`${b}/frontend-id is ${JSON.stringify(fe)}, not ${a.domid}`);
  if (params !== a.disk.source) throw new StepError(`${b}/params is ${JSON.stringify(params)}, not ${a.disk.source}`);
  const want = a.disk.mode === 'rw' ? 'w' : 'r';
  if (mode !== undefined && mode !== want) throw new StepError(`${b}/mode is ${JSON.stringify(mode)} (${modeWords(mode)}), the disk is ${a.disk.mode}`);
  if (pdev !== undefined) {
    if (marker === MARKER_VALUE && seq !== undefined && seq === dev.diskseq) return 'already';
    throw new StepError(`${b} already has physical-device ${pdev}`);
  }
  return 'write';
}

function frontendDone(state: string | undefined, exists: boolean): boolean {
  if (!exists) return true;
  // 6 = Closed; a frontend that never got past InitWait (1, 2) is not connected: nothing to wait for
  return state === '6' || state === '1' || state === '2';
}

/**
 * Detach: online=0 and state=5 (Closing), wait (bounded, with a watch) for the frontend to close or
 * vanish, then remove backend, frontend and libxl's dirs in one transaction.
 */
export async function detachBackend(
  ctx: ExecuteContext,
  b: BackendRef,
  progress: (m: string) => void = () => {},
  opts: { requireOurs?: boolean } = {},
): Promise<string> {
  // the canonical frontend path, never the one a node names: we only remove what libxl's layout puts there
  const paths: VbdPaths = vbdPaths(b);
  const frontend = paths.frontend;
  const gone = await ctx.xs.transaction(async (tx) => {
    const [exists, marker, seq, pd, inode] = await Promise.all([
      tx.read(b.path),
      tx.read(`${b.path}/${MARKER_NODE}`),
      tx.read(`${b.path}/${DISKSEQ_NODE}`),
      tx.read(`${b.path}/${PHYSICAL_DEVICE_NODE}`),
      tx.read(`${b.path}/${INODE_NODE}`),
    ]);
    if (exists === undefined) return true;
    if (opts.requireOurs !== false && marker !== MARKER_VALUE) throw new StepError(`${b.path} is not ours (no xvbd marker)`, { terminal: true });
    if (b.diskseq !== undefined && seq !== b.diskseq) {
      throw new StepError(`${b.path} now records diskseq ${seq ?? 'none'}, the plan saw ${b.diskseq}`);
    }
    // the planner's data rule once more, on the device as it is now (its file may have been deleted since)
    // (blkback's scanf skips leading blanks: so does this look at the device)
    const num = readPhysicalDevice(pd?.trim());
    const loop = num ? ctx.devices.inspect(num) : undefined;
    if (loop && loop.diskseq === seq) refuseDataLoss(ctx, 'detach', loop, inode !== undefined ? parseInode(inode) : undefined);
    await all([tx.write(`${b.path}/online`, '0'), tx.write(`${b.path}/state`, '5')]);
    return false;
  });
  if (gone) return 'already gone';
  progress('closing: waiting for the frontend');
  const closed = await waitFor(
    ctx.xs,
    frontend,
    async () => {
      const [exists, st] = await Promise.all([ctx.xs.read(frontend), ctx.xs.read(`${frontend}/state`)]);
      return frontendDone(st, exists !== undefined) ? true : undefined;
    },
    ctx.policy.detachTimeoutMs,
  );
  await ctx.xs.transaction(async (tx) => {
    await all([tx.rm(b.path), tx.rm(frontend), tx.rm(paths.libxl), tx.rm(paths.error)]);
  });
  // the holders see the dir gone and let go too (Keeper.check, the daemon's sweep): the same rule, now
  const after = letGo({ of: 'held-fd', live: true, backend: { seen: 'gone' }, ...(b.diskseq !== undefined ? { diskseq: b.diskseq } : {}) });
  if (!after.keep) ctx.devices.release(b.path);
  return closed ? 'removed' : `removed after ${ctx.policy.detachTimeoutMs} ms without the frontend closing`;
}

async function runStep(ctx: ExecuteContext, a: Exclude<Action, GroupAction>, progress: (m: string) => void): Promise<string> {
  switch (a.kind) {
    case 'detach':
      return detachBackend(ctx, a.backend, progress);
    case 'free-loop': {
      const now = ctx.devices.inspect({ name: a.loop.name });
      if (now && now.diskseq === a.loop.diskseq) refuseDataLoss(ctx, 'free-loop', now, undefined);
      return (await ctx.devices.free(a.loop)) === 'freed'
        ? `freed /dev/${a.loop.name}`
        : `/dev/${a.loop.name} diskseq ${a.loop.diskseq} already gone`;
    }
    case 'hold':
      return holdServed(ctx, a);
    case 'offline':
      return offlineBackend(ctx, a);
    case 'reprobe':
      return reprobeBackend(ctx, a);
  }
}

/**
 * Hold: a served device of ours that no durable holder keeps open goes to the holder, proven by marker,
 * diskseq and inode on a fresh fd, and only while the backend still records that device.
 */
async function holdServed(ctx: ExecuteContext, a: Extract<Action, { kind: 'hold' }>): Promise<string> {
  const b = a.backend.path;
  const dev = ctx.devices.take(a.loop, b);
  let held = false;
  try {
    const [seq, pd] = await Promise.all([ctx.xs.read(`${b}/${DISKSEQ_NODE}`), ctx.xs.read(`${b}/${PHYSICAL_DEVICE_NODE}`)]);
    if (seq !== a.loop.diskseq || pd !== formatPhysicalDevice(dev.major, dev.minor)) {
      throw new StepError(`${b} now records ${pd ?? 'no physical-device'} diskseq ${seq ?? 'none'}, not ${dev.devPath} diskseq ${a.loop.diskseq}`);
    }
    await ctx.holder.hold(dev, b);
    held = true;
    return `${dev.devPath} (diskseq ${a.loop.diskseq}) held for ${b}`;
  } finally {
    if (!held || ctx.holder.releaseAfterCommit) ctx.devices.release(b);
  }
}

/**
 * The planner's rule on letting go of data (src/plan/safety.ts), applied once more to a fresh look at the
 * device right before a step lets go of it: between the plan and this step its file may have been deleted.
 */
function refuseDataLoss(ctx: ExecuteContext, what: LetGo, loop: LoopObs, recorded: Inode | undefined): void {
  const v = letGoVerdict(what, loop, recorded, ctx.policy.allowDataLoss === true);
  if (!v.allowed) throw new StepError(`refused: ${v.why}; ${v.save}`, { terminal: true });
}

/**
 * Offline: the device a backend of ours names is gone or its number re-bound. Its physical-device goes
 * (blkback opens nothing there any more), checked in the transaction against what the plan saw; with
 * `close`, the backend is closed too (online=0, Closing) and hotplug-status says why.
 */
async function offlineBackend(ctx: ExecuteContext, a: Extract<Action, { kind: 'offline' }>): Promise<string> {
  const b = a.backend;
  return ctx.xs.transaction(async (tx) => {
    if ((await stillServed(tx, b, a.physicalDevice)) === undefined) return 'already gone';
    // the marker stays: the backend is still ours
    const ops = SERVED_DEVICE_NODES.map((n) => tx.rm(`${b.path}/${n}`));
    if (a.close) {
      ops.push(
        tx.write(`${b.path}/online`, '0'),
        tx.write(`${b.path}/state`, '5'),
        tx.write(`${b.path}/hotplug-error`, `xvbd: taken offline: ${a.reason}`.slice(0, 1024)),
        tx.write(`${b.path}/hotplug-status`, 'error'),
      );
    } else {
      ops.push(tx.rm(`${b.path}/hotplug-status`));
    }
    await all(ops);
    return a.close ? `closed: ${a.reason}` : `physical-device ${a.physicalDevice} removed (${a.reason})`;
  });
}

/**
 * In `tx`: whether backend `b` still is ours and names `physicalDevice` with the diskseq the plan saw, and
 * the values of `more` of its nodes; undefined when the dir is gone. What a step that changes a backend it
 * did not just write checks first.
 */
async function stillServed(tx: XsTransaction, b: BackendRef, physicalDevice: string, more: readonly string[] = []): Promise<Record<string, string | undefined> | undefined> {
  const names = [MARKER_NODE, PHYSICAL_DEVICE_NODE, DISKSEQ_NODE, ...more];
  const [exists, ...values] = await Promise.all([tx.read(b.path), ...names.map((n) => tx.read(`${b.path}/${n}`))]);
  if (exists === undefined) return undefined;
  const now = Object.fromEntries(names.map((n, i) => [n, values[i]]));
  if (now[MARKER_NODE] !== MARKER_VALUE) throw new StepError(`${b.path} is not ours (no xvbd marker)`, { terminal: true });
  const pd = now[PHYSICAL_DEVICE_NODE];
  const seq = now[DISKSEQ_NODE];
  if (pd !== physicalDevice || seq !== b.diskseq) {
    throw new StepError(`${b.path} changed since the plan (physical-device ${pd ?? 'none'}, diskseq ${seq ?? 'none'})`);
  }
  return now;
}

/**
 * Reprobe (src/plan/reprobe.ts): the backend's state goes back to 1, so that the kernel registers a new
 * blkback device for the dir. Checked in the transaction against what the plan saw: still ours, online,
 * the same device, and the state the plan read (a blkback registered meanwhile has written its own).
 */
async function reprobeBackend(ctx: ExecuteContext, a: Extract<Action, { kind: 'reprobe' }>): Promise<string> {
  const b = a.backend;
  const sys = `${ctx.xenBackendSysfs ?? defaultXenBackendSysfs()}/vbd-${b.frontendDomid}-${b.devid}`;
  // a frontend gone: blkback unregisters by itself once it has read so (a probe before would be lost)
  if (!(await until(() => !existsSync(sys), REPROBE_WAIT_MS))) {
    throw new StepError(`blkback still has vbd-${b.frontendDomid}-${b.devid} after ${REPROBE_WAIT_MS} ms: not probed again`);
  }
  const paths = vbdPaths(b);
  return ctx.xs.transaction(async (tx) => {
    const now = await stillServed(tx, b, a.physicalDevice, ['online', 'state']);
    if (now === undefined) return 'already gone';
    if (now.online !== '1' || now.state !== String(a.backendState)) {
      throw new StepError(`${b.path} changed since the plan (online ${now.online ?? 'none'}, state ${now.state ?? 'none'})`);
    }
    if (a.frontend) {
      if ((await tx.read(paths.frontend)) !== undefined) throw new StepError(`${paths.frontend} exists again: not written over`);
      const ops = [tx.mkdir(paths.frontend), tx.setPerms(paths.frontend, frontendPerms(b))];
      for (const [k, v] of Object.entries(frontendNodes(b))) ops.push(tx.write(`${paths.frontend}/${k}`, v));
      await all(ops);
    }
    await tx.write(`${b.path}/state`, String(XenbusState.Initialising));
    return `${a.frontend ? `${paths.frontend} written anew, ` : ''}state ${a.backendState} -> 1: blkback probes ${b.path} again`;
  });
}

/** At most this many consecutive attaches or serves share one transaction (C xenstored limits a transaction's nodes). */
export const BATCH_MAX = 16;

/** The steps that make a disk's device and name it in xenstore: all of them go through attachBatch. */
type GroupAction = Extract<Action, { kind: 'attach' | 'serve' | 'replace' }>;

/** One disk of an attach group: what it was given, and how it ended. */
interface BatchItem {
  action: GroupAction;
  /** The backend's path: the key its device is provided and held under. */
  key: string;
  dev?: ProvidedDevice;
  hold?: PendingHold;
  layout?: AttachLayout;
  report: StepReport;
  outcome?: { ok: true; detail: string } | { ok: false; error: string };
  ms: number;
  /** When its step started (a replace's, before its detach). */
  t0?: number;
}

/** Aborts a batch's transaction: these items cannot be written (or need not be); the rest go again. */
class BatchExclude extends Error {
  constructor(readonly decided: Map<BatchItem, NonNullable<BatchItem['outcome']>>) {
    super('batch: some disks left out');
  }
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** A step's events: its progress is kept until it starts (a device made ahead reports when its step runs). */
interface StepReport {
  start(): void;
  progress(message: string): void;
  end(r: StepResult): void;
}

function stepReport(index: number, total: number, action: Action, summary: string, emit: (e: StepEvent) => void, steps: StepResult[]): StepReport {
  let started = false;
  const kept: string[] = [];
  return {
    start() {
      if (started) return;
      started = true;
      emit({ type: 'step-start', index, total, action, summary });
      for (const message of kept.splice(0)) emit({ type: 'step-progress', index, message });
    },
    progress(message) {
      if (started) emit({ type: 'step-progress', index, message });
      else kept.push(message);
    },
    end(r) {
      steps.push(r);
      if (r.ok) emit({ type: 'step-done', index, action, summary, ms: r.ms, detail: r.detail! });
      else emit({ type: 'step-failed', index, action, summary, ms: r.ms, error: r.error! });
    },
  };
}

/** The device of one item, its hold started as soon as it exists. */
async function provideItem(ctx: ExecuteContext, it: BatchItem, fail: (error: string) => void): Promise<void> {
  try {
    const dev = await ctx.devices.provide(it.action.disk, it.key, { allowedRoots: ctx.policy.allowedRoots, reuse: it.action.reuseLoop });
    it.dev = dev;
    it.report.progress(deviceLine(dev));
    // The holder adopts the fd while the transaction reads and writes (one round trip hidden behind the
    // other); the transaction only commits once the fd is held (docs/fd-holding.md).
    it.hold = startHold(ctx, dev, it.key);
    if (it.action.kind !== 'serve') it.layout = layoutFor(ctx, it.action, dev);
  } catch (err) {
    fail(errorText(err));
  }
}

/**
 * One transaction for the live items of `group`: each one's checks and writes go out as soon as its device
 * is ready, every hold is awaited before the commit. One that its checks (or its holder) refuse is left
 * out and the transaction runs again without it. Returns the error of a transaction that failed as a whole.
 */
async function commitGroup(ctx: ExecuteContext, group: BatchItem[], ready: Map<BatchItem, Promise<void>>, finish: (it: BatchItem, o: NonNullable<BatchItem['outcome']>) => void): Promise<unknown> {
  let live = group.filter((it) => !it.outcome);
  while (live.length > 0) {
    let issued: { it: BatchItem; ops: IssuedAttach }[] = [];
    try {
      await ctx.xs.transaction(async (tx) => {
        issued = [];
        for (const it of live) {
          await ready.get(it);
          if (it.outcome) continue; // its device could not be made
          issued.push({ it, ops: it.action.kind === 'serve' ? issueServe(tx, it.action, it.dev!) : issueAttach(tx, it.action, it.layout!) });
          // let these requests leave now (the client sends a turn's requests together)
          if (it !== live[live.length - 1]) await new Promise((r) => setImmediate(r));
        }
        const decided: BatchExclude['decided'] = new Map();
        for (const { it, ops } of issued) {
          try {
            const a = it.action;
            const v = a.kind === 'serve' ? serveVerdict(a, it.dev!, await ops.reads) : attachVerdict(a, it.layout!.paths, it.dev!, await ops.reads);
            await it.hold!.done(); // never commit (nor call ours) a backend naming a device nobody holds
            if (v === 'already') decided.set(it, { ok: true, detail: `already ${a.kind === 'serve' ? 'served' : 'attached'} (${it.dev!.devPath})` });
          } catch (err) {
            decided.set(it, { ok: false, error: errorText(err) });
          }
        }
        await Promise.all(issued.map((x) => x.ops.writes));
        if (decided.size > 0) throw new BatchExclude(decided);
        for (const { ops } of issued) {
          const bad = firstRejection(await ops.writes);
          if (bad) throw bad;
        }
      });
      const also = issued.length > 1 ? ` (one transaction with ${issued.length - 1} more)` : '';
      for (const { it } of issued) finish(it, { ok: true, detail: `${it.key} -> ${it.dev!.devPath}${also}` });
      return undefined;
    } catch (err) {
      if (!(err instanceof BatchExclude)) return err;
      for (const [it, o] of err.decided) finish(it, o);
    }
    live = live.filter((it) => !it.outcome);
  }
  return undefined;
}

/** After an item: a committed device goes to its holder; one not committed (or never used) is let go. */
async function settleItem(ctx: ExecuteContext, it: BatchItem): Promise<void> {
  if (it.dev && it.hold) await settle(ctx, it.dev, it.hold, it.key, it.outcome?.ok === true);
  else if (it.dev) ctx.devices.release(it.key);
}

/**
 * Attaches or serves the disks of a group (a run of consecutive attaches and serves, or one replace): the
 * one attach path. Their devices are made one after the other, each handed to the holder as soon as it
 * exists; every fd is held before the commit that names it, each disk all or nothing.
 * - together (several disks, no stopOnError): ONE transaction and one commit for the lot, a disk's
 *   requests issued as soon as its device is ready, so xenstored works on them while the next device is
 *   made. No disk can fail another: one its checks refuse is left out; if the transaction as a whole
 *   fails, each disk is tried alone. The events come once the lot is done, in plan order.
 * - one by one (a group of one, or stopOnError): a transaction per disk, in plan order, each disk's step
 *   reported as it runs; the next disk's device is made while this one's transaction runs (never further
 *   ahead), and with stopOnError nothing after the first failure runs (what was made ahead is let go).
 * Returns whether every disk of the group succeeded.
 */
async function attachBatch(ctx: ExecuteContext, items: BatchItem[]): Promise<boolean> {
  const together = items.length > 1 && !ctx.stopOnError;
  const t0 = performance.now();
  const finish = (it: BatchItem, outcome: NonNullable<BatchItem['outcome']>) => {
    it.outcome = outcome;
    it.ms = performance.now() - (it.t0 ?? t0);
  };
  let stopped = false;
  // one by one: disk k's device waits until disk k-2 is done (one device made ahead, as a pipeline)
  const done = items.map(() => gate());
  const ready = new Map<BatchItem, Promise<void>>();
  let chain: Promise<void> = Promise.resolve();
  items.forEach((it, k) => {
    const after = together || k < 2 ? undefined : done[k - 2]!.promise;
    chain = chain.then(async () => {
      if (after) await after;
      if (!stopped && !it.outcome) await provideItem(ctx, it, (error) => finish(it, { ok: false, error }));
    });
    ready.set(it, chain);
  });

  if (together) {
    const err = await commitGroup(ctx, items, ready, finish);
    await chain; // every device made (or failed) before anything is decided about the rest
    if (err !== undefined) {
      const left = items.filter((it) => !it.outcome);
      if (left.length === 1) finish(left[0]!, { ok: false, error: errorText(err) });
      // the transaction as a whole failed (a write refused, a quota on its size): each disk alone
      for (const it of left.length > 1 ? left : []) {
        const e = await commitGroup(ctx, [it], ready, finish);
        if (e !== undefined) finish(it, { ok: false, error: errorText(e) });
      }
    }
    for (const it of items) await settleItem(ctx, it);
    for (const it of items) {
      it.report.start();
      endStep(it);
    }
  } else {
    for (const [k, it] of items.entries()) {
      if (stopped) break;
      it.report.start();
      const start = (it.t0 ??= performance.now());
      await ready.get(it);
      const err = it.outcome ? undefined : await commitGroup(ctx, [it], ready, finish);
      if (err !== undefined) finish(it, { ok: false, error: errorText(err) });
      await settleItem(ctx, it);
      it.ms = performance.now() - start;
      endStep(it);
      if (!it.outcome!.ok && ctx.stopOnError) stopped = true;
      done[k]!.resolve();
    }
    for (const d of done) d.resolve();
    await chain;
    // made ahead for a disk whose step will not run
    for (const it of items) if (!it.outcome) await settleItem(ctx, it);
  }
  return items.every((it) => it.outcome?.ok === true);
}

/** A gate opened once: what one step waits for before another's device is made. */
function gate(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function endStep(it: BatchItem): void {
  const o = it.outcome ?? { ok: false as const, error: 'not attempted' };
  const summary = summarize(it.action);
  if (o.ok) it.report.end({ action: it.action, summary, ok: true, ms: it.ms, detail: o.detail });
  else it.report.end({ action: it.action, summary, ok: false, ms: it.ms, error: o.error });
}

/**
 * Where the group that starts at plan index `i` ends (exclusive): a replace alone; consecutive attaches and
 * serves on distinct backends, at most BATCH_MAX; i itself when the action there is no attach, serve or replace.
 */
function groupEnd(acts: Action[], i: number): number {
  const first = acts[i]!;
  if (first.kind === 'replace') return i + 1;
  const keys = new Set<string>();
  let j = i;
  while (j < acts.length && j - i < BATCH_MAX) {
    const a = acts[j]!;
    if (a.kind !== 'attach' && a.kind !== 'serve') break;
    let key: string;
    try {
      key = backendKey(a);
    } catch {
      break; // a bad id: its own group reports it
    }
    if (keys.has(key)) break;
    keys.add(key);
    j++;
  }
  return first.kind === 'attach' || first.kind === 'serve' ? Math.max(j, i + 1) : i;
}

/** A replace: its backend detached first (the step reports as it runs), then its disk attached as a group of one. */
async function replaceDisk(ctx: ExecuteContext, it: BatchItem): Promise<boolean> {
  it.report.start();
  const t0 = (it.t0 = performance.now());
  try {
    const d = await detachBackend(ctx, (it.action as Extract<Action, { kind: 'replace' }>).backend, (m) => it.report.progress(m));
    it.report.progress(`detached (${d})`);
  } catch (err) {
    it.report.end({ action: it.action, summary: summarize(it.action), ok: false, ms: performance.now() - t0, error: errorText(err) });
    return false;
  }
  return attachBatch(ctx, [it]);
}

/** Runs the group of plan.actions[i, end): its items, their events, their results in `steps`. */
async function runGroup(ctx: ExecuteContext, plan: Plan, i: number, end: number, emit: (e: StepEvent) => void, steps: StepResult[]): Promise<boolean> {
  const total = plan.actions.length;
  const items: BatchItem[] = [];
  for (let k = i; k < end; k++) {
    const action = plan.actions[k] as GroupAction;
    const report = stepReport(k, total, action, summarize(action), emit, steps);
    let key: string;
    try {
      key = backendKey(action);
    } catch (err) {
      // a bad id (groupEnd put it alone): the step fails as it starts
      report.start();
      report.end({ action, summary: summarize(action), ok: false, ms: 0, error: errorText(err) });
      return false;
    }
    items.push({ action, key, report, ms: 0 });
  }
  if (items.length === 1 && items[0]!.action.kind === 'replace') return replaceDisk(ctx, items[0]!);
  return attachBatch(ctx, items);
}

export async function execute(plan: Plan, ctx: ExecuteContext): Promise<ExecuteResult> {
  const emit = ctx.onEvent ?? (() => {});
  const steps: StepResult[] = [];
  const total = plan.actions.length;
  for (let i = 0; i < total; ) {
    const end = groupEnd(plan.actions, i);
    if (end > i) {
      const ok = await runGroup(ctx, plan, i, end, emit, steps);
      if (!ok && ctx.stopOnError) break;
      i = end;
      continue;
    }
    const action = plan.actions[i]! as Exclude<Action, GroupAction>;
    const summary = summarize(action);
    const index = i;
    emit({ type: 'step-start', index, total, action, summary });
    const t0 = performance.now();
    try {
      const detail = await runStep(ctx, action, (message) => emit({ type: 'step-progress', index, message }));
      const ms = performance.now() - t0;
      steps.push({ action, summary, ok: true, ms, detail });
      emit({ type: 'step-done', index, action, summary, ms, detail });
    } catch (err) {
      const ms = performance.now() - t0;
      const error = errorText(err);
      steps.push({ action, summary, ok: false, ms, error, ...(err instanceof StepError && err.terminal ? { terminal: true } : {}) });
      emit({ type: 'step-failed', index, action, summary, ms, error });
      if (ctx.stopOnError) break;
    }
    i++;
  }
  return { ok: steps.length === total && steps.every((s) => s.ok), steps };
}
