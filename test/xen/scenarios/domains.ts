// A guest domain's life in xenstore, real vs simulated: `xl create` of a small PV guest (Debian's kernel
// + a busybox initramfs, from the lab's images shared at /xvbd-lab) and `xl destroy`, against the
// simulator's addDomain()/removeDomain(). Compared: every node libxl, xenstored and the running guest's
// kernel make under /local/domain/<domid>, /vm/<uuid> and /libxl/<domid> (names, permissions, values with
// the domid, uuid and ring/port numbers normalized), the @introduceDomain/@releaseDomain events, and
// that the three dirs are gone after the destroy.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { XenScenario } from '../framework.js';
import { sh, waitFor } from '../lib/dom0.js';
import { RawXs, XS_TYPES, typeName, z } from '../lib/rawxs.js';

const NAME = 'xvbd-d1';
/** values that differ by nature from one domain to the next */
const VARIABLE = /^(store\/(ring-ref|port)|console\/(ring-ref|port|tty)|device\/suspend\/event-channel|vm\/[^/]+\/start_time|.*\/uuid|image\/.*|.*start_time)$/;

interface Tree {
  /** relative path -> "value (perms)" with the domid, uuid and variable numbers normalized */
  nodes: Record<string, string>;
}

interface DomRecord {
  domid: number;
  afterCreate: Record<string, Tree | null>;
  afterDestroy: Record<string, boolean>;
  /** watch events on @introduceDomain / @releaseDomain after create, and after destroy */
  eventsCreate: string[];
  eventsDestroy: string[];
}

interface Norm {
  value(rel: string, v: string): string;
  perms(p: string): string;
}

async function tree(xs: RawXs, root: string, norm: Norm, rel = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const path = rel ? `${root}/${rel}` : root;
  const [v, p, d] = await Promise.all([
    xs.call(XS_TYPES.READ, z(path)),
    xs.call(XS_TYPES.GET_PERMS, z(path)),
    xs.call(XS_TYPES.DIRECTORY, z(path)),
  ]);
  if (v.type === XS_TYPES.ERROR) return out;
  const perms = p.type === XS_TYPES.ERROR ? '?' : norm.perms(p.payload.toString('utf8').split('\0').filter(Boolean).join(','));
  const value = VARIABLE.test(rel) ? '<variable>' : norm.value(rel, v.payload.toString('utf8'));
  out[rel || '.'] = `${JSON.stringify(value)} (${perms})`;
  if (d.type === XS_TYPES.ERROR) return out;
  for (const k of d.payload.toString('utf8').split('\0').filter(Boolean).sort()) {
    Object.assign(out, await tree(xs, root, norm, rel ? `${rel}/${k}` : k));
  }
  return out;
}

async function snapshot(xs: RawXs, domid: number, uuid: string): Promise<Record<string, Tree | null>> {
  // the domid is normalized in permissions, in paths, and in nodes that hold a domain id; a value such
  // as state "1" stays what it is even when the domid is 1
  const norm: Norm = {
    perms: (p) => p.replace(new RegExp(`(?<=[nrwb])${domid}(?![0-9])`, 'g'), '<domid>'),
    value: (rel, v) => {
      const u = v.split(uuid).join('<uuid>');
      if (/(^|\/)(domid|frontend-id|target)$/.test(rel) && u === String(domid)) return '<domid>';
      return u.replace(new RegExp(`(?<=/)${domid}(?=/|$)`, 'g'), '<domid>');
    },
  };
  const out: Record<string, Tree | null> = {};
  for (const [k, root] of [
    ['/local/domain/<domid>', `/local/domain/${domid}`],
    ['/vm/<uuid>', `/vm/${uuid}`],
    ['/libxl/<domid>', `/libxl/${domid}`],
  ] as const) {
    const nodes = await tree(xs, root, norm);
    out[k] = Object.keys(nodes).length > 0 ? { nodes } : null;
  }
  return out;
}

const eventsSince = (x: RawXs, from: number) =>
  x.inbox
    .slice(from)
    .filter((m) => m.type === XS_TYPES.WATCH_EVENT)
    .map((m) => m.payload.toString('utf8').split('\0')[0]!);

async function watchSpecial(socket: string): Promise<RawXs> {
  const w = await RawXs.open(socket);
  for (const p of ['@introduceDomain', '@releaseDomain']) {
    const r = await w.call(XS_TYPES.WATCH, z(p, p));
    if (r.type !== XS_TYPES.WATCH) throw new Error(`watch ${p}: ${typeName(r.type)} ${r.payload.toString()}`);
  }
  await w.quiet(300); // the initial firings
  return w;
}

