// Small builders for planner table tests: desired disks, observed domains / backends / loops /
// sources, and converged(): the observed state a perfect apply leaves behind.
import type { DesiredState, DiskMode, DiskSpec, Policy } from '../../src/model/desired.js';
import { DEFAULT_POLICY } from '../../src/model/desired.js';
import type { BackendObs, LoopObs, ObservedState, SourceObs } from '../../src/model/observed.js';
import type { Plan } from '../../src/model/plan.js';

export const DEV = '2049';

/** xvda -> 51712, xvdb -> 51728 ... (single letters only, enough for tests). */
export function xvd(vdev: string): number {
  const m = /^xvd([a-z])$/.exec(vdev);
  if (!m) throw new Error(`test vdev ${vdev}`);
  return (202 << 8) | ((m[1]!.charCodeAt(0) - 97) << 4);
}

export function disk(vdev: string, source: string, mode: DiskMode = 'rw', over: Partial<DiskSpec> = {}): DiskSpec {
  return {
    vdev,
    devid: over.devid ?? (/^xvd[a-z]$/.test(vdev) ? xvd(vdev) : 0),
    source,
    sourceKind: 'file',
    mode,
    options: { directIo: false, discard: false },
    backendDomid: 0,
    at: { file: '/etc/xvbd/test.yaml', line: 1, column: 1 },
    ...over,
  };
}

export function policy(over: Partial<Policy> = {}): Policy {
  return { ...DEFAULT_POLICY, ...over };
}

export function desired(domains: Record<string, DiskSpec[]>, pol: Partial<Policy> = {}): DesiredState {
  return {
    domains: Object.entries(domains).map(([name, disks]) => ({ name, disks, at: { file: '/etc/xvbd/test.yaml', line: 1, column: 1 } })),
    policy: policy(pol),
  };
}

export function fileSrc(path: string, ino: number | string, over: Partial<SourceObs> = {}): SourceObs {
  return { path, exists: true, kind: 'file', inode: { dev: DEV, ino: String(ino) }, mounted: false, ...over };
}

export function blockSrc(path: string, rdev: string, over: Partial<SourceObs> = {}): SourceObs {
  return { path, exists: true, kind: 'block', inode: { dev: '5', ino: '999' }, rdev, mounted: false, ...over };
}

export function loop(number: number, ino: number | string, over: Partial<LoopObs> = {}): LoopObs {
  return {
    name: `loop${number}`,
    number,
    major: 7,
    minor: number,
    diskseq: String(100 + number),
    backing: { dev: DEV, ino: String(ino) },
    backingPath: `/srv/file-${ino}.img`,
    backingDeleted: false,
    readOnly: false,
    autoclear: true,
    directIo: false,
    blockSize: 512,
    offset: '0',
    sizeLimit: '0',
    ours: true,
    mounted: false,
    holders: [],
    heldByUs: true,
    ...over,
  };
}

/** A connected backend of ours served by loop l. */
export function backend(fe: number, vdev: string | number, over: Partial<BackendObs> = {}, l?: LoopObs): BackendObs {
  const devid = typeof vdev === 'number' ? vdev : xvd(vdev);
  const path = `/local/domain/${over.backendDomid ?? 0}/backend/vbd/${fe}/${devid}`;
  const b: BackendObs = {
    backendDomid: 0,
    frontendDomid: fe,
    devid,
    path,
    params: l ? l.backingPath : undefined,
    mode: l ? (l.readOnly ? 'r' : 'w') : 'w',
    type: 'phy',
    state: 4,
    online: true,
    hotplugStatus: 'connected',
    ours: true,
    frontendPath: `/local/domain/${fe}/device/vbd/${devid}`,
    frontendState: 4,
    kernelHeld: true,
    ...over,
  };
  if (l && over.physicalDevice === undefined) {
    b.physicalDevice = `${l.major.toString(16)}:${l.minor.toString(16)}`;
    b.physicalDevicePath = `/dev/${l.name}`;
    // an explicit `diskseq: undefined` / `sourceInode: undefined` means "not recorded" (another tool's backend)
    if (!('diskseq' in over)) b.diskseq = l.diskseq;
    else if (over.diskseq === undefined) delete b.diskseq;
    if (!('sourceInode' in over)) b.sourceInode = { ...l.backing };
    else if (over.sourceInode === undefined) delete b.sourceInode;
  }
  return b;
}

