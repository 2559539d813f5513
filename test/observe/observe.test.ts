// observe() against the real simulator over its socket, nodes written with the real xenstore-write,
// real loop devices of our own; then plan() on what was observed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/xenstore/client.js';
import { listLoops, mountedDevices } from '../../src/linux/list.js';
import { observe, observeSources } from '../../src/observe/index.js';
import { observeFor } from '../../src/wire/snapshot.js';
import { plan } from '../../src/plan/index.js';
import { DEFAULT_POLICY, type DesiredState } from '../../src/model/desired.js';
import { setup } from './helpers.js';

const XVDA = 51712;
const XVDB = 51728;

function desiredOf(domains: Record<string, { vdev: string; devid: number; source: string; mode: 'ro' | 'rw' }[]>): DesiredState {
  const at = { file: 'test.yaml', line: 1, column: 1 };
  return {
    policy: { ...DEFAULT_POLICY },
    domains: Object.entries(domains).map(([name, disks]) => ({
      name,
      at,
      disks: disks.map((d) => ({ ...d, sourceKind: 'file' as const, options: { directIo: false, discard: false }, backendDomid: 0, at })),
    })),
  };
}

test('observe: a served backend, its frontend, blkback holding it, our loop device, the sources', async () => {
  const e = await setup('served', [
    { name: 'web', domid: 3 },
    { name: 'db', domid: 4 },
  ]);
  const xs = await connect({ path: e.sim.socketPath });
  try {
    const a = e.image('a.img');
    const l = await e.loop(a, false);
    const ino = e.inode(a);
    await e.vbd(
      3,
      XVDA,
      {
        params: a,
        mode: 'w',
        'physical-device': l.hex,
        'physical-device-path': `/dev/${l.name}`,
        node: `/dev/${l.name}`,
        diskseq: l.diskseq,
        xvbd: '1',
        'xvbd-inode': `${ino.dev}:${ino.ino}`,
        'hotplug-status': 'connected',
      },
    );
    await e.sim.settle();
    const deps = { xs, loops: () => listLoops(), sources: [a, join(e.dir, 'missing.img')], xenBackendSysfs: e.sim.sysfsDir };
    const obs = await observe(deps);

    assert.deepEqual(
      obs.domains.filter((d) => d.domid !== 0),
      [
        { domid: 3, name: 'web' },
        { domid: 4, name: 'db' },
      ],
    );
    assert.equal(obs.backends.length, 1);
    const b = obs.backends[0]!;
    assert.equal(b.path, `/local/domain/0/backend/vbd/3/${XVDA}`);
    assert.equal(b.frontendDomid, 3);
    assert.equal(b.devid, XVDA);
    assert.equal(b.params, a);
    assert.equal(b.mode, 'w');
    assert.equal(b.physicalDevice, l.hex);
    assert.equal(b.diskseq, l.diskseq);
    assert.deepEqual(b.sourceInode, ino);
    assert.equal(b.ours, true);
    assert.equal(b.state, 2, 'the simulated blkback probed it (InitWait)');
    assert.equal(b.frontendState, 1);
    assert.equal(b.kernelHeld, true, 'blkback opened the device (sysfs physical_device)');
    assert.equal(b.hotplugStatus, 'connected');
    assert.equal(b.malformed, undefined);
    const lo = obs.loops.find((x) => x.name === l.name)!;
    assert.ok(lo, 'our loop device is listed');
    assert.equal(lo.ours, true);
    assert.equal(lo.diskseq, l.diskseq);
    assert.deepEqual(lo.backing, ino);
    assert.deepEqual(obs.sources[a], { path: a, exists: true, kind: 'file', inode: ino, mounted: false });
    assert.equal(obs.sources[join(e.dir, 'missing.img')]!.exists, false);

    // Planned on this observation: synced, progressing (frontend not connected yet).
    const d = desiredOf({ web: [{ vdev: 'xvda', devid: XVDA, source: a, mode: 'rw' }] });
    let p = plan(d, obs, d.policy);
    assert.deepEqual(p.actions, []);
    assert.deepEqual(p.findings.filter((f) => f.domain !== undefined), []);
    assert.equal(p.disks[0]!.sync, 'synced');
    assert.equal(p.disks[0]!.health, 'progressing');
    assert.equal(p.disks[0]!.loop?.name, l.name);

    // The guest connects: healthy. Transaction and plain reads agree.
    await e.sim.frontend(3, XVDA).connect();
    await e.sim.settle();
    const o2 = await observe(deps);
    const o3 = await observe({ ...deps, transaction: false });
    // (the xenstore half: host-wide loop devices of other tests may come and go in between)
    assert.deepEqual([o2.domains, o2.backends, o2.sources], [o3.domains, o3.backends, o3.sources]);
    assert.equal(o2.backends[0]!.state, 4);
    assert.equal(o2.backends[0]!.frontendState, 4);
    p = plan(d, o2, d.policy);
    assert.equal(p.disks[0]!.health, 'healthy');

    // Gone: backend and frontend removed -> blkback lets go; the loop is ours and unused.
    await e.rm(`/local/domain/0/backend/vbd/3/${XVDA}`);
    await e.rm(`/local/domain/3/device/vbd/${XVDA}`);
    await e.sim.settle();
    const o4 = await observe(deps);
    assert.equal(o4.backends.length, 0);
    // frees are limited to allowedRoots: the files of this test
    p = plan(desiredOf({}), o4, { ...DEFAULT_POLICY, prune: true, allowedRoots: [e.dir] });
    assert.ok(p.actions.some((x) => x.kind === 'free-loop' && x.loop.name === l.name && x.loop.diskseq === l.diskseq));
  } finally {
    await xs.close();
    await e.close();
  }
});