async function domPaths(xs: RawXs, domid: number): Promise<string> {
  const vm = await xs.call(XS_TYPES.READ, z(`/local/domain/${domid}/vm`));
  assert.notEqual(vm.type, XS_TYPES.ERROR, `/local/domain/${domid}/vm missing`);
  return vm.payload.toString('utf8').replace(/^\/vm\//, '');
}

function compareTrees(real: Record<string, Tree | null>, sim: Record<string, Tree | null>): string[] {
  const out: string[] = [];
  for (const k of Object.keys(real)) {
    const a = real[k]?.nodes ?? {};
    const b = sim[k]?.nodes ?? {};
    if (!real[k] !== !sim[k]) out.push(`${k}: real ${real[k] ? 'present' : 'absent'}, simulator ${sim[k] ? 'present' : 'absent'}`);
    for (const n of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (a[n] !== b[n]) out.push(`${k}/${n}: real ${a[n] ?? '(absent)'}, simulator ${b[n] ?? '(absent)'}`);
    }
  }
  return out;
}

export const scenario: XenScenario = {
  description: 'a PV guest created and destroyed with xl (real) vs the simulator\'s addDomain/removeDomain: nodes, perms, events',
  async xen(t) {
    await t.test(`record xl create / xl destroy of a PV guest "${NAME}"`, async () => {
      const cfg = join(t.tmpDir, `${NAME}.cfg`);
      writeFileSync(
        cfg,
        [
          `name = "${NAME}"`,
          'type = "pv"',
          'kernel = "/xvbd-lab/vmlinuz"',
          'ramdisk = "/xvbd-lab/domu-initrd.cpio.gz"',
          'extra = "console=hvc0 loglevel=4"',
          'memory = 128',
          'vcpus = 1',
          'on_poweroff = "destroy"',
          'on_crash = "destroy"',
          '',
        ].join('\n'),
      );
      const xs = await RawXs.open(t.xenstoredSocket);
      const w = await watchSpecial(t.xenstoredSocket);
      try {
        let from = w.inbox.length;
        const t0 = Date.now();
        await sh('xl', ['create', cfg], { timeoutMs: 120_000 });
        const domid = Number(await sh('xl', ['domid', NAME]));
        // the guest's kernel announces itself (control/feature-*): libxl creates those nodes empty for the
        // guest to fill in, and the kernel writes them one after the other. Wait for every one the snapshot
        // compares, not for the first and a pause: the snapshot is of the state, not of a moment.
        const features = ['feature-poweroff', 'feature-reboot', 'feature-suspend'];
        await waitFor(async () => {
          for (const f of features) {
            const r = await xs.call(XS_TYPES.READ, z(`/local/domain/${domid}/control/${f}`));
            if (r.type === XS_TYPES.ERROR || r.payload.toString('utf8').replace(/\0$/, '') === '') return false;
          }
          return true;
        }, `the guest kernel to write control/{${features.join(',')}}`, { timeoutMs: 90_000, intervalMs: 500 });
        t.log(`xl create -> guest up: ${Date.now() - t0} ms (domid ${domid})`);
        const uuid = await domPaths(xs, domid);
        const afterCreate = await snapshot(xs, domid, uuid);
        await w.quiet(300);
        const eventsCreate = eventsSince(w, from);
        from = w.inbox.length;
        await sh('xl', ['destroy', NAME], { timeoutMs: 60_000 });
        await w.quiet(500);
        const eventsDestroy = eventsSince(w, from);
        const afterDestroy: Record<string, boolean> = {};
        for (const [k, p] of [['/local/domain/<domid>', `/local/domain/${domid}`], ['/vm/<uuid>', `/vm/${uuid}`], ['/libxl/<domid>', `/libxl/${domid}`]] as const) {
          afterDestroy[k] = (await xs.call(XS_TYPES.READ, z(p))).type !== XS_TYPES.ERROR;
        }
        const rec: DomRecord = { domid, afterCreate, afterDestroy, eventsCreate, eventsDestroy };
        t.record('domain', rec);
        t.log(`nodes: ${Object.entries(afterCreate).map(([k, v]) => `${k} ${v ? Object.keys(v.nodes).length : 0}`).join(', ')}; events on create ${eventsCreate.join(' ')}, on destroy ${eventsDestroy.join(' ')}`);
        assert.ok(afterCreate['/local/domain/<domid>'], 'no /local/domain/<domid> after xl create');
      } finally {
        await sh('xl', ['destroy', NAME]).catch(() => undefined);
        xs.close();
        w.close();
      }
    }, { timeoutMs: 240_000 });
  },
  async host(t) {
    const { startSimulator } = await import('../../../src/sim/index.js');
    const sim = await startSimulator({ socketPath: join(t.tmpDir, 'xs.sock') });
    const xs = await RawXs.open(sim.socketPath);
    const w = await watchSpecial(sim.socketPath);
    try {
      const real = t.recorded<DomRecord>('domain');
      await t.test('guest domain nodes, permissions and events: simulator == real xl create/destroy', async () => {
        assert.ok(real, 'no recording from real Xen (its xen part failed)');
        let from = w.inbox.length;
        const domid = sim.addDomain(NAME);
        await sim.settle();
        await w.quiet(100);
        const eventsCreate = eventsSince(w, from);
        const uuid = await domPaths(xs, domid);
        const afterCreate = await snapshot(xs, domid, uuid);
        from = w.inbox.length;
        sim.removeDomain(domid);
        await sim.settle();
        await w.quiet(100);
        const eventsDestroy = eventsSince(w, from);
        const afterDestroy: Record<string, boolean> = {};
        for (const [k, p] of [['/local/domain/<domid>', `/local/domain/${domid}`], ['/vm/<uuid>', `/vm/${uuid}`], ['/libxl/<domid>', `/libxl/${domid}`]] as const) {
          afterDestroy[k] = (await xs.call(XS_TYPES.READ, z(p))).type !== XS_TYPES.ERROR;
        }
        const diffs = compareTrees(real.afterCreate, afterCreate);
        if (JSON.stringify(real.eventsCreate) !== JSON.stringify(eventsCreate)) diffs.push(`events on create: real ${real.eventsCreate.join(' ')}, simulator ${eventsCreate.join(' ')}`);
        if (JSON.stringify(real.eventsDestroy) !== JSON.stringify(eventsDestroy)) diffs.push(`events on destroy: real ${real.eventsDestroy.join(' ')}, simulator ${eventsDestroy.join(' ')}`);
        if (JSON.stringify(real.afterDestroy) !== JSON.stringify(afterDestroy)) diffs.push(`left after destroy: real ${JSON.stringify(real.afterDestroy)}, simulator ${JSON.stringify(afterDestroy)}`);
        assert.ok(diffs.length === 0, `${diffs.length} differences:\n${diffs.join('\n')}`);
      });
    } finally {
      xs.close();
      w.close();
      await sim.close();
    }
  },
};
