// The daemon's control operations end to end (a backend created the way libxl creates one, served
// through the control socket as the hook asks; release; reconcile now), SIGHUP, the watchdog, and
// `xvbd reconcile` once: exit codes, and delegation to a running daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
import { Host, cliMain } from './harness.js';
import { askDaemon } from '../../src/ipc/control.js';
import { join } from 'node:path';
import { rmSync } from 'node:fs';

const XVDA = 51712;
const XVDB = 51728;

/** A vbd backend + frontend as libxl writes them for `script=xvbd` (no physical-device: hotplug pending). */
async function libxlBackend(h: Host, domid: number, devid: number, vdev: string, params: string, mode: 'r' | 'w'): Promise<void> {
  const be = `/local/domain/0/backend/vbd/${domid}/${devid}`;
  const fe = `/local/domain/${domid}/device/vbd/${devid}`;
  const env = h.env;
  const nodes: [string, string][] = [
    [`${fe}/backend`, be],
    [`${fe}/backend-id`, '0'],
    [`${fe}/state`, '1'],
    [`${fe}/virtual-device`, String(devid)],
    [`${fe}/device-type`, 'disk'],
    [`${be}/frontend`, fe],
    [`${be}/frontend-id`, String(domid)],
    [`${be}/params`, params],
    [`${be}/script`, '/etc/xen/scripts/xvbd'],
    [`${be}/online`, '1'],
    [`${be}/removable`, '0'],
    [`${be}/bootable`, '1'],
    [`${be}/state`, '1'],
    [`${be}/dev`, vdev],
    [`${be}/type`, 'phy'],
    [`${be}/mode`, mode],
    [`${be}/device-type`, 'disk'],
    [`${be}/discard-enable`, '0'],
  ];
  // One xenstore-write call: one transaction, as libxl writes both dirs at once.
  // Async: the simulator answers from this very process.
  await run('xenstore-write', nodes.flat(), { env });
  await run('xenstore-chmod', ['-r', be, 'n0', `r${domid}`], { env });
  await run('xenstore-chmod', ['-r', fe, `n${domid}`, 'r0'], { env });
}

test('the hook path: serve a libxl-made backend through the control socket, then release it', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    // serve: hook only, so the daemon does not attach the disk itself: the toolstack does.
    h.writeRaw('policy.yaml', `apiVersion: xvbd/v1\nkind: Policy\nprune: false\nallowedRoots: [${h.imgDir}]\nserve: hook\n`);
    const img = h.image('web1.img');
    h.domain('web1', [{ vdev: 'xvdb', image: 'web1.img' }]);
    const d = h.startDaemon();
    await h.waitFor('first pass', () => d.passes().length >= 1);
    assert.equal(h.served(5, XVDB), undefined, 'serve=hook: no attach by the daemon');

    await libxlBackend(h, 5, XVDB, 'xvdb', img, 'w');
    // As `xvbd hook add` does with XENBUS_PATH=backend/vbd/5/51728:
    const r = await askDaemon({ op: 'serve', backend: 'backend/vbd/5/51728' }, { path: join(h.runDir, 'control.sock') });
    assert.ok(r && r.ok, JSON.stringify(r));
    assert.equal(r.served, true);
    const s = h.served(5, XVDB)!;
    assert.equal(r.physicalDevice, s.physicalDevice);
    assert.match(s.diskseq ?? '', /^[1-9][0-9]*$/, 'the served backend records its device\'s diskseq');
    assert.equal(s.marker, '1');
    assert.equal(h.sim.read(`${h.backendPath(5, XVDB)}/hotplug-status`), 'connected');
    await h.sim.settle();
    await h.waitFor('blkback holds it', () => h.sim.backends().find((b) => b.devid === XVDB)?.held === s.physicalDevice);
    await h.sd.waitFor('parked', () => h.sd.store.some((x) => x.name === `xvbd-loop-${s.diskseq}`));

    // A backend the desired state does not name: refused with the reason (the planner's words).
    await libxlBackend(h, 5, XVDA, 'xvda', h.image('other.img'), 'w');
    const bad = await h.request('serve', { backend: 'backend/vbd/5/51712' });
    assert.equal(bad.ok, false);
    assert.match(bad.error!, /domain web1 has no disk with devid 51712 in the desired state/);
    assert.equal(h.served(5, XVDA)!.physicalDevice, undefined);
    const garbage = await h.request('serve', { backend: '../../etc/passwd' });
    assert.equal(garbage.ok, false);
    assert.match(garbage.error!, /is not a vbd backend path/);

    // `xvbd hook remove` (libxl runs it before removing the dirs): the fd is let go now.
    const rel = await h.request('release', { backend: 'backend/vbd/5/51728' });
    assert.deepEqual([rel.ok, rel.released, rel.closed], [true, true, true]);
    await h.sd.waitFor('unparked', () => !h.sd.store.some((x) => x.name === `xvbd-loop-${s.diskseq}`));
    const st = await h.request('status');
    assert.deepEqual(st.held, []);

    // events: the passes and the hook's requests, oldest first, read-only
    const ev = await h.request('events');
    assert.equal(ev.ok, true);
    type Ev = { kind: string; ok: boolean; summary: string; at: string; backend?: string; seq?: number };
    const events = ev.events as Ev[];
    assert.equal(events[0]!.kind, 'pass');
    assert.equal(events[0]!.seq, 1);
    const hooks = events.filter((e) => e.kind !== 'pass').map((e) => [e.kind, e.backend, e.ok]);
    assert.deepEqual(hooks, [
      ['hook-serve', 'backend/vbd/5/51728', true],
      ['hook-serve', 'backend/vbd/5/51712', false],
      ['hook-serve', '../../etc/passwd', false],
      ['hook-release', 'backend/vbd/5/51728', true],
    ]);
    assert.match(events.find((e) => e.kind === 'hook-serve' && !e.ok)!.summary, /has no disk with devid 51712/);
    const seqs = events.filter((e) => e.kind === 'pass').map((e) => e.seq!);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in the order they finished: passes by seq');
    const last = await h.request('events', { n: 1 });
    assert.deepEqual(last.events, events.slice(-1));
    const badN = await h.request('events', { n: 0 });
    assert.equal(badN.ok, false);
    assert.match(badN.error!, /n must be a positive integer/);
  } finally {
    await h.cleanup();
  }
});

