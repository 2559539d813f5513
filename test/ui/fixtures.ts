// Fixture desired/observed/plan triples for the TUI tests: a small host as the planner would
// describe it (written by hand, so the UI tests do not depend on the planner's rules).
import type { DesiredState, DiskSpec } from '../../src/model/desired.js';
import { DEFAULT_POLICY } from '../../src/model/desired.js';
import type { BackendObs, LoopObs, ObservedState } from '../../src/model/observed.js';
import type { DiskStatus, Finding, Plan } from '../../src/model/plan.js';
import { backend as planBackend, disk as planDisk, loop as planLoop } from '../plan/fixtures.js';

export const IMG = '/var/lib/xvbd/images';

export function disk(vdev: string, devid: number, source: string, mode: 'ro' | 'rw', line = 3): DiskSpec {
  return planDisk(vdev, source, mode, { devid, at: { file: 'host.yaml', line, column: 5 } });
}

/** A connected backend of ours on /dev/loop0 (the planner tests' builder, with the TUI host's defaults). */
export function backend(fe: number, devid: number, over: Partial<BackendObs> = {}): BackendObs {
  return planBackend(fe, devid, {
    params: `${IMG}/x.img`,
    physicalDevice: '7:0',
    physicalDevicePath: '/dev/loop0',
    diskseq: '100',
    sourceInode: { dev: '2049', ino: '11' },
    ...over,
  });
}

export function loop(n: number, diskseq: string, over: Partial<LoopObs> = {}): LoopObs {
  return planLoop(n, 10 + n, { diskseq, backingPath: `${IMG}/file${n}.img`, heldByUs: false, ...over });
}

/**
 * The host: web (domid 1) and db (domid 2) running, build desired but not running.
 * web/xvda healthy, web/xvdb and db/xvdb share the read-only template's loop1,
 * db/xvda degraded (blkback error), db/xvdc missing (to attach), an undesired backend of ours
 * on web devid 51744 (xvdc) to detach, a leaked loop7.
 */
export function host(): { desired: DesiredState; observed: ObservedState; plan: Plan } {
  const webA = disk('xvda', 51712, `${IMG}/web.img`, 'rw', 4);
  const webB = disk('xvdb', 51728, `${IMG}/template.img`, 'ro', 5);
  const dbA = disk('xvda', 51712, `${IMG}/db.img`, 'rw', 8);
  const dbB = disk('xvdb', 51728, `${IMG}/template.img`, 'ro', 9);
  const dbC = disk('xvdc', 51744, `${IMG}/db-data.img`, 'rw', 10);
  const buildA = disk('xvda', 51712, `${IMG}/build.img`, 'rw', 13);
  const desired: DesiredState = {
    domains: [
      { name: 'build', disks: [buildA], at: { file: 'host.yaml', line: 12, column: 3 } },
      { name: 'db', disks: [dbA, dbB, dbC], at: { file: 'host.yaml', line: 7, column: 3 } },
      { name: 'web', disks: [webA, webB], at: { file: 'host.yaml', line: 2, column: 3 } },
    ],
    policy: { ...DEFAULT_POLICY, prune: true },
  };
  const l0 = loop(0, '100', { backingPath: `${IMG}/web.img` });
  const l1 = loop(1, '101', { backingPath: `${IMG}/template.img`, readOnly: true });
  const l2 = loop(2, '102', { backingPath: `${IMG}/db.img` });
  const l3 = loop(3, '103', { backingPath: `${IMG}/old.img` });
  const l7 = loop(7, '107', { backingPath: `${IMG}/leaked.img` });
  const bWebA = backend(1, 51712, { params: webA.source, diskseq: '100' });
  const bWebB = backend(1, 51728, { params: webB.source, mode: 'r', physicalDevice: '7:1', physicalDevicePath: '/dev/loop1', diskseq: '101' });
  const bWebC = backend(1, 51744, { params: `${IMG}/old.img`, physicalDevice: '7:3', physicalDevicePath: '/dev/loop3', diskseq: '103' });
  const bDbA = backend(2, 51712, {
    params: dbA.source,
    physicalDevice: '7:2',
    physicalDevicePath: '/dev/loop2',
    diskseq: '102',
    state: 5,
    frontendState: 3,
    error: '22 reading /local/domain/2/device/vbd/51712/event-channel',
  });
  const bDbB = backend(2, 51728, { params: dbB.source, mode: 'r', physicalDevice: '7:1', physicalDevicePath: '/dev/loop1', diskseq: '101', state: 2, frontendState: 1 });
  const observed: ObservedState = {
    takenAt: 1234,
    domains: [
      { domid: 0, name: 'Domain-0' },
      { domid: 1, name: 'web' },
      { domid: 2, name: 'db' },
    ],
    backends: [bWebA, bWebB, bWebC, bDbA, bDbB],
    loops: [l0, l1, l2, l3, l7],
    sources: {},
  };
  const ref = (b: BackendObs) => ({ path: b.path, backendDomid: 0, frontendDomid: b.frontendDomid, devid: b.devid, diskseq: b.diskseq! });
  const lref = (l: LoopObs) => ({ name: l.name, diskseq: l.diskseq, backing: l.backing });
  const disks: DiskStatus[] = [
    { domain: 'build', vdev: 'xvda', devid: 51712, source: buildA.source, mode: 'rw', sync: 'pending', health: 'missing', healthReason: 'domain build is not running', sharedBy: 0 },
    { domain: 'db', domid: 2, vdev: 'xvda', devid: 51712, source: dbA.source, mode: 'rw', sync: 'synced', health: 'degraded', healthReason: 'backend error: 22 reading /local/domain/2/device/vbd/51712/event-channel', backend: ref(bDbA), loop: lref(l2), sharedBy: 1, backendState: 5, frontendState: 3 },
    { domain: 'db', domid: 2, vdev: 'xvdb', devid: 51728, source: dbB.source, mode: 'ro', sync: 'synced', health: 'progressing', healthReason: 'backend InitWait, frontend Initialising', backend: ref(bDbB), loop: lref(l1), sharedBy: 2, backendState: 2, frontendState: 1 },
    { domain: 'db', domid: 2, vdev: 'xvdc', devid: 51744, source: dbC.source, mode: 'rw', sync: 'out-of-sync', health: 'missing', healthReason: 'no backend', sharedBy: 0 },
    { domain: 'web', domid: 1, vdev: 'xvda', devid: 51712, source: webA.source, mode: 'rw', sync: 'synced', health: 'healthy', backend: ref(bWebA), loop: lref(l0), sharedBy: 1, backendState: 4, frontendState: 4 },
    { domain: 'web', domid: 1, vdev: 'xvdb', devid: 51728, source: webB.source, mode: 'ro', sync: 'synced', health: 'healthy', backend: ref(bWebB), loop: lref(l1), sharedBy: 2, backendState: 4, frontendState: 4 },
    { domain: 'web', domid: 1, vdev: 'xvdc', devid: 51744, source: `${IMG}/old.img`, mode: 'rw', sync: 'out-of-sync', health: 'healthy', backend: ref(bWebC), loop: lref(l3), sharedBy: 1, backendState: 4, frontendState: 4 },
  ];
  const findings: Finding[] = [
    { kind: 'domain-not-running', severity: 'info', message: 'domain build is not running; its disks are pending', fix: 'start the domain', domain: 'build' },
    { kind: 'backend-error', severity: 'error', message: 'blkback reports: 22 reading /local/domain/2/device/vbd/51712/event-channel', fix: 'check the guest frontend', domain: 'db', vdev: 'xvda', backend: ref(bDbA) },
    { kind: 'missing-backend', severity: 'warning', message: 'db/xvdc has no backend', fix: 'apply', domain: 'db', vdev: 'xvdc' },
    { kind: 'unexpected-backend', severity: 'warning', message: 'backend of ours for web devid 51744 is not desired', fix: 'apply with prune', backend: ref(bWebC) },
    { kind: 'loop-leaked', severity: 'warning', message: 'loop7 is ours and nothing uses it', fix: 'apply with prune', loops: [lref(l7)] },
  ];
  const plan: Plan = {
    actions: [
      { kind: 'attach', domain: 'db', domid: 2, disk: dbC },
      { kind: 'detach', domain: 'web', backend: ref(bWebC), reason: 'not desired (prune)' },
      { kind: 'free-loop', loop: lref(l7), reason: 'ours, unused (prune)' },
    ],
    findings,
    disks,
  };
  return { desired, observed, plan };
}

