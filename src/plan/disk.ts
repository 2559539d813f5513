// The decision for one desired disk against the observation: attach, serve, replace, keep (synced), or
// hold off with a finding (domain not running or ambiguous, source blocked, a backend of another tool,
// drift that only prune or -replace repairs). Each disk is decided alone, from the index.
import type { DiskSpec, Policy } from '../model/desired.js';
import type { Action, DiskStatus, FindingKind, LoopRef } from '../model/plan.js';
import { checkSource, type DiskCtx } from './desired-disks.js';
import { backendChecks, describeIdentity, fillBackendCells, guardLetGo, health, optionsDiff } from './backend.js';
import { loopRef, modeWords, scriptIsOurs } from './identity.js';
import { DEFAULT_BLOCK_SIZE, feKey, shareKey, type BackendInfo, type ObservedIndex } from './observed-index.js';
import { PlanOut, type FindingExtra } from './order.js';
import { vbdKey } from './outside.js';
import { replaceKey } from './target.js';
import { reprobeOf } from './reprobe.js';

/** What planDisk decided for one disk. */
export interface DiskDecision {
  row: DiskStatus;
  out: PlanOut;
  /** The backends this disk accounts for (never detached as undesired). */
  matched: BackendInfo[];
}

/** One disk being decided: its facts, the plan's inputs, and where its actions and findings go. */
interface Deciding {
  c: DiskCtx;
  ix: ObservedIndex;
  policy: Policy;
  out: PlanOut;
  row: DiskStatus;
  /** Why no new use of the disk's source may be made, or undefined when one may. */
  blocked?: string;
  /** The base of every finding about this disk. */
  f: FindingExtra;
}

/** Prune replaces every desired disk whose backend differs; -replace (policy.replace) just the ones named. */
export function mayReplace(policy: Policy, domain: string, devid: number): boolean {
  return policy.prune || policy.replace?.has(replaceKey(domain, devid)) === true;
}

/** The read-only loop device of ours a new read-only use of the disk's file shares, if one fits. */
export function pickReuse(c: DiskCtx, ix: ObservedIndex): LoopRef | undefined {
  if (c.disk.mode !== 'ro' || c.src?.kind !== 'file' || c.identity === undefined) return undefined;
  const o = c.disk.options;
  const best = ix.bestByKey.get(shareKey(c.identity, o.directIo, o.blockSize ?? DEFAULT_BLOCK_SIZE));
  return best ? loopRef(best) : undefined;
}

/** Plans an attach, serve or replace for the disk, sharing a read-only loop device when one fits. */
function propose(d: Deciding, a: Extract<Action, { kind: 'attach' | 'serve' | 'replace' }>): void {
  const reuse = pickReuse(d.c, d.ix);
  if (reuse) a.reuseLoop = reuse;
  d.out.action(a, a.domain, a.domid, a.disk.devid);
}

/**
 * Decides one desired disk. `offlined`: the backends whose physical-device this plan takes away first
 * (planServed), false when not closed.
 */
export function planDisk(c: DiskCtx, ix: ObservedIndex, policy: Policy, offlined: ReadonlyMap<BackendInfo, boolean>): DiskDecision {
  const { dom, disk } = c;
  const row: DiskStatus = { domain: dom.name, vdev: disk.vdev, devid: disk.devid, source: disk.source, mode: disk.mode, sync: 'unknown', health: 'missing', sharedBy: 0 };
  if (c.domid !== undefined) row.domid = c.domid;
  const source = checkSource(c, ix);
  const out = new PlanOut().add(source.out);
  const matched: BackendInfo[] = [];
  const d: Deciding = { c, ix, policy, out, row, f: { domain: dom.name, vdev: disk.vdev, at: disk.at, sortDomain: dom.name, sortDevid: disk.devid } };
  const blocked = source.problem ?? (c.conflict !== undefined ? 'read-write file shared' : undefined);
  if (blocked !== undefined) d.blocked = blocked;

  if (c.ambiguous) {
    row.healthReason = `name used by domids ${c.ambiguous.join(', ')}`;
    out.finding('domain-not-running', 'warning', `domain name ${dom.name} is used by several domains (domids ${c.ambiguous.join(', ')}); xvbd does not guess`, 'rename or destroy the stale domain', d.f);
    // Whichever of them is meant, its backend on this vdev is desired: never detach it.
    for (const id of c.ambiguous) matched.push(...(ix.backendsAt.get(feKey(id, disk.devid)) ?? []));
    return { row, out, matched };
  }
  if (c.domid === undefined) {
    row.sync = 'pending';
    row.healthReason = 'domain not running';
    out.finding('domain-not-running', 'info', `${dom.name} is not running; ${disk.vdev} will be attached when it runs`, 'start the domain', d.f);
    return { row, out, matched };
  }
  const here = ix.backendsAt.get(feKey(c.domid, disk.devid)) ?? [];
  matched.push(...here);
  const bi = here.find((i) => i.b.backendDomid === disk.backendDomid) ?? here[0];
  for (const other of here) if (other !== bi) extraBackendOnVdev(d, other);
  if (!bi) {
    planNoBackend(d, c.domid);
    return { row, out, matched };
  }
  fillBackendCells(row, bi, ix);
  const h = health(bi);
  row.health = h.health;
  if (h.reason !== undefined) row.healthReason = h.reason;
  out.add(backendChecks(bi, dom.name, disk.vdev));
  if (!bi.pd || offlined.get(bi) === false) planPendingBackend(d, bi, c.domid);
  else planActiveBackend(d, bi, c.domid);
  return { row, out, matched };
}

