// The watch loop end to end: the daemon as a real process against the simulator (real loop devices,
// the simulated blkback really holding them), a temp config dir changed under it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from './harness.js';

const TMPL = { vdev: 'xvda', image: 'tmpl.img', mode: 'ro' as const };
const XVDA = 51712;
const XVDB = 51728;
const XVDC = 51744;

test('converges as YAML files are added, changed and removed (prune on)', async () => {
  const h = await Host.start([
    { name: 'web1', domid: 5 },
    { name: 'web2', domid: 6 },
  ]);
  try {
    h.policy({ prune: true, detachTimeout: '1s' });
    h.domain('web1', [TMPL]);
    h.startDaemon();
    await h.waitFor('web1 xvda served', () => h.served(5, XVDA)?.physicalDevice);
    assert.equal(h.served(5, XVDA)?.marker, '1');

    // Added: a second domain sharing the read-only template, with its own rw disk.
    h.domain('web2', [TMPL, { vdev: 'xvdb', image: 'web2.img' }]);
    await h.waitFor('web2 served', () => h.served(6, XVDA)?.physicalDevice && h.served(6, XVDB)?.physicalDevice);
    assert.equal(h.served(6, XVDA)!.physicalDevice, h.served(5, XVDA)!.physicalDevice, 'one loop device for the shared template');
    assert.equal([...h.loops().values()].filter((f) => f.endsWith('/tmpl.img')).length, 1);
    await h.sim.settle();
    assert.ok(h.sim.backends().some((b) => b.domid === 6 && b.devid === XVDB && b.held), 'blkback holds web2 xvdb');

    // Changed: a disk added to an existing file; a source replaced (new inode -> replace, prune is on).
    h.domain('web2', [TMPL, { vdev: 'xvdb', image: 'web2.img' }, { vdev: 'xvdc', image: 'web2-scratch.img' }]);
    await h.waitFor('web2 xvdc served', () => h.served(6, XVDC)?.physicalDevice);
    const oldSeq = h.served(6, XVDB)!.diskseq;
    h.domain('web2', [TMPL, { vdev: 'xvdb', image: 'web2-v2.img' }, { vdev: 'xvdc', image: 'web2-scratch.img' }]);
    await h.waitFor('web2 xvdb replaced', () => {
      const s = h.served(6, XVDB);
      return s?.physicalDevice && s.diskseq && s.diskseq !== oldSeq && [...h.loops().values()].some((f) => f.endsWith('/web2-v2.img'));
    });
    await h.waitFor('the old web2.img loop device freed', () => ![...h.loops().values()].some((f) => f.endsWith('/web2.img')));

    // Removed: web2's file goes; its backends are detached, its loop devices freed; web1 keeps the template.
    h.removeFile('web2.yaml');
    await h.waitFor('web2 detached', () => !h.served(6, XVDA) && !h.served(6, XVDB) && !h.served(6, XVDC));
    await h.waitFor('web2 loop devices freed', () => [...h.loops().values()].every((f) => f.endsWith('/tmpl.img')));
    assert.ok(h.served(5, XVDA)?.physicalDevice, 'web1 still served');
    assert.equal(h.loops().size, 1);
    const st = await h.waitFor('idle', async () => {
      const r = await h.request('status');
      return (r.last as { summary: string }).summary.includes('nothing to do') && r;
    });
    assert.equal(st.ok, true);
    const held = st.held as { name: string; users: string[] }[];
    assert.deepEqual(held.map((x) => x.users), [[h.backendPath(5, XVDA)]], 'the daemon holds exactly web1 xvda');
  } finally {
    await h.cleanup();
  }
  assert.equal(h.loops().size, 0);
});

