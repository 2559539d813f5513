// The TUI's ViewModel: everything the screen shows, computed by one pure function from
// (Plan, ObservedState, DesiredState) plus a little metadata. No I/O, no clock, no React:
// the components only lay it out, and the table tests check the decisions made here
// (which row is which colour, what a reason says, what details a disk has).
import type { DesiredState } from '../model/desired.js';
import { xenbusStateName, type BackendObs, type LoopObs, type ObservedState } from '../model/observed.js';
import { ACTION_SIGN, type Action, type DiskStatus, type Finding, type Health, type Plan, type Severity, type SyncStatus } from '../model/plan.js';
import { HEALTH_RANK, HEALTH_STATES } from '../plan/health.js';
import { summaryLine } from '../render/plan.js';
import type { SortCol, SortSpec } from './keys.js';
import type { DaemonEvent } from '../daemon/daemon.js';
import type { DaemonInfo } from './daemon-info.js';

/** Colours the components use (names Ink/chalk understand). */
export type Tone = 'green' | 'yellow' | 'red' | 'gray' | 'cyan';

export interface ViewMeta {
  /** The host's name (os.hostname()). */
  host: string;
  /** The xenstore socket in use (XENSTORED_PATH or the default), or a description. */
  socket: string;
  configDir: string;
  /** Wall-clock time (ms since the epoch) of the observation shown, if any. */
  observedAt?: number;
  /** How long the last observe + plan took (ms). */
  observeMs?: number;
  /** Shown in the header (e.g. the config is invalid and the last good one is used). */
  warning?: string;
  /** The daemon as its control socket answered (absent: not asked, nothing shown). */
  daemon?: DaemonInfo;
}

/** One line of the events view (e): a daemon pass or a hook request. */
export interface EventVM {
  /** "19:58:03" (UTC). */
  at: string;
  tone: Tone;
  /** "pass #12: ..." / "hook serve backend/vbd/5/51728: physical-device 7:3" */
  text: string;
  /** The steps of a pass, one line each. */
  steps: string[];
}

export interface HeaderVM {
  host: string;
  socket: string;
  configDir: string;
  /** "19:58:03" (UTC) or "never". */
  observedAt: string;
  observeMs?: number;
  warning?: string;
  domainsDesired: number;
  domainsRunning: number;
  disks: number;
  health: Record<Health, number>;
  sync: Record<SyncStatus, number>;
  findings: Record<Severity, number>;
  actions: number;
  loops: number;
  loopsOurs: number;
  /** "daemon pid 812, last pass #12 at 19:58:03 ok", "no daemon running"... (absent: not asked). */
  daemon?: string;
  daemonTone?: Tone;
}

export interface DiskRowVM {
  /** Unique and stable across refreshes: "<domain>/<vdev>" (or the backend path for an undesired one). */
  key: string;
  domain: string;
  /** True on the first row of a domain (the table prints the domain name only there). */
  firstOfDomain: boolean;
  domid?: number;
  vdev: string;
  devid: number;
  source: string;
  mode: string;
  sync: SyncStatus;
  health: Health;
  healthReason?: string;
  /** Why the sync is not `synced` (the planned action, or what blocks one). */
  syncReason?: string;
  /** The colour of the row, from its health (and sync). */
  tone: Tone;
  loop: string;
  diskseq: string;
  sharedBy: number;
  backendState: string;
  frontendState: string;
  /** Findings that name this disk. */
  findingCount: number;
  /** The sign of the pending action on this disk, if any: + attach/serve, - detach, ~ replace. */
  pending?: ActionSign;
}

export type ActionSign = '+' | '-' | '~';

export interface FindingVM {
  kind: string;
  severity: Severity;
  tone: Tone;
  /** "web/xvdb", "loop3", a source path, or "" when it is host-wide. */
  where: string;
  message: string;
  fix: string;
  /** The disk rows this finding concerns (keys). */
  rowKeys: string[];
}