/** No backend: attach it (unless blocked, left to the toolstack, or detached outside xvbd). */
function planNoBackend(d: Deciding, domid: number): void {
  const { c, row, out } = d;
  const { dom, disk } = c;
  const fs: FindingExtra = { domain: dom.name, vdev: disk.vdev, at: disk.at, source: disk.source, sortDomain: dom.name, sortDevid: disk.devid };
  row.health = 'missing';
  row.healthReason = 'no backend';
  row.sync = 'out-of-sync';
  if (d.blocked !== undefined) {
    row.healthReason = `no backend (${d.blocked})`;
    return;
  }
  if (d.policy.serve === 'hook') {
    out.finding(
      'missing-backend',
      'warning',
      `${dom.name} has no backend for ${disk.vdev}, and policy serve=hook leaves creating it to the toolstack`,
      `add "${disk.vdev}" with script=xvbd to the domain's xl config (xl block-attach), or set policy serve to attach or both`,
      fs,
    );
    return;
  }
  if (d.policy.detachedOutside?.has(vbdKey(domid, disk.devid))) {
    row.healthReason = 'detached outside xvbd';
    out.finding(
      'detached-outside',
      'warning',
      `${dom.name} ${disk.vdev}: its backend was removed outside xvbd while ${dom.name} runs (xl block-detach, or the domain being destroyed); the daemon does not put it back by itself`,
      'run `xvbd apply` or `xvbd reconcile` to attach it again',
      fs,
    );
    return;
  }
  propose(d, { kind: 'attach', domain: dom.name, domid, disk });
}

/**
 * Hotplug pending: the toolstack (or our own interrupted attach) wrote the dir, nobody provided the
 * device yet (or this plan takes a gone device's physical-device away first). Whatever follows, the disk
 * is not served yet: serve it when it is ours to serve and as desired.
 */
function planPendingBackend(d: Deciding, bi: BackendInfo, domid: number): void {
  const { c, row, out } = d;
  const { dom, disk } = c;
  const b = bi.b;
  row.sync = 'out-of-sync';
  if (b.hotplugStatus === 'error') return; // backendChecks reported it
  const f = { domain: dom.name, vdev: disk.vdev, at: disk.at, backend: bi.ref, sortDomain: dom.name, sortDevid: disk.devid };
  if (!(b.ours || scriptIsOurs(b.script))) {
    const fh = health(bi, { foreignScript: b.script ?? '' });
    row.health = fh.health;
    if (fh.reason !== undefined) row.healthReason = fh.reason;
    out.finding(
      'unexpected-backend',
      'warning',
      `${dom.name} ${disk.vdev}: backend ${b.path} belongs to another tool (script ${b.script}); xvbd never touches it`,
      `use script=xvbd for this disk in the xl config, or remove ${disk.vdev} from the xvbd config`,
      f,
    );
    return;
  }
  const paramsOk = bi.params === disk.source;
  if (!paramsOk || b.backendDomid !== disk.backendDomid) {
    const what = !paramsOk ? `names ${b.params ?? '(no params)'}, desired ${disk.source}` : `is served by domain ${b.backendDomid}, desired ${disk.backendDomid}`;
    mismatch(d, bi, 'source-mismatch', what);
    return;
  }
  if (b.mode !== (disk.mode === 'rw' ? 'w' : 'r')) {
    mismatch(d, bi, 'mode-mismatch', `mode ${modeWords(b.mode)}, desired ${disk.mode}`);
    return;
  }
  if (!b.ours && d.policy.serve === 'attach') {
    out.finding('unexpected-backend', 'warning', `${dom.name} ${disk.vdev}: the toolstack created ${b.path} for xvbd to serve, but policy serve=attach`, 'set policy serve to hook or both', f);
    return;
  }
  if (d.blocked !== undefined) {
    row.healthReason = `hotplug pending (${d.blocked})`;
    return;
  }
  propose(d, { kind: 'serve', domain: dom.name, domid, disk, backend: bi.ref });
}