test('SIGHUP and the control socket run a pass now; the watchdog pings', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    h.domain('web1', [{ vdev: 'xvda', image: 'tmpl.img', mode: 'ro' }]);
    const env = { ...h.env, WATCHDOG_USEC: '400000' };
    const child = h.sd.spawnService(process.execPath, [cliMain, 'reconcile', '--watch', '--config', h.cfgDir, '--resync', '0'], env);
    const { DaemonProc } = await import('./harness.js');
    const d = new DaemonProc(child, join(h.runDir, 'control.sock'));
    h.daemons.push(d);
    await h.waitFor('served', () => h.served(5, XVDA)?.physicalDevice);
    await h.sd.waitFor('3 watchdog pings', () => h.sd.having('WATCHDOG', '1').length >= 3, 5_000);
    const n = d.passes().length;
    child.kill('SIGHUP');
    await h.waitFor('a SIGHUP pass', () => d.passes().slice(n).some((l) => /\(SIGHUP/.test(l)));
    const r = await h.request('reconcile', { reason: 'test' });
    assert.equal(r.ok, true);
    assert.match((r.pass as { summary: string }).summary, /\(control \(test\)\).*nothing to do/);
    const ping = await h.request('ping');
    assert.equal(ping.pid, child.pid);
    const unknown = await h.request('frobnicate');
    assert.equal(unknown.ok, false);
    assert.match(unknown.error!, /unknown op "frobnicate"/);
  } finally {
    await h.cleanup();
  }
});

/** Runs the CLI asynchronously (the simulator lives in this process: a sync spawn would deadlock). */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [cliMain, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function once(h: Host, ...args: string[]) {
  return cli(['reconcile', '--config', h.cfgDir, ...args], h.env);
}

test('xvbd reconcile (once): 2 after changes, 0 when converged, 1 on invalid config; delegates to a running daemon', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    h.domain('web1', [{ vdev: 'xvda', image: 'tmpl.img', mode: 'ro' }]);
    const first = await once(h);
    assert.equal(first.status, 2, first.stderr);
    assert.match(first.stderr, /1\/1 done: \+attach web1 xvda/);
    assert.ok(h.served(5, XVDA)?.physicalDevice);
    // The one-shot pass exited: the keeper holds the device.
    assert.equal((await h.keeperPids()).length, 2, 'the keepers hold the fd');
    const second = await once(h, '--json');
    assert.equal(second.status, 0, second.stderr);
    const j = JSON.parse(second.stdout);
    assert.equal(j.via, 'local');
    assert.equal(j.actions, 0);
    h.writeRaw('web1.yaml', 'apiVersion: xvbd/v1\nkind: Domain\nname: web1\ndisks: 7\n');
    const bad = await once(h);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /web1\.yaml:4:\d+:/);
    assert.match(bad.stderr, /the config is invalid/);
    h.domain('web1', [{ vdev: 'xvda', image: 'tmpl.img', mode: 'ro' }, { vdev: 'xvdb', image: 'web1.img' }]);

    // With a daemon listening, `reconcile` asks it (the daemon takes the keeper's fds over too).
    const d = h.startDaemon();
    await h.waitFor('daemon served xvdb', () => h.served(5, XVDB)?.physicalDevice);
    await h.waitFor('keeper take-over', () => /keepers: took over 1 fd\(s\) into the fd store/.test(d.text()));
    const via = await once(h);
    assert.equal(via.status, 0, via.stderr);
    assert.match(via.stdout, /^\(via the daemon\) pass \d+ \(control \(xvbd reconcile\)\); (changed: [^;]*; )?nothing to do/);
    // An error finding in the daemon's pass (a desired source gone): the one-shot command exits 3, naming it.
    h.domain('web1', [{ vdev: 'xvda', image: 'tmpl.img', mode: 'ro' }, { vdev: 'xvdb', image: 'web1.img' }, { vdev: 'xvdc', image: 'gone.img' }]);
    rmSync(join(h.imgDir, 'gone.img'));
    const blocked = await once(h);
    assert.equal(blocked.status, 3, blocked.stdout + blocked.stderr);
    assert.match(blocked.stdout, /^\(via the daemon\) pass \d+ .*source-missing/);
    assert.match(blocked.stderr, /^1 error finding remains \(xvbd status shows them all\):\n\s+! error source-missing: \S+gone\.img does not exist/);
    h.domain('web1', [{ vdev: 'xvda', image: 'tmpl.img', mode: 'ro' }, { vdev: 'xvdb', image: 'web1.img' }]);
    const other = await cli(['reconcile', '--config', h.dir], h.env);
    assert.equal(other.status, 1);
    assert.match(other.stderr, /the daemon refused: the daemon reconciles .*config, not .* \(use --local to run that config here\)/);
    const help = await cli(['reconcile', '--help'], process.env);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Usage: xvbd reconcile/);
    const wrong = await cli(['reconcile', '--resync', 'x'], process.env);
    assert.equal(wrong.status, 2, 'a usage error');
    assert.match(wrong.stderr, /--resync must be a whole number/);
  } finally {
    await h.cleanup();
  }
});