export interface ActionVM {
  sign: ActionSign;
  kind: Action['kind'];
  tone: Tone;
  /** "attach web/xvdb <- /var/lib/xvbd/images/web.img (rw, new loop device)" */
  summary: string;
  reason?: string;
  rowKey?: string;
}

export interface DetailsVM {
  key: string;
  title: string;
  /** Sync and health with their reasons, sharing, states. */
  status: [string, string][];
  /** Label/value pairs describing the desired disk. */
  desired: [string, string][];
  backendPath?: string;
  /** The backend's xenstore nodes as observed. */
  nodes: [string, string][];
  loop: [string, string][];
  findings: FindingVM[];
  actions: ActionVM[];
}

export interface ViewModel {
  header: HeaderVM;
  rows: DiskRowVM[];
  findings: FindingVM[];
  actions: ActionVM[];
  /** "Plan: 3 to attach, 0 to change, 1 to detach; 2 findings" */
  summary: string;
  /**
   * Everything about one disk, by row key. Built on demand (only the disk on screen needs it: at
   * 1,000 disks building them all would cost more than the rest of the view model) and cached.
   */
  details(key: string): DetailsVM | undefined;
  /** The daemon's recent events, newest first (empty: no daemon, or not asked). */
  events: EventVM[];
  /** What applying with prune would do (p): absent when it cannot be planned (no valid config). */
  prune?: { actions: ActionVM[]; summary: string };
}

/** "4 Connected", "-" when unknown. */
export function stateLabel(state: number | undefined): string {
  if (state === undefined) return '-';
  const name = xenbusStateName(state);
  return name === String(state) ? name : `${state} ${name}`;
}

export function healthTone(health: Health, sync: SyncStatus): Tone {
  switch (health) {
    case 'healthy':
      return sync === 'synced' ? 'green' : 'yellow';
    case 'progressing':
      return 'cyan';
    case 'degraded':
      return 'red';
    case 'missing':
      return sync === 'pending' ? 'gray' : 'yellow';
  }
}

export function severityTone(s: Severity): Tone {
  return s === 'error' ? 'red' : s === 'warning' ? 'yellow' : 'gray';
}

export function actionSign(kind: Action['kind']): ActionSign {
  return ACTION_SIGN[kind];
}

/** "19:58:03" in UTC from ms since the epoch (the caller's clock, not ours). */
export function formatClock(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return 'never';
  return new Date(ms).toISOString().slice(11, 19);
}

export function rowKey(domain: string, vdev: string): string {
  return `${domain}/${vdev}`;
}

/** The row key of a disk before deduplication: sanitized "<domain>/<vdev>". */
function statusKey(d: DiskStatus): string {
  return sanitizeText(rowKey(d.domain, d.vdev));
}

function loopLabel(l: { name: string; diskseq: string }): string {
  return `${l.name}`;
}

function reuseText(reuse: { name: string } | undefined): string {
  return reuse ? `shares ${reuse.name}` : 'new loop device';
}