test('a burst of config changes coalesces into few passes', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    h.domain('web1', [TMPL]);
    const d = h.startDaemon(['--debounce', '400']);
    await h.waitFor('served', () => h.served(5, XVDA)?.physicalDevice);
    await h.waitFor('idle', async () => ((await h.request('status')).last as { summary: string }).summary.includes('nothing to do'));
    const before = d.passes().length;
    // 30 writes in a burst (every one a real file change), the last one adds a disk.
    for (let i = 0; i < 30; i++) {
      h.writeRaw('web1.yaml', h.domainYaml('web1', [TMPL]) + `# edit ${i}\n`);
      await new Promise((r) => setTimeout(r, 2));
    }
    h.domain('web1', [TMPL, { vdev: 'xvdb', image: 'web1.img' }]);
    await h.waitFor('xvdb served', () => h.served(5, XVDB)?.physicalDevice);
    await h.waitFor('idle again', async () => ((await h.request('status')).last as { summary: string }).summary.includes('nothing to do'));
    const burst = d.passes().slice(before);
    // The burst: one config pass (maybe two if the burst straddles the debounce window), plus the pass
    // our own xenstore writes cause; not 31.
    const cfg = burst.filter((l) => /^\S+ pass \d+ \([^)]*\bconfig\b/.test(l));
    assert.ok(cfg.length >= 1 && cfg.length <= 2, `config passes for a burst of 31 changes: ${cfg.length}\n${burst.join('\n')}`);
    assert.ok(burst.length <= 3, `passes: ${burst.length}\n${burst.join('\n')}`);
    assert.ok(burst.some((l) => /triggers\)/.test(l)), `a pass covers several triggers:\n${burst.join('\n')}`);
  } finally {
    await h.cleanup();
  }
});

test('bad YAML while running: errors logged, the last good state kept, nothing detached', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: true, detachTimeout: '1s' });
    h.domain('web1', [TMPL, { vdev: 'xvdb', image: 'web1.img' }]);
    const d = h.startDaemon();
    await h.waitFor('served', () => h.served(5, XVDA)?.physicalDevice && h.served(5, XVDB)?.physicalDevice);
    const seqs = [h.served(5, XVDA)!.diskseq, h.served(5, XVDB)!.diskseq];

    h.writeRaw('web1.yaml', 'apiVersion: xvbd/v1\nkind: Domain\nname: web1\ndisks: [\n');
    await h.waitFor('the config error logged', () => /config: \d+ error\(s\); keeping the last good desired state/.test(d.text()));
    assert.match(d.text(), /web1\.yaml:\d+:\d+: /, 'the error names file:line:column');
    // An explicit pass with the broken file: it uses the last good state.
    const r = await h.request('reconcile');
    const pass = r.pass as { configOk: boolean; usedLastGood: boolean; steps: unknown[]; summary: string };
    assert.equal(pass.configOk, false);
    assert.equal(pass.usedLastGood, true);
    assert.deepEqual(pass.steps, []);
    assert.match(pass.summary, /config invalid, using the last good desired state/);
    assert.deepEqual([h.served(5, XVDA)?.diskseq, h.served(5, XVDB)?.diskseq], seqs, 'still served, same devices');

    // A second broken file in the same way is not logged again; a valid file again is.
    h.writeRaw('web1.yaml', h.domainYaml('web1', [TMPL, { vdev: 'xvdb', image: 'web1.img' }]));
    await h.waitFor('valid again', () => /config: valid again/.test(d.text()));
    assert.deepEqual([h.served(5, XVDA)?.diskseq, h.served(5, XVDB)?.diskseq], seqs);
  } finally {
    await h.cleanup();
  }
});

test('invalid config from the start: nothing is done until it is fixed', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy();
    h.writeRaw('web1.yaml', 'apiVersion: xvbd/v1\nkind: Domain\nname: web1\ndisks:\n  - vdev: xvda\n    fiel: /nope\n');
    const d = h.startDaemon();
    await h.waitFor('the error logged', () => /no good desired state yet: doing nothing/.test(d.text()));
    await h.sd.waitFor('READY', () => h.sd.having('READY', '1').length > 0);
    assert.equal(h.served(5, XVDA), undefined);
    h.domain('web1', [TMPL]);
    await h.waitFor('served once fixed', () => h.served(5, XVDA)?.physicalDevice);
  } finally {
    await h.cleanup();
  }
});