test('fds a one-shot run gave the keeper while the daemon runs are taken over at the next pass', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    h.domain('web1', [{ vdev: 'xvda', image: 'tmpl.img', mode: 'ro' }]);
    const d = h.startDaemon();
    await h.waitFor('served', () => h.served(5, XVDA)?.physicalDevice);
    // Another config dir naming one more disk, applied once without the daemon (--local): the keeper holds it.
    const { mkdirSync, writeFileSync, copyFileSync } = await import('node:fs');
    const other = join(h.dir, 'other-config');
    mkdirSync(other);
    copyFileSync(join(h.cfgDir, 'policy.yaml'), join(other, 'policy.yaml'));
    writeFileSync(join(other, 'web1.yaml'), h.domainYaml('web1', [{ vdev: 'xvda', image: 'tmpl.img', mode: 'ro' }, { vdev: 'xvdb', image: 'web1.img' }]));
    const r = await cli(['reconcile', '--local', '--config', other], h.env);
    assert.equal(r.status, 2, r.stderr);
    assert.ok(h.served(5, XVDB)?.physicalDevice);
    // Its xenstore writes trigger a pass of the daemon, which takes the fd from the keeper.
    await h.waitFor('take-over', () => /keepers: took over 1 fd\(s\) into the fd store/.test(d.text()));
    await h.waitFor('the keeper exits', () => !h.keeperSocketExists());
    const st = await h.request('status');
    const users = (st.held as { users: string[] }[]).flatMap((x) => x.users).sort();
    assert.deepEqual(users, [h.backendPath(5, XVDA), h.backendPath(5, XVDB)]);
    await h.sd.waitFor('both parked', () => h.sd.store.length === 2);
  } finally {
    await h.cleanup();
  }
});

test('`xvbd hook add|remove` (as libxl runs it) goes through the daemon', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.writeRaw('policy.yaml', `apiVersion: xvbd/v1\nkind: Policy\nprune: false\nallowedRoots: [${h.imgDir}]\nserve: hook\n`);
    const img = h.image('web1.img');
    h.domain('web1', [{ vdev: 'xvdb', image: 'web1.img' }]);
    const d = h.startDaemon();
    await h.waitFor('first pass', () => d.passes().length >= 1);
    await libxlBackend(h, 5, XVDB, 'xvdb', img, 'w');
    const env = { ...h.env, XENBUS_PATH: `backend/vbd/5/${XVDB}`, XVBD_CONFIG: h.cfgDir };
    const add = await cli(['hook', 'add'], env);
    assert.equal(add.status, 0, add.stdout + add.stderr);
    assert.match(add.stdout + add.stderr, /served by the daemon \(physical-device [0-9a-f]+:[0-9a-f]+\)/);
    const s = h.served(5, XVDB)!;
    assert.equal(s.marker, '1');
    // the hook's request is a batch of the daemon's hook server (not a whole pass), logged as such
    await h.waitFor('the daemon\'s answer to the hook', () => d.text().includes(`hook: ${h.backendPath(5, XVDB)}`) || /hook: batch of 1/.test(d.text()));
    assert.equal(h.keeperSocketExists(), false, 'no keeper: the daemon holds the fd');
    const st = await h.request('status');
    assert.deepEqual((st.held as { users: string[] }[]).flatMap((x) => x.users), [h.backendPath(5, XVDB)]);
    const rm = await cli(['hook', 'remove'], env);
    assert.equal(rm.status, 0, rm.stdout + rm.stderr);
    assert.match(rm.stdout + rm.stderr, /released by the daemon/);
    assert.deepEqual((await h.request('status')).held, []);
  } finally {
    await h.cleanup();
  }
});