function describeAction(a: Action): { summary: string; reason?: string; domain?: string; vdev?: string; backendPath?: string } {
  switch (a.kind) {
    case 'attach':
      return {
        summary: `attach ${a.domain}/${a.disk.vdev} <- ${a.disk.source} (${a.disk.mode}, ${a.disk.sourceKind === 'block' ? 'block device' : reuseText(a.reuseLoop)})`,
        domain: a.domain,
        vdev: a.disk.vdev,
      };
    case 'serve':
      return {
        summary: `serve ${a.domain}/${a.disk.vdev} <- ${a.disk.source} (${a.disk.mode}, ${a.disk.sourceKind === 'block' ? 'block device' : reuseText(a.reuseLoop)}) for ${a.backend.path}`,
        domain: a.domain,
        vdev: a.disk.vdev,
        backendPath: a.backend.path,
      };
    case 'detach':
      return {
        summary: `detach ${a.domain ?? `domid ${a.backend.frontendDomid}`} devid ${a.backend.devid} (${a.backend.path})`,
        reason: a.reason,
        ...(a.domain !== undefined ? { domain: a.domain } : {}),
        backendPath: a.backend.path,
      };
    case 'replace':
      return {
        summary: `replace ${a.domain}/${a.disk.vdev} -> ${a.disk.source} (${a.disk.mode})`,
        reason: a.reason,
        domain: a.domain,
        vdev: a.disk.vdev,
        backendPath: a.backend.path,
      };
    case 'free-loop':
      return {
        summary: `free ${a.loop.name} (diskseq ${a.loop.diskseq})`,
        reason: a.reason,
      };
    case 'hold':
      return {
        summary: `hold ${a.loop.name} (diskseq ${a.loop.diskseq}) for ${a.backend.path}`,
        reason: 'no holder keeps it open',
        ...(a.domain !== undefined ? { domain: a.domain } : {}),
        backendPath: a.backend.path,
      };
    case 'offline':
      return {
        summary: `${a.close ? 'close' : 'offline'} ${a.domain ?? `domid ${a.backend.frontendDomid}`} devid ${a.backend.devid} (${a.backend.path})`,
        reason: a.reason,
        ...(a.domain !== undefined ? { domain: a.domain } : {}),
        backendPath: a.backend.path,
      };
    case 'reprobe':
      return { summary: `reprobe ${a.domain} devid ${a.backend.devid} (${a.backend.path})`, reason: a.reason, domain: a.domain, backendPath: a.backend.path };
  }
}

/** The Terraform-style summary line, worded as `xvbd plan` prints it. */
export function planSummary(plan: Plan): string {
  return summaryLine(plan);
}

function findingWhere(f: Finding): string {
  if (f.domain !== undefined && f.vdev !== undefined) return `${f.domain}/${f.vdev}`;
  if (f.domain !== undefined) return f.domain;
  if (f.backend) return f.backend.path;
  if (f.loops && f.loops.length > 0) return f.loops.map((l) => l.name).join(',');
  if (f.source !== undefined) return f.source;
  return '';
}

const SEVERITY_RANK: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

export interface BuildInput {
  plan: Plan;
  observed: ObservedState;
  desired?: DesiredState;
  meta: ViewMeta;
  /**
   * The plan `xvbd apply --prune` would carry out now (same observation, the config's policy with
   * prune, never allowDataLoss); absent without a valid config.
   */
  prunePlan?: Plan;
}

/** The Policy-free part of a desired disk, as the details pane shows it. */
type DesiredDisk = NonNullable<DesiredState['domains'][number]['disks'][number]>;

/**
 * Row keys, and indexes to attach findings and actions to rows. Keys are "<domain>/<vdev>",
 * sanitized, made unique ("#2"...) should the plan list a vdev twice.
 */
export interface RowIndex {
  keyOf: Map<DiskStatus, string>;
  rowKeys: Set<string>;
  keyByBackendPath: Map<string, string>;
  keysByLoop: Map<string, string[]>;
  keysBySource: Map<string, string[]>;
  keysByDomain: Map<string, string[]>;
  /** "<domid>/<devid>" */
  keyByDomid: Map<string, string>;
}

function pushTo<T>(m: Map<string, T[]>, k: string, v: T): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}

export function indexRows(disks: readonly DiskStatus[]): RowIndex {
  const ix: RowIndex = {
    keyOf: new Map(),
    rowKeys: new Set(),
    keyByBackendPath: new Map(),
    keysByLoop: new Map(),
    keysBySource: new Map(),
    keysByDomain: new Map(),
    keyByDomid: new Map(),
  };
  for (const d of disks) {
    const base = statusKey(d);
    let k = base;
    for (let n = 2; ix.rowKeys.has(k); n++) k = `${base}#${n}`;
    ix.keyOf.set(d, k);
    ix.rowKeys.add(k);
  }
  for (const d of disks) {
    const k = ix.keyOf.get(d)!;
    if (d.backend) ix.keyByBackendPath.set(d.backend.path, k);
    if (d.loop) pushTo(ix.keysByLoop, d.loop.name, k);
    if (d.source !== undefined) pushTo(ix.keysBySource, d.source, k);
    pushTo(ix.keysByDomain, d.domain, k);
    if (d.domid !== undefined) ix.keyByDomid.set(`${d.domid}/${d.devid}`, k);
  }
  return ix;
}