test('observe: garbage written by a guest or a broken tool is parsed strictly, never thrown', async () => {
  const e = await setup('garbage', [
    { name: 'web', domid: 3 },
    { name: 'db', domid: 4 },
  ]);
  const xs = await connect({ path: e.sim.socketPath });
  try {
    const a = e.image('a.img');
    await e.vbd(4, XVDB, { params: a, mode: 'r', diskseq: '-1', 'xvbd-inode': 'x:y', 'physical-device': '/dev/loop0' });
    await e.sim.settle();
    // The guest owns its frontend dir: it writes garbage as its state.
    const cases: [string, number | undefined][] = [
      ['4', 4],
      ['04', undefined],
      [' 4', undefined],
      ['4\n', undefined],
      ['9', undefined],
      ['0', undefined],
      ['', undefined],
      ['4; rm -rf /', undefined],
      ['x'.repeat(3000), undefined],
    ];
    for (const [raw, want] of cases) {
      e.sim.write(`/local/domain/4/device/vbd/${XVDB}/state`, raw, 4);
      const obs = await observe({ xs, loops: () => [], sources: [], xenBackendSysfs: e.sim.sysfsDir });
      const b = obs.backends.find((x) => x.frontendDomid === 4)!;
      assert.equal(b.frontendState, want, JSON.stringify(raw.slice(0, 20)));
      const frontendComplaint = (b.malformed ?? []).find((m) => m.startsWith('frontend state'));
      assert.equal(frontendComplaint !== undefined, want === undefined, JSON.stringify(b.malformed));
      if (frontendComplaint) assert.ok(frontendComplaint.length < 200, 'garbage is cut short in messages');
      assert.equal(b.diskseq, undefined);
      assert.equal(b.sourceInode, undefined);
      assert.equal(b.physicalDevice, undefined);
      assert.equal(b.malformed!.filter((m) => !m.startsWith('frontend state')).length, 3);
    }
    // A domain name with control characters and an error node from blkback.
    e.sim.write('/local/domain/3/name', 'web\u001b[31m');
    e.sim.write(`/local/domain/0/error/backend/vbd/4/${XVDB}/error`, '22 reading /local/domain/4/device/vbd/51728/event-channel');
    const obs = await observe({ xs, loops: () => [], sources: [], xenBackendSysfs: e.sim.sysfsDir });
    assert.equal(obs.domains.find((d) => d.domid === 3)!.name, undefined);
    const b = obs.backends[0]!;
    assert.match(b.error!, /^22 reading/);
    const d = desiredOf({ db: [{ vdev: 'xvdb', devid: XVDB, source: a, mode: 'ro' }] });
    const p = plan(d, { ...obs, sources: { [a]: { path: a, exists: true, kind: 'file', inode: e.inode(a), mounted: false } } }, d.policy);
    assert.ok(p.findings.some((f) => f.kind === 'backend-error' && f.severity === 'error'));
    assert.ok(p.findings.some((f) => f.kind === 'backend-error' && /diskseq "-1"/.test(f.message)));
    assert.equal(p.disks[0]!.health, 'degraded');
  } finally {
    await xs.close();
    await e.close();
  }
});