/** How an active backend differs from its disk: loop reused or gone, source, options, mode. */
export function activeProblems(bi: BackendInfo, c: DiskCtx): { same: boolean; problems: { kind: FindingKind; text: string }[] } {
  const { disk } = c;
  const b = bi.b;
  const problems: { kind: FindingKind; text: string }[] = [];
  if (bi.loopReused !== 'no') {
    problems.push({
      kind: 'loop-reused',
      text:
        bi.loopReused === 'gone'
          ? `no loop device is bound at physical-device ${b.physicalDevice} any more`
          : `the loop device at ${b.physicalDevice} (${bi.loopAtPd!.name}) has diskseq ${bi.loopAtPd!.diskseq}, the backend recorded ${b.diskseq}`,
    });
  }
  if (b.backendDomid !== disk.backendDomid) problems.push({ kind: 'source-mismatch', text: `served by domain ${b.backendDomid}, desired ${disk.backendDomid}` });
  const same = c.identity !== undefined && (bi.identity === c.identity || bi.altIdentity === c.identity);
  if (bi.identity !== undefined && c.identity !== undefined && !same && bi.loopReused === 'no') {
    problems.push({ kind: 'source-mismatch', text: `serves ${describeIdentity(bi)}, desired ${disk.source}` });
  }
  // A file served through a loop device: the device must have the desired options.
  if (same && disk.sourceKind === 'file' && bi.loopAtPd && bi.loopReused === 'no' && bi.identity === c.identity) {
    const diff = optionsDiff(bi.loopAtPd, disk.options);
    if (diff !== undefined) problems.push({ kind: 'options-mismatch', text: `/dev/${bi.loopAtPd.name} has ${diff}` });
  }
  const wantW = disk.mode === 'rw';
  if (b.mode !== (wantW ? 'w' : 'r')) problems.push({ kind: 'mode-mismatch', text: `mode ${modeWords(b.mode)}, desired ${disk.mode}` });
  else if (wantW && bi.loopAtPd && bi.loopReused === 'no' && bi.loopAtPd.readOnly) {
    problems.push({ kind: 'mode-mismatch', text: `mode rw, but /dev/${bi.loopAtPd.name} is read-only` });
  }
  return { same, problems };
}

/** A backend of ours serving what is desired, that blkback let go of while its frontend came back (reprobe.ts). */
function planReprobe(d: Deciding, bi: BackendInfo, domid: number): void {
  const b = bi.b;
  const r = reprobeOf(b, true);
  if (r === undefined) return;
  d.row.sync = 'out-of-sync';
  const { dom, disk } = d.c;
  const a: Action = { kind: 'reprobe', domain: dom.name, domid, backend: bi.ref, physicalDevice: b.physicalDevice!, backendState: b.state!, frontend: r.frontend, reason: r.reason };
  d.out.action(a, dom.name, domid, disk.devid);
}

/** An active backend: keep it when it serves what is desired, else replace it (prune, -replace) or report the drift. */
function planActiveBackend(d: Deciding, bi: BackendInfo, domid: number): void {
  const { c, row, out } = d;
  const { dom, disk } = c;
  const { same, problems } = activeProblems(bi, c);
  if (!bi.b.ours) {
    foreignActive(d, bi, same, problems.map((p) => p.text));
    return;
  }
  if (problems.length === 0) {
    row.sync = bi.identity === undefined || c.identity === undefined ? 'unknown' : 'synced';
    if (c.conflict !== undefined) {
      const ch = health(bi, { rwShared: true });
      row.health = ch.health;
      if (ch.reason !== undefined) row.healthReason = ch.reason;
    }
    if (row.sync === 'synced') planReprobe(d, bi, domid);
    return;
  }
  row.sync = 'out-of-sync';
  const f = { domain: dom.name, vdev: disk.vdev, at: disk.at, backend: bi.ref };
  const sort = { sortDomain: dom.name, sortDevid: disk.devid };
  const replace = mayReplace(d.policy, dom.name, disk.devid);
  // loop-reused is always reported: it means the guest may see another file.
  for (const p of problems) {
    if (p.kind !== 'loop-reused') continue;
    const fix = replace ? 'apply replaces the backend' : 'apply with prune replaces the backend';
    out.finding('loop-reused', 'error', `${dom.name} ${disk.vdev}: ${p.text}`, fix, { ...f, ...(bi.loopAtPd ? { loops: [loopRef(bi.loopAtPd)] } : {}), ...sort });
  }
  const reason = problems.map((p) => p.text).join('; ');
  if (replace && d.blocked === undefined) {
    const note = guardLetGo('replace', bi, `${dom.name} ${disk.vdev}: ${reason}`, { ...f, source: disk.source, ...sort }, d.policy.allowDataLoss === true, out);
    if (note !== undefined) propose(d, { kind: 'replace', domain: dom.name, domid, disk, backend: bi.ref, reason: reason + note });
    return;
  }
  for (const p of problems) {
    if (p.kind === 'loop-reused') continue;
    const fix = d.blocked !== undefined ? `fix the source first (${d.blocked}), then apply with prune` : 'apply with prune replaces the backend (the guest loses the disk for a moment)';
    out.finding(p.kind, 'warning', `${dom.name} ${disk.vdev}: ${p.text}`, fix, { ...f, source: disk.source, ...sort });
  }
}