/** The rows a finding concerns: its disk, its backend, else its domain's; its loops; else its source's. */
export function findingRowKeys(ix: RowIndex, f: Finding): string[] {
  const out = new Set<string>();
  const fk = f.domain !== undefined && f.vdev !== undefined ? sanitizeText(rowKey(f.domain, f.vdev)) : undefined;
  if (fk !== undefined && ix.rowKeys.has(fk)) out.add(fk);
  if (f.backend) {
    const k = ix.keyByBackendPath.get(f.backend.path) ?? ix.keyByDomid.get(`${f.backend.frontendDomid}/${f.backend.devid}`);
    if (k) out.add(k);
  }
  if (out.size === 0 && f.domain !== undefined && f.vdev === undefined) for (const k of ix.keysByDomain.get(f.domain) ?? []) out.add(k);
  for (const l of f.loops ?? []) for (const k of ix.keysByLoop.get(l.name) ?? []) out.add(k);
  if (f.source !== undefined && out.size === 0) for (const k of ix.keysBySource.get(f.source) ?? []) out.add(k);
  return [...out].sort();
}

/** The findings, by severity, then as planned. */
export function findingVMs(ix: RowIndex, findings: readonly Finding[]): FindingVM[] {
  return findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => SEVERITY_RANK[a.f.severity] - SEVERITY_RANK[b.f.severity] || a.i - b.i)
    .map(({ f }) => ({
      kind: f.kind,
      severity: f.severity,
      tone: severityTone(f.severity),
      where: findingWhere(f),
      message: f.message,
      fix: f.fix,
      rowKeys: findingRowKeys(ix, f),
    }));
}

/** One action, attached to its disk's row (by domain/vdev, else backend, else the freed loop). */
export function actionVM(ix: RowIndex, a: Action): ActionVM {
  const d = describeAction(a);
  let key: string | undefined;
  const ak = d.domain !== undefined && d.vdev !== undefined ? sanitizeText(rowKey(d.domain, d.vdev)) : undefined;
  if (ak !== undefined && ix.rowKeys.has(ak)) key = ak;
  else if (d.backendPath !== undefined) key = ix.keyByBackendPath.get(d.backendPath);
  else if (a.kind === 'free-loop') key = ix.keysByLoop.get(a.loop.name)?.[0];
  const sign = actionSign(a.kind);
  return {
    sign,
    kind: a.kind,
    tone: sign === '+' ? 'green' : sign === '-' ? 'red' : 'yellow',
    summary: d.summary,
    ...(d.reason !== undefined ? { reason: d.reason } : {}),
    ...(key !== undefined ? { rowKey: key } : {}),
  } satisfies ActionVM;
}

/** One row of the disk table. */
export function diskRow(d: DiskStatus, key: string, firstOfDomain: boolean, findingCount: number, pending: ActionSign | undefined): DiskRowVM {
  const row: DiskRowVM = {
    key,
    domain: d.domain,
    firstOfDomain,
    vdev: d.vdev,
    devid: d.devid,
    source: d.source ?? '-',
    mode: d.mode ?? '-',
    sync: d.sync,
    health: d.health,
    tone: healthTone(d.health, d.sync),
    loop: d.loop ? loopLabel(d.loop) : '-',
    diskseq: d.loop?.diskseq ?? d.backend?.diskseq ?? '-',
    sharedBy: d.sharedBy,
    backendState: stateLabel(d.backendState),
    frontendState: stateLabel(d.frontendState),
    findingCount,
  };
  if (d.domid !== undefined) row.domid = d.domid;
  if (d.healthReason !== undefined) row.healthReason = d.healthReason;
  if (d.syncReason !== undefined) row.syncReason = d.syncReason;
  if (pending !== undefined) row.pending = pending;
  return row;
}