test('observe: sources: file, missing, directory, symlink, symlinked parent, block device', async () => {
  const e = await setup('sources', [{ name: 'web', domid: 3 }]);
  const xs = await connect({ path: e.sim.socketPath });
  try {
    const a = e.image('a.img');
    mkdirSync(join(e.dir, 'sub'));
    symlinkSync(a, join(e.dir, 'link.img'));
    symlinkSync(join(e.dir, 'sub'), join(e.dir, 'sublink'));
    e.image('sub/b.img');
    const l = await e.loop(a, true);
    const paths = [a, join(e.dir, 'nope.img'), join(e.dir, 'sub'), join(e.dir, 'link.img'), join(e.dir, 'sublink/b.img'), `/dev/${l.name}`];
    const obs = await observe({ xs, loops: () => listLoops(), sources: paths, xenBackendSysfs: e.sim.sysfsDir });
    const s = obs.sources;
    assert.equal(s[a]!.kind, 'file');
    assert.equal(s[join(e.dir, 'nope.img')]!.exists, false);
    assert.equal(s[join(e.dir, 'sub')]!.kind, 'other');
    assert.equal(s[join(e.dir, 'link.img')]!.kind, 'other');
    assert.match(s[join(e.dir, 'link.img')]!.error!, /symlink/);
    assert.equal(s[join(e.dir, 'sublink/b.img')]!.kind, 'other');
    assert.match(s[join(e.dir, 'sublink/b.img')]!.error!, /symlink/);
    assert.equal(s[`/dev/${l.name}`]!.kind, 'block');
    assert.equal(s[`/dev/${l.name}`]!.rdev, `${l.major}:${l.minor}`);
  } finally {
    await xs.close();
    await e.close();
  }
});

test('observeFor: reads every backend domain the desired state names, and 200 backends concurrently', async () => {
  const e = await setup('many', [
    { name: 'web', domid: 3 },
    { name: 'drv', domid: 5 },
  ]);
  const xs = await connect({ path: e.sim.socketPath });
  try {
    const a = e.image('a.img');
    // 200 backends without frontends: blkback ignores them, observe must still read them all.
    const pairs: Record<string, string> = {};
    for (let i = 0; i < 200; i++) {
      const devid = XVDA + i * 16;
      Object.assign(pairs, { [`/local/domain/0/backend/vbd/3/${devid}/params`]: a, [`/local/domain/0/backend/vbd/3/${devid}/state`]: '1' });
    }
    await e.write(pairs);
    // A driver domain's backend.
    await e.write({ [`/local/domain/5/backend/vbd/3/${XVDB}/params`]: a, [`/local/domain/5/backend/vbd/3/${XVDB}/mode`]: 'r' });
    const d = desiredOf({ web: [{ vdev: 'xvdb', devid: XVDB, source: a, mode: 'ro' }] });
    d.domains[0]!.disks[0]!.backendDomid = 5;
    const t0 = performance.now();
    const obs = await observeFor(xs, d, { loops: () => [], mountedDevs: () => new Set(), xenBackendSysfs: e.sim.sysfsDir });
    const ms = performance.now() - t0;
    assert.equal(obs.backends.filter((b) => b.backendDomid === 0).length, 200);
    assert.equal(obs.backends.filter((b) => b.backendDomid === 5).length, 1);
    assert.ok(obs.backends.every((b) => b.params === a));
    process.stdout.write(`# observe 201 backends: ${ms.toFixed(1)} ms\n`);
  } finally {
    await xs.close();
    await e.close();
  }
});

test('observeSources: a block device mounted in dom0 is reported mounted (real mountinfo)', (t) => {
  const devs = mountedDevices().devs;
  let node: string | undefined;
  for (const mm of [...devs].sort()) {
    if (mm.startsWith('7:')) continue; // other tests' loop devices come and go
    try {
      const m = /^DEVNAME=(.+)$/m.exec(readFileSync(`/sys/dev/block/${mm}/uevent`, 'utf8'));
      if (m && existsSync(`/dev/${m[1]}`)) {
        node = `/dev/${m[1]}`;
        break;
      }
    } catch {
      // not a block device with a node
    }
  }
  if (!node) {
    t.skip('no mounted block device with a /dev node here');
    return;
  }
  const s = observeSources([node, '/dev/null'], [], devs);
  assert.equal(s[node]!.kind, 'block');
  assert.equal(s[node]!.mounted, true, node);
  assert.equal(s['/dev/null']!.kind, 'other', 'a character device is neither file nor block');
  assert.equal(s['/dev/null']!.mounted, false);
});

test('observe in one transaction under churn: retried, then plain reads; never fails', async () => {
  const e = await setup('churn', [{ name: 'web', domid: 3 }]);
  const xs = await connect({ path: e.sim.socketPath });
  const writer = await connect({ path: e.sim.socketPath });
  try {
    const pairs: Record<string, string> = {};
    for (let i = 0; i < 50; i++) {
      const devid = XVDA + i * 16;
      pairs[`/local/domain/0/backend/vbd/3/${devid}/frontend`] = `/local/domain/3/device/vbd/${devid}`;
      pairs[`/local/domain/0/backend/vbd/3/${devid}/state`] = '1';
      pairs[`/local/domain/3/device/vbd/${devid}/state`] = '1';
    }
    await e.write(pairs);
    let stop = false;
    let n = 0;
    const churn = (async () => {
      while (!stop) await writer.write(`/local/domain/3/device/vbd/${XVDA + (n++ % 50) * 16}/state`, n % 2 ? '3' : '1');
    })();
    try {
      for (let k = 0; k < 3; k++) {
        const obs = await observe({ xs, loops: () => [], sources: [], transaction: true, xenBackendSysfs: e.sim.sysfsDir });
        assert.equal(obs.backends.length, 50);
        for (const b of obs.backends) assert.ok(b.frontendState === 1 || b.frontendState === 3, String(b.frontendState));
      }
    } finally {
      stop = true;
      await churn;
    }
    assert.ok(n > 10, `the writer ran (${n} writes)`);
  } finally {
    await writer.close();
    await xs.close();
    await e.close();
  }
});