/** An active backend of another tool on a desired disk: xvbd only says whether it serves what is desired. */
function foreignActive(d: Deciding, bi: BackendInfo, same: boolean, texts: string[]): void {
  const { c, row, out } = d;
  const { dom, disk } = c;
  const b = bi.b;
  const f = { domain: dom.name, vdev: disk.vdev, at: disk.at, backend: bi.ref, sortDomain: dom.name, sortDevid: disk.devid };
  if (texts.length === 0 && same) {
    row.sync = 'synced';
    out.finding(
      'unexpected-backend',
      'info',
      `${dom.name} ${disk.vdev} is served as desired, but by another tool (${b.script ?? 'no script'}); xvbd leaves it alone`,
      'nothing to do; to let xvbd manage it, detach it (xl block-detach) and apply',
      f,
    );
    return;
  }
  row.sync = bi.identity === undefined ? 'unknown' : 'out-of-sync';
  if (bi.identity === undefined) texts.push('what it serves is unknown');
  out.finding(
    'unexpected-backend',
    'warning',
    `${dom.name} ${disk.vdev}: backend ${b.path} is not xvbd's${texts.length ? ` (${texts.join('; ')})` : ''}; xvbd never touches it`,
    `detach it yourself (xl block-detach ${dom.name} ${disk.vdev}) and apply, or remove ${disk.vdev} from the config`,
    f,
  );
}

/** A second backend on the disk's vdev: detached with prune when ours, else reported. */
function extraBackendOnVdev(d: Deciding, i: BackendInfo): void {
  const domain = d.c.dom.name;
  const disk: DiskSpec = d.c.disk;
  const f = { domain, vdev: disk.vdev, backend: i.ref, sortDomain: domain, sortDevid: disk.devid };
  if (i.b.ours && d.policy.prune) {
    const reason = `a second backend for ${disk.vdev} (in domain ${i.b.backendDomid})`;
    const note = guardLetGo('detach', i, `${domain} ${disk.vdev}: ${reason}`, f, d.policy.allowDataLoss === true, d.out);
    if (note !== undefined) d.out.action({ kind: 'detach', domain, backend: i.ref, reason: reason + note }, domain, i.b.frontendDomid, disk.devid, i.b.backendDomid);
    return;
  }
  d.out.finding(
    'unexpected-backend',
    'warning',
    `${domain} ${disk.vdev}: a second backend ${i.b.path}${i.b.ours ? '' : ' (not xvbd\'s)'}`,
    i.b.ours ? 'apply with prune detaches it' : `remove it yourself (xl block-detach)`,
    f,
  );
}

/** A backend of ours that differs from its disk while hotplug is pending: replace it (prune, -replace) or report it. */
function mismatch(d: Deciding, i: BackendInfo, kind: FindingKind, text: string): void {
  const { c, out } = d;
  const f = { domain: c.dom.name, vdev: c.disk.vdev, backend: i.ref, source: c.disk.source, at: c.disk.at, sortDomain: c.dom.name, sortDevid: c.disk.devid };
  if (!i.b.ours) {
    out.finding(kind, 'warning', `${c.dom.name} ${c.disk.vdev}: the toolstack's backend ${text}; xvbd does not serve it`, 'make the xl disk spec and the xvbd config agree', f);
    return;
  }
  if (mayReplace(d.policy, c.dom.name, c.disk.devid) && d.blocked === undefined && c.domid !== undefined) {
    const note = guardLetGo('replace', i, `${c.dom.name} ${c.disk.vdev}: backend ${text}`, f, d.policy.allowDataLoss === true, out);
    if (note !== undefined) propose(d, { kind: 'replace', domain: c.dom.name, domid: c.domid, disk: c.disk, backend: i.ref, reason: text + note });
    return;
  }
  out.finding(kind, 'warning', `${c.dom.name} ${c.disk.vdev}: backend ${text}`, 'apply with prune replaces the backend', f);
}