/** The table's rows in the plan's order, each with its findings counted and its first pending action's sign. */
export function diskRows(ix: RowIndex, disks: readonly DiskStatus[], findings: readonly FindingVM[], actions: readonly ActionVM[]): DiskRowVM[] {
  const findingCount = new Map<string, number>();
  for (const f of findings) for (const k of f.rowKeys) findingCount.set(k, (findingCount.get(k) ?? 0) + 1);
  const pendingByKey = new Map<string, ActionSign>();
  for (const a of actions) if (a.rowKey !== undefined && !pendingByKey.has(a.rowKey)) pendingByKey.set(a.rowKey, a.sign);
  let prevDomain: string | undefined;
  return disks.map((d) => {
    const k = ix.keyOf.get(d)!;
    const row = diskRow(d, k, d.domain !== prevDomain, findingCount.get(k) ?? 0, pendingByKey.get(k));
    prevDomain = d.domain;
    return row;
  });
}

/** The details' "desired" pairs: the disk as the config gives it, or that it is not in the config. */
export function desiredPairs(disk: DesiredDisk | undefined): [string, string][] {
  if (!disk) return [['desired', 'no (not in the config)']];
  const pairs: [string, string][] = [];
  pairs.push(['source', disk.source], ['kind', disk.sourceKind], ['mode', disk.mode]);
  pairs.push(['devid', String(disk.devid)], ['backend domid', String(disk.backendDomid)]);
  const opts = [
    disk.options.directIo ? 'direct-io' : '',
    disk.options.discard ? 'discard' : '',
    disk.options.blockSize !== undefined ? `block-size ${disk.options.blockSize}` : '',
  ].filter(Boolean);
  if (opts.length > 0) pairs.push(['options', opts.join(', ')]);
  pairs.push(['written at', `${disk.at.file}:${disk.at.line}`]);
  return pairs;
}

/** The details' backend nodes as observed (none without a backend). */
export function backendNodes(b: BackendObs | undefined): [string, string][] {
  const nodes: [string, string][] = [];
  if (!b) return nodes;
  const add = (label: string, v: string | number | boolean | undefined) => {
    if (v !== undefined) nodes.push([label, String(v)]);
  };
  add('params', b.params);
  add('mode', b.mode);
  add('type', b.type);
  add('physical-device', b.physicalDevice);
  add('physical-device-path', b.physicalDevicePath);
  add('diskseq', b.diskseq);
  if (b.sourceInode) nodes.push(['xvbd-inode', `${b.sourceInode.dev}:${b.sourceInode.ino}`]);
  nodes.push(['xvbd (ours)', b.ours ? 'yes' : 'no']);
  nodes.push(['state', stateLabel(b.state)]);
  if (b.online !== undefined) nodes.push(['online', b.online ? '1' : '0']);
  add('hotplug-status', b.hotplugStatus);
  add('script', b.script);
  add('frontend', b.frontendPath);
  nodes.push(['frontend state', stateLabel(b.frontendState)]);
  nodes.push(['blkback holds it', b.kernelHeld ? 'yes' : 'no']);
  add('error', b.error);
  if (b.malformed && b.malformed.length > 0) nodes.push(['malformed (ignored)', b.malformed.join(', ')]);
  return nodes;
}