/** A host where everything is in sync and healthy: nothing to do. */
export function cleanHost(): { desired: DesiredState; observed: ObservedState; plan: Plan } {
  const h = host();
  const disks = h.plan.disks
    .filter((d) => d.domain === 'web' && d.vdev !== 'xvdc')
    .map((d) => ({ ...d }));
  const desired: DesiredState = { ...h.desired, domains: h.desired.domains.filter((d) => d.name === 'web') };
  return { desired, observed: { ...h.observed, backends: h.observed.backends.slice(0, 2), loops: h.observed.loops.slice(0, 2) }, plan: { actions: [], findings: [], disks } };
}

/** n domains x k disks, all healthy (for the performance and windowing tests). */
export function bigHost(nDomains: number, perDomain: number): { desired: DesiredState; observed: ObservedState; plan: Plan } {
  const domains: DesiredState['domains'] = [];
  const backends: BackendObs[] = [];
  const loops: LoopObs[] = [];
  const disks: DiskStatus[] = [];
  const names: { domid: number; name: string }[] = [];
  for (let d = 0; d < nDomains; d++) {
    const name = `vm${String(d).padStart(3, '0')}`;
    names.push({ domid: d + 1, name });
    const ds: DiskSpec[] = [];
    for (let k = 0; k < perDomain; k++) {
      const devid = 51712 + 16 * k;
      const vdev = `xvd${String.fromCharCode(97 + k)}`;
      const n = d * perDomain + k;
      const spec = disk(vdev, devid, `${IMG}/${name}-${vdev}.img`, 'rw');
      ds.push(spec);
      const b = backend(d + 1, devid, { params: spec.source, diskseq: String(1000 + n), physicalDevicePath: `/dev/loop${n}` });
      backends.push(b);
      const l = loop(n, String(1000 + n), { backingPath: spec.source });
      loops.push(l);
      disks.push({
        domain: name, domid: d + 1, vdev, devid, source: spec.source, mode: 'rw', sync: 'synced', health: 'healthy',
        backend: { path: b.path, backendDomid: 0, frontendDomid: d + 1, devid, diskseq: b.diskseq! },
        loop: { name: l.name, diskseq: l.diskseq, backing: l.backing }, sharedBy: 1, backendState: 4, frontendState: 4,
      });
    }
    domains.push({ name, disks: ds, at: { file: 'big.yaml', line: 1 + d, column: 1 } });
  }
  return {
    desired: { domains, policy: DEFAULT_POLICY },
    observed: { takenAt: 0, domains: names, backends, loops, sources: {} },
    plan: { actions: [], findings: [], disks },
  };
}