test('observe + plan on random garbage in every node: no exception, every field well-formed', async () => {
  const e = await setup('fuzz', [
    { name: 'web', domid: 3 },
    { name: 'db', domid: 4 },
  ]);
  const xs = await connect({ path: e.sim.socketPath });
  try {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    // (no frontend-id is ever written, so the simulated blkback never probes these; device numbers
    // name no real device anyway)
    const atoms = ['', '0', '1', '4', '9', '-1', '04', 'fff:0', 'ffe:1', 'zz:zz', '1:2:3', '/dev/loop0', '18446744073709551616', '2049:12', 'x:y', 'r', 'w', 'rw', '\u00e9\u00e8', 'a\u0000b', ' 4', '4\n', '\u001b[31m'];
    const value = () => (rnd(10) === 0 ? 'x'.repeat(1 + rnd(4000)) : atoms[rnd(atoms.length)]!);
    const nodes = ['params', 'mode', 'type', 'physical-device', 'physical-device-path', 'diskseq', 'xvbd', 'xvbd-inode', 'state', 'online', 'hotplug-status', 'script', 'frontend'];
    for (let i = 0; i < 30; i++) {
      const fe = 3 + (i % 2);
      const devid = XVDA + i * 16;
      const be = `/local/domain/0/backend/vbd/${fe}/${devid}`;
      for (const n of nodes) if (rnd(4) !== 0) e.sim.write(`${be}/${n}`, n === 'frontend' && rnd(2) === 0 ? `/local/domain/${fe}/device/vbd/${devid}` : value());
      e.sim.write(`/local/domain/${fe}/device/vbd/${devid}/state`, value());
      if (rnd(3) === 0) e.sim.write(`/local/domain/0/error/backend/vbd/${fe}/${devid}/error`, value());
    }
    e.sim.write('/local/domain/0/backend/vbd/notadomid/51712/state', '4');
    e.sim.write('/local/domain/0/backend/vbd/3/notadevid/state', '4');
    const obs = await observe({ xs, loops: () => [], sources: [], xenBackendSysfs: e.sim.sysfsDir });
    assert.equal(obs.backends.length, 30, 'non-numeric dirs are skipped');
    for (const b of obs.backends) {
      if (b.state !== undefined) assert.ok(Number.isInteger(b.state) && b.state >= 1 && b.state <= 8);
      if (b.frontendState !== undefined) assert.ok(Number.isInteger(b.frontendState) && b.frontendState >= 1 && b.frontendState <= 8);
      if (b.diskseq !== undefined) assert.match(b.diskseq, /^\d{1,20}$/);
      if (b.physicalDevice !== undefined) assert.match(b.physicalDevice, /^[0-9a-f]{1,8}:[0-9a-f]{1,8}$/);
      if (b.sourceInode !== undefined) assert.match(`${b.sourceInode.dev}:${b.sourceInode.ino}`, /^\d+:\d+$/);
      for (const v of [b.params, b.mode, b.error, b.script, b.hotplugStatus]) {
        if (v !== undefined) {
          assert.ok(v.length <= 1030, 'capped');
          assert.doesNotMatch(v, /[\u0000-\u001f]/, 'no control characters');
        }
      }
      for (const m of b.malformed ?? []) assert.ok(m.length < 300);
    }
    const d = desiredOf({ web: [{ vdev: 'xvda', devid: XVDA, source: '/srv/a.img', mode: 'rw' }], db: [{ vdev: 'xvdb', devid: XVDB, source: '/srv/a.img', mode: 'ro' }] });
    for (const prune of [false, true]) {
      for (const serve of ['attach', 'hook', 'both'] as const) {
        const p = plan(d, obs, { ...d.policy, prune, serve });
        assert.ok(Array.isArray(p.actions) && Array.isArray(p.findings));
        // Nothing observed is ours with evidence: never a detach or free of something unproven.
        for (const a of p.actions) if (a.kind === 'detach') assert.ok(obs.backends.find((b) => b.path === a.backend.path)!.ours);
      }
    }
  } finally {
    await xs.close();
    await e.close();
  }
});