/** The details' loop pairs: the disk's loop device as planned, and `lo`, the one observed under its name. */
export function loopPairs(d: DiskStatus, lo: LoopObs | undefined): [string, string][] {
  const loop: [string, string][] = [];
  if (d.loop) {
    loop.push(['device', `/dev/${d.loop.name}`], ['diskseq', d.loop.diskseq]);
    if (lo && lo.diskseq !== d.loop.diskseq) loop.push(['now', `${lo.name} has diskseq ${lo.diskseq} (reused)`]);
  }
  if (lo) {
    loop.push(['backing', lo.backingPath]);
    loop.push(['backing inode', `${lo.backing.dev}:${lo.backing.ino}`]);
    const flags = [
      lo.readOnly ? 'read-only' : 'read-write',
      lo.autoclear ? 'autoclear' : 'no autoclear',
      lo.directIo ? 'direct-io' : '',
      lo.ours ? 'ours' : 'not ours',
      lo.backingDeleted ? 'BACKING DELETED' : '',
      lo.mounted ? 'MOUNTED' : '',
      lo.heldByUs ? 'fd held' : '',
    ].filter(Boolean);
    loop.push(['flags', flags.join(', ')]);
    if (lo.holders.length > 0) loop.push(['holders', lo.holders.join(', ')]);
    loop.push(['shared by', String(d.sharedBy)]);
  }
  return loop;
}

/** The details' status pairs: sync and health with their reasons, the xenbus states. */
export function statusPairs(d: DiskStatus): [string, string][] {
  return [
    ['sync', d.syncReason !== undefined ? `${d.sync}: ${d.syncReason}` : d.sync],
    ['health', d.healthReason !== undefined ? `${d.health}: ${d.healthReason}` : d.health],
    ['backend state', stateLabel(d.backendState)],
    ['frontend state', stateLabel(d.frontendState)],
  ];
}

/** What the details of one disk are built from (the indexes of one buildViewModel). */
interface DetailsInput {
  ix: RowIndex;
  specByKey: Map<string, DesiredDisk>;
  backendsByPath: Map<string, BackendObs>;
  loopsByName: Map<string, LoopObs>;
  findingsByKey: Map<string, FindingVM[]>;
  actionsByKey: Map<string, ActionVM[]>;
}

function diskDetails(d: DiskStatus, x: DetailsInput): DetailsVM {
  const k = x.ix.keyOf.get(d)!;
  // a duplicate row ("#2") is not the config's disk
  const spec = k === statusKey(d) ? x.specByKey.get(rowKey(d.domain, d.vdev)) : undefined;
  const det: DetailsVM = {
    key: k,
    title: `${d.domain}${d.domid !== undefined ? ` (domid ${d.domid})` : ''} ${d.vdev} (devid ${d.devid})`,
    status: statusPairs(d),
    desired: desiredPairs(spec),
    nodes: backendNodes(d.backend ? x.backendsByPath.get(d.backend.path) : undefined),
    loop: loopPairs(d, d.loop ? x.loopsByName.get(d.loop.name) : undefined),
    findings: x.findingsByKey.get(k) ?? [],
    actions: x.actionsByKey.get(k) ?? [],
  };
  if (d.backend) det.backendPath = d.backend.path;
  return det;
}

/** `details(key)` of the ViewModel: built on first use, sanitized, cached. */
function detailsOnDemand(disks: readonly DiskStatus[], x: DetailsInput): (key: string) => DetailsVM | undefined {
  const statusByKey = new Map<string, DiskStatus>();
  for (const d of disks) statusByKey.set(x.ix.keyOf.get(d)!, d);
  const cache = new Map<string, DetailsVM>();
  return (key) => {
    const cached = cache.get(key);
    if (cached) return cached;
    const d = statusByKey.get(key);
    if (!d) return undefined;
    const det = sanitizeDeep(diskDetails(d, x));
    cache.set(key, det);
    return det;
  };
}