export function observed(o: Partial<ObservedState> & { domains?: ObservedState['domains'] }): ObservedState {
  return { takenAt: 0, domains: [], backends: [], loops: [], sources: {}, ...o };
}

export function sources(...s: SourceObs[]): Record<string, SourceObs> {
  const out: Record<string, SourceObs> = {};
  for (const x of s) out[x.path] = x;
  return out;
}

/**
 * The observed state after a perfect apply of `d`: every disk of every running domain (domids by
 * name) has a connected backend of ours; read-only disks of one file share one loop device.
 */
export function converged(d: DesiredState, domids: Record<string, number>, inodes: Record<string, number>): ObservedState {
  const obs = observed({ domains: [{ domid: 0, name: 'Domain-0' }, ...Object.entries(domids).map(([name, domid]) => ({ domid, name }))] });
  const roLoop = new Map<string, LoopObs>();
  let n = 0;
  for (const dom of d.domains) {
    const domid = domids[dom.name];
    for (const dk of dom.disks) {
      const ino = inodes[dk.source]!;
      obs.sources[dk.source] = fileSrc(dk.source, ino);
      if (domid === undefined) continue;
      let l = dk.mode === 'ro' ? roLoop.get(dk.source) : undefined;
      if (!l) {
        l = loop(n++, ino, { readOnly: dk.mode === 'ro', backingPath: dk.source });
        obs.loops.push(l);
        if (dk.mode === 'ro') roLoop.set(dk.source, l);
      }
      obs.backends.push(backend(domid, dk.vdev, { devid: dk.devid, params: dk.source }, l));
    }
  }
  return obs;
}

/** "attach web xvda", "free-loop loop3", ... */
export function actionLines(p: Plan): string[] {
  return p.actions.map((a) => {
    switch (a.kind) {
      case 'attach':
      case 'serve':
      case 'replace':
        return `${a.kind} ${a.domain} ${a.disk.vdev}${a.reuseLoop ? ` reuse=${a.reuseLoop.name}` : ''}`;
      case 'detach':
        return `detach ${a.domain ?? `#${a.backend.frontendDomid}`} ${a.backend.devid}`;
      case 'free-loop':
        return `free-loop ${a.loop.name}`;
      case 'hold':
        return `hold ${a.domain ?? `#${a.backend.frontendDomid}`} ${a.backend.devid} ${a.loop.name}`;
      case 'offline':
        return `${a.close ? 'close' : 'offline'} ${a.domain ?? `#${a.backend.frontendDomid}`} ${a.backend.devid}`;
      case 'reprobe':
        return `reprobe ${a.domain} ${a.backend.devid}`;
    }
  });
}

/** "rw-shared", "missing-backend web xvda", ... */
export function findingLines(p: Plan): string[] {
  return p.findings.map((f) => [f.kind, f.severity, f.domain, f.vdev].filter((x) => x !== undefined).join(' '));
}

/** Fisher-Yates with a seeded LCG: reproducible shuffles. */
export function shuffled<T>(xs: T[], seed: number): T[] {
  const a = [...xs];
  let s = seed >>> 0;
  for (let i = a.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * A converged host of `domains` x `perDomain` disks (the last disk of each domain is one read-only base
 * image shared by all), with prune on: what a no-op plan looks like at scale (test and bench).
 */
export function bigConvergedHost(domains = 100, perDomain = 10): { desired: DesiredState; observed: ObservedState } {
  const doms: Record<string, DiskSpec[]> = {};
  const ino: Record<string, number> = {};
  const domids: Record<string, number> = {};
  for (let i = 0; i < domains; i++) {
    const name = `vm${String(i).padStart(3, '0')}`;
    domids[name] = i + 1;
    doms[name] = [];
    for (let j = 0; j < perDomain; j++) {
      const ro = j === perDomain - 1;
      const src = ro ? '/srv/base.img' : `/srv/${name}-${j}.img`;
      ino[src] = ro ? 1 : 1000 + i * perDomain + j;
      doms[name]!.push(disk(`xvd${String.fromCharCode(97 + j)}`, src, ro ? 'ro' : 'rw'));
    }
  }
  const d = desired(doms, { prune: true });
  return { desired: d, observed: converged(d, domids, ino) };
}