test('a domain that appears gets its disks', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    h.domain('late', [TMPL, { vdev: 'xvdb', image: 'late.img' }]);
    const d = h.startDaemon();
    await h.waitFor('first pass', () => d.passes().length >= 1);
    const st = await h.request('status');
    assert.match((st.last as { summary: string }).summary, /domain-not-running/);
    const domid = h.sim.addDomain('late', 9);
    await h.waitFor('late served', () => h.served(domid, XVDA)?.physicalDevice && h.served(domid, XVDB)?.physicalDevice);
    // (the backend is visible before the pass's log line arrives through the pipe)
    await h.waitFor('the pass line naming @introduceDomain as its trigger', () => d.passes().some((l) => /\(domain introduced/.test(l)));
    // xl destroy: the domain and its backend dirs go; the daemon lets go of the fds.
    h.sim.removeDomain(domid);
    await h.waitFor('fds released', async () => ((await h.request('status')).held as unknown[]).length === 0);
  } finally {
    await h.cleanup();
  }
});

test('xenstore goes away and comes back: the daemon reconnects and converges again', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    h.domain('web1', [{ vdev: 'xvdb', image: 'web1.img' }]);
    const d = h.startDaemon(['--debounce', '20']);
    await h.waitFor('served', () => h.served(5, XVDB)?.physicalDevice);
    // xenstored restarts with an empty tree (the simulator's blkback lets go of the device as it goes).
    await h.sim.close();
    const { startSimulator } = await import('../../src/sim/index.js');
    h.sim = await startSimulator({ socketPath: h.sim.socketPath, sysfsDir: h.sim.sysfsDir, domains: [{ name: 'web1', domid: 5 }] });
    await h.waitFor('reconnect logged', () => /xenstore watches: connection lost; reconnecting/.test(d.text()));
    await h.waitFor('served again', () => h.served(5, XVDB)?.physicalDevice, 30_000);
    await h.waitFor('the old fd released', async () => {
      const st = await h.request('status');
      return (st.held as unknown[]).length === 1;
    });
    assert.ok(d.passes().some((l) => /FAILED/.test(l)) || d.passes().some((l) => /xenstore reconnected/.test(l)));
  } finally {
    await h.cleanup();
  }
  assert.equal(h.loops().size, 0);
});

test('the config dir missing at start, then created; removed while running (nothing detached), then back', async () => {
  const { mkdirSync, rmSync, renameSync } = await import('node:fs');
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    rmSync(h.cfgDir, { recursive: true });
    const d = h.startDaemon();
    await h.waitFor('first pass', () => d.passes().length >= 1);
    assert.match(d.text(), /the config directory does not exist/);
    // Created later (as a deployment tool would, by renaming a prepared dir into place).
    const staged = `${h.cfgDir}.new`;
    mkdirSync(staged);
    const save = h.cfgDir;
    Object.defineProperty(h, 'cfgDir', { value: staged, configurable: true });
    h.policy({ prune: true, detachTimeout: '1s' });
    h.domain('web1', [TMPL]);
    Object.defineProperty(h, 'cfgDir', { value: save, configurable: true });
    renameSync(staged, save);
    await h.waitFor('served once the dir appeared', () => h.served(5, XVDA)?.physicalDevice);
    assert.match(d.text(), /config watch: .* appeared/);

    // rm -rf of the whole dir: invalid config, the last good state is kept, nothing is detached.
    rmSync(h.cfgDir, { recursive: true });
    await h.waitFor('noticed', () => /is gone; waiting for it to come back/.test(d.text()));
    await h.waitFor('a pass with the dir gone', () => d.passes().some((l) => /config invalid, using the last good desired state/.test(l)));
    assert.ok(h.served(5, XVDA)?.physicalDevice, 'still served');
    // Back, with one more disk.
    mkdirSync(h.cfgDir);
    h.policy({ prune: true, detachTimeout: '1s' });
    h.domain('web1', [TMPL, { vdev: 'xvdb', image: 'web1.img' }]);
    await h.waitFor('xvdb served after the dir came back', () => h.served(5, XVDB)?.physicalDevice);
    assert.ok(h.served(5, XVDA)?.physicalDevice);
  } finally {
    await h.cleanup();
  }
});