/** The header: the meta, the domains desired and running, and the plan's counts. */
export function headerVM(plan: Plan, observed: ObservedState, desired: DesiredState | undefined, meta: ViewMeta): HeaderVM {
  const health = Object.fromEntries(HEALTH_STATES.map((h) => [h, 0])) as Record<Health, number>;
  const sync: Record<SyncStatus, number> = { synced: 0, 'out-of-sync': 0, pending: 0, unknown: 0 };
  for (const d of plan.disks) {
    health[d.health]++;
    sync[d.sync]++;
  }
  const sev: Record<Severity, number> = { error: 0, warning: 0, info: 0 };
  for (const f of plan.findings) sev[f.severity]++;

  const running = new Set(observed.domains.map((d) => d.name).filter((n): n is string => n !== undefined));
  const desiredNames = desired?.domains.map((d) => d.name) ?? [...new Set(plan.disks.map((d) => d.domain))];
  const header: HeaderVM = {
    host: meta.host,
    socket: meta.socket,
    configDir: meta.configDir,
    observedAt: formatClock(meta.observedAt),
    domainsDesired: desiredNames.length,
    domainsRunning: desiredNames.filter((n) => running.has(n)).length,
    disks: plan.disks.length,
    health,
    sync,
    findings: sev,
    actions: plan.actions.length,
    loops: observed.loops.length,
    loopsOurs: observed.loops.filter((l) => l.ours).length,
  };
  if (meta.observeMs !== undefined) header.observeMs = meta.observeMs;
  if (meta.warning !== undefined) header.warning = meta.warning;
  if (meta.daemon) {
    const d = daemonLine(meta.daemon);
    header.daemon = d.text;
    header.daemonTone = d.tone;
  }
  return header;
}

/**
 * Builds the ViewModel. Pure: the same input gives the same output. Row order follows the plan's
 * disks (the planner sorts them by domain, devid); findings are ordered by severity, then as planned.
 */
export function buildViewModel(input: BuildInput): ViewModel {
  const { plan, observed, desired, meta } = input;
  const ix = indexRows(plan.disks);
  const findings = findingVMs(ix, plan.findings);
  const actions: ActionVM[] = plan.actions.map((a) => actionVM(ix, a));
  const rows = diskRows(ix, plan.disks, findings, actions);

  const specByKey = new Map<string, DesiredDisk>();
  for (const d of desired?.domains ?? []) for (const disk of d.disks) specByKey.set(rowKey(d.name, disk.vdev), disk);
  const findingsByKey = new Map<string, FindingVM[]>();
  for (const f of findings) for (const k of f.rowKeys) pushTo(findingsByKey, k, f);
  const actionsByKey = new Map<string, ActionVM[]>();
  for (const a of actions) if (a.rowKey !== undefined) pushTo(actionsByKey, a.rowKey, a);
  const details = detailsOnDemand(plan.disks, {
    ix,
    specByKey,
    backendsByPath: new Map(observed.backends.map((b) => [b.path, b])),
    loopsByName: new Map(observed.loops.map((l) => [l.name, l])),
    findingsByKey,
    actionsByKey,
  });

  const header = headerVM(plan, observed, desired, meta);
  const events = meta.daemon?.state === 'running' ? [...meta.daemon.events].reverse().map(eventVM) : [];
  const vm: ViewModel = { header, rows, findings, actions, summary: planSummary(plan), details, events };
  if (input.prunePlan) vm.prune = { actions: input.prunePlan.actions.map((a) => actionVM(ix, a)), summary: planSummary(input.prunePlan) };
  return sanitizeDeep(vm);
}

/** The header's daemon line (pure: the clock is the pass's own). */
export function daemonLine(d: DaemonInfo): { text: string; tone: Tone } {
  switch (d.state) {
    case 'absent':
      return { text: 'daemon not running (xvbd reconcile --watch): nothing reconciles by itself', tone: 'yellow' };
    case 'unknown':
      return { text: `daemon unknown: ${d.error}`, tone: 'yellow' };
    case 'running': {
      if (!d.lastPass) return { text: `daemon pid ${d.pid}, no pass yet`, tone: 'cyan' };
      const p = d.lastPass;
      return { text: `daemon pid ${d.pid}, last pass #${p.seq} at ${formatClock(Date.parse(p.at))} ${p.ok ? 'ok' : 'FAILED'}`, tone: p.ok ? 'green' : 'red' };
    }
  }
}

/** One event for the events view. */
export function eventVM(e: DaemonEvent): EventVM {
  const at = formatClock(Date.parse(e.at));
  if (e.kind === 'pass') {
    const steps = e.steps.map((s) => `${s.ok ? 'ok' : 'FAILED'} ${s.kind} ${s.label ?? s.target}${s.error !== undefined ? `: ${s.error}` : ''}`);
    return { at, tone: !e.ok ? 'red' : e.steps.length > 0 ? 'cyan' : 'gray', text: `pass #${e.seq} (${Math.round(e.durationMs)} ms): ${e.summary}`, steps };
  }
  return { at, tone: e.ok ? 'cyan' : 'red', text: `hook ${e.kind === 'hook-serve' ? 'serve' : 'release'} ${e.backend}: ${e.ok ? '' : 'refused: '}${e.summary}`, steps: [] };
}

/**
 * Replaces control characters in every string (guest-writable xenstore values, file names and
 * error messages can carry escape sequences; they must never reach the terminal).
 */
export function sanitizeText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f-\u009f]/.test(s) ? s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?') : s;
}

function sanitizeDeep<T>(v: T): T {
  if (typeof v === 'string') return sanitizeText(v) as T;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = sanitizeDeep(v[i]);
    return v;
  }
  if (typeof v === 'function') return v;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      const sk = sanitizeText(k);
      const val = sanitizeDeep(o[k]);
      if (sk !== k) delete o[k];
      o[sk] = val;
    }
    return v;
  }
  return v;
}

/** A disk that needs attention: not healthy, not in sync, with a finding or a pending action. */
export function needsAttention(r: DiskRowVM): boolean {
  return r.health !== 'healthy' || r.sync !== 'synced' || r.findingCount > 0 || r.pending !== undefined;
}

/** What of the rows the screen shows, and in which order (the UI state's f, / and sort). */
export interface RowView {
  /** Only those that need attention. */
  filter?: boolean | undefined;
  /** Only those whose text contains this, case-insensitive (blank: all). */
  query?: string | undefined;
  sort?: SortSpec | undefined;
}

/** The text `/` searches in a row: key, source, mode, loop, diskseq, sync, health and its reason. */
export function rowText(r: DiskRowVM): string {
  return [r.key, r.source, r.mode, r.loop, r.diskseq, r.sync, r.health, r.healthReason ?? '', r.syncReason ?? ''].join(' ').toLowerCase();
}

const SYNC_RANK: Record<SyncStatus, number> = { 'out-of-sync': 0, pending: 1, unknown: 2, synced: 3 };
/** loop10 after loop9; "-" (none) last. */
function loopRank(l: string): number {
  const m = /^loop(\d+)$/.exec(l);
  return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
}

/** Compares two rows by a sort column; ties keep the plan's order (the sort is stable). */
export function compareRows(col: SortCol, a: DiskRowVM, b: DiskRowVM): number {
  switch (col) {
    case 'domain':
      return a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : a.devid - b.devid;
    case 'source':
      return a.source < b.source ? -1 : a.source > b.source ? 1 : 0;
    case 'sync':
      return SYNC_RANK[a.sync] - SYNC_RANK[b.sync];
    case 'health':
      return HEALTH_RANK[a.health] - HEALTH_RANK[b.health];
    case 'loop':
      return loopRank(a.loop) - loopRank(b.loop);
  }
}

/** The rows on screen: all of them or (filter) those that need attention, matching the query, sorted. */
export function visibleRows(vm: ViewModel, view: RowView = {}): DiskRowVM[] {
  let rows = view.filter ? vm.rows.filter(needsAttention) : vm.rows;
  const q = view.query?.trim().toLowerCase();
  if (q) rows = rows.filter((r) => rowText(r).includes(q));
  const sort = view.sort;
  if (sort) {
    const sign = sort.desc ? -1 : 1;
    rows = rows.map((r, i) => ({ r, i })).sort((x, y) => sign * compareRows(sort.col, x.r, y.r) || x.i - y.i).map((x) => x.r);
  }
  return rows;
}
