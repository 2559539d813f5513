// The daemon under a fake systemd: notify messages and fds arrive; a restart with LISTEN_FDS keeps
// every loop device alive (same diskseq, nothing new made, nothing leaked); stopping detaches nothing
// (the keeper holds the fds, a frontend reconnect survives); bad stored fds are refused and dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fstatSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Host } from './harness.js';
import { connect } from '../../src/xenstore/client.js';

const TMPL = { vdev: 'xvda', image: 'tmpl.img', mode: 'ro' as const };
const XVDA = 51712;
const XVDB = 51728;

function majMin(rdev: number): string {
  const major = (rdev >> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  return `${major.toString(16)}:${minor.toString(16)}`;
}

test('fd store: parked per loop device, taken back on restart with the same diskseq, no leak', async () => {
  const h = await Host.start([
    { name: 'web1', domid: 5 },
    { name: 'web2', domid: 6 },
  ]);
  try {
    h.policy({ prune: true, detachTimeout: '1s' });
    h.domain('web1', [TMPL, { vdev: 'xvdb', image: 'web1.img' }]);
    h.domain('web2', [TMPL]);
    const d1 = h.startDaemon();
    await h.waitFor('served', () => h.served(5, XVDA)?.physicalDevice && h.served(5, XVDB)?.physicalDevice && h.served(6, XVDA)?.physicalDevice);
    await h.sd.waitFor('READY=1', () => h.sd.having('READY', '1').length === 1);
    // Two loop devices (the template shared by both domains, web1's private image): two stored fds,
    // each named after the diskseq its backends record, each the very device of physical-device.
    const want = new Map<string, string>([
      [h.served(5, XVDA)!.diskseq!, h.served(5, XVDA)!.physicalDevice!],
      [h.served(5, XVDB)!.diskseq!, h.served(5, XVDB)!.physicalDevice!],
    ]);
    assert.equal(want.size, 2);
    await h.sd.waitFor('2 stored fds', () => h.sd.store.length === 2);
    for (const s of h.sd.store) {
      const seq = s.name.replace('xvbd-loop-', '');
      assert.ok(want.has(seq), `stored ${s.name} is a device our backends record`);
      const st = fstatSync(s.fd);
      assert.ok(st.isBlockDevice());
      assert.equal(majMin(st.rdev), want.get(seq));
    }
    assert.ok(h.sd.having('STATUS').some((m) => /disks synced/.test(m.fields.STATUS!)));
    const loopsBefore = new Map(h.loops());
    const seqBefore = new Map([...loopsBefore.keys()].map((n) => [n, h.diskseqOf(n)]));
    assert.equal(loopsBefore.size, 2);

    // Stop: STOPPING=1, nothing detached.
    assert.equal(await d1.stop(), 0);
    assert.equal(h.sd.having('STOPPING', '1').length, 1);
    assert.ok(h.served(5, XVDB)?.physicalDevice);

    // Restart as systemd does: the stored fds at 3.., LISTEN_FDS=2, LISTEN_FDNAMES, LISTEN_PID.
    const storedMsgs = h.sd.having('FDSTORE', '1').length;
    const d2 = h.startDaemon();
    await h.waitFor('the fds taken back', () => /took back 2 loop fd\(s\) from systemd/.test(d2.text()));
    await h.waitFor('first pass of the new daemon', () => d2.passes().length >= 1);
    await h.sd.waitFor('READY=1 again', () => h.sd.having('READY', '1').length === 2);
    const st = await h.request('status');
    const held = (st.held as { diskseq: string; users: string[] }[]).map((x) => [x.diskseq, x.users.length]).sort();
    assert.deepEqual(held, [...want.keys()].map((k) => [k, k === h.served(5, XVDA)!.diskseq ? 2 : 1]).sort(), 'held again, with their backends as users');
    assert.deepEqual([...(st.parked as string[])].sort(), [...want.keys()].sort());
    assert.match(d2.passes()[0]!, /nothing to do/, 'the restarted daemon had nothing to redo');
    assert.equal(h.sd.having('FDSTORE', '1').length, storedMsgs, 'nothing parked twice');
    assert.equal(h.sd.store.length, 2);
    // Same devices, same diskseq, nothing new.
    assert.deepEqual(new Map(h.loops()), loopsBefore);
    for (const [n, s] of seqBefore) assert.equal(h.diskseqOf(n), s);

    // A detach after the restart unparks its fd (FDSTOREREMOVE=1).
    const rwSeq = h.served(5, XVDB)!.diskseq!;
    h.domain('web1', [TMPL]);
    await h.waitFor('web1 xvdb detached', () => !h.served(5, XVDB));
    await h.sd.waitFor('FDSTOREREMOVE', () => h.sd.having('FDSTOREREMOVE', '1').some((m) => m.fields.FDNAME === `xvbd-loop-${rwSeq}`));
    assert.deepEqual(h.sd.store.map((s) => s.name), [`xvbd-loop-${h.served(5, XVDA)!.diskseq}`]);
    await h.waitFor('web1.img loop freed', () => ![...h.loops().values()].some((f) => f.endsWith('/web1.img')));
  } finally {
    await h.cleanup();
  }
  assert.equal(h.loops().size, 0, 'nothing left bound');
});

test('stop: every backend stays served; the keeper holds the fds through a frontend reconnect', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    h.domain('web1', [TMPL, { vdev: 'xvdb', image: 'web1.img' }]);
    const d = h.startDaemon();
    await h.waitFor('served', () => h.served(5, XVDA)?.physicalDevice && h.served(5, XVDB)?.physicalDevice);
    const fe = h.sim.frontend(5, XVDB);
    await fe.connect();
    await h.sim.settle();
    await h.waitFor('connected', () => h.sim.backends().find((b) => b.devid === XVDB)?.connected);
    const loops = new Map(h.loops());
    const seqs = new Map([...loops.keys()].map((n) => [n, h.diskseqOf(n)]));
    assert.equal(await d.stop(), 0);
    assert.match(d.text(), /handed 3 fd\(s\) to the keeper|handed 2 fd\(s\) to the keeper/);
    assert.equal((await h.keeperPids()).length, 2, 'both keepers run');
    // The guest disconnects and reconnects: blkback drops the device and takes it again. Without a
    // holder in dom0 the autoclear device would be gone.
    await fe.disconnect();
    await h.sim.settle();
    await new Promise((r) => setTimeout(r, 200));
    await fe.reconnect();
    await h.sim.settle();
    assert.deepEqual(new Map(h.loops()), loops, 'the same loop devices are bound');
    for (const [n, s] of seqs) assert.equal(h.diskseqOf(n), s, `${n} kept its diskseq`);
    assert.ok(h.sim.backends().find((b) => b.devid === XVDB)?.held, 'blkback holds the device again');
    assert.ok(h.served(5, XVDA)?.physicalDevice && h.served(5, XVDB)?.physicalDevice);

    // A new daemon takes the fds over from the keeper, which then exits.
    const d2 = h.startDaemon([], { passStore: false });
    await h.waitFor('take-over', () => /keepers: took over \d+ fd\(s\) into the fd store/.test(d2.text()));
    await h.waitFor('the keeper exits', () => !h.keeperSocketExists());
    const st = await h.request('status');
    assert.equal((st.held as unknown[]).length, 2);
    assert.deepEqual(new Map(h.loops()), loops);
  } finally {
    await h.cleanup();
  }
  assert.equal(h.loops().size, 0);
});

test('stored fds that are not what their name says are refused, closed and dropped from the store', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: false });
    h.domain('web1', [TMPL]);
    writeFileSync(join(h.dir, 'plain'), 'not a loop device');
    // The fake systemd owns these fds from here on (as systemd owns its store).
    const fileFd = openSync(join(h.dir, 'plain'), 'r');
    // A regular file under a loop name, and a name that is not ours.
    h.sd.store.push({ name: 'xvbd-loop-999999', fd: fileFd }, { name: 'something-else', fd: openSync(join(h.dir, 'plain'), 'r') });
    const d = h.startDaemon();
    await h.waitFor('served', () => h.served(5, XVDA)?.physicalDevice);
    await h.waitFor('both refusals logged', () => /refused fd 4 "something-else"/.test(d.text()));
    assert.match(d.text(), /refused fd 3 "xvbd-loop-999999": not a block device with a diskseq/);
    assert.match(d.text(), /refused fd 4 "something-else": name "something-else" is not xvbd-loop-<diskseq>/);
    await h.sd.waitFor('removals', () => h.sd.having('FDSTOREREMOVE', '1').length === 2);
    await h.sd.waitFor('only our device stored', () => h.sd.store.length === 1 && h.sd.store[0]!.name === `xvbd-loop-${h.served(5, XVDA)!.diskseq}`);
  } finally {
    await h.cleanup();
  }
});

test('kill -9: the fd store alone keeps the devices; the next start takes them back and redoes nothing', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.policy({ prune: true, detachTimeout: '1s' });
    h.domain('web1', [TMPL, { vdev: 'xvdb', image: 'web1.img' }]);
    const d1 = h.startDaemon();
    await h.waitFor('served', () => h.served(5, XVDA)?.physicalDevice && h.served(5, XVDB)?.physicalDevice);
    const fe = h.sim.frontend(5, XVDB);
    await fe.connect();
    await h.sd.waitFor('2 stored fds', () => h.sd.store.length === 2);
    const loops = new Map(h.loops());
    const seqs = new Map([...loops.keys()].map((n) => [n, h.diskseqOf(n)]));
    await d1.stop('SIGKILL');
    assert.deepEqual(await h.keeperPids(), [], 'no keeper: only the fd store holds them');
    // The guest reconnects while no daemon runs: blkback lets go and takes the device again.
    await fe.disconnect();
    await h.sim.settle();
    await new Promise((r) => setTimeout(r, 200));
    await fe.reconnect();
    await h.sim.settle();
    assert.deepEqual(new Map(h.loops()), loops, 'the fake systemd\'s stored fds kept both devices');
    // While no daemon runs, the admin detaches xvdb by hand (as xl block-detach: the dirs go) and drops it
    // from the config.
    const rwSeq = h.served(5, XVDB)!.diskseq!;
    await fe.close();
    const xs = await connect({ path: h.sim.socketPath });
    await xs.transaction(async (tx) => {
      await tx.rm(h.backendPath(5, XVDB));
      await tx.rm(`/local/domain/5/device/vbd/${XVDB}`);
    });
    await xs.close();
    await h.sim.settle();
    h.domain('web1', [TMPL]);
    const d2 = h.startDaemon();
    await h.waitFor('first pass', () => d2.passes().length >= 1);
    assert.match(d2.text(), /took back 2 loop fd\(s\) from systemd/);
    assert.match(d2.text(), new RegExp(`diskseq ${rwSeq}\\): no backend uses it, fd closed`));
    // Closing that fd freed the device (autoclear): the pass plans from a second look, so there is
    // nothing left to free (an explicit free of the gone device would fail).
    assert.match(d2.passes()[0]!, /nothing to do; released 1 fd\(s\) nothing uses any more; 1\/1 disks synced/);
    await h.sd.waitFor('unparked', () => h.sd.store.length === 1 && h.sd.having('FDSTOREREMOVE', '1').some((m) => m.fields.FDNAME === `xvbd-loop-${rwSeq}`));
    await h.waitFor('web1.img loop freed', () => ![...h.loops().values()].some((f) => f.endsWith('/web1.img')));
    for (const [n, s] of seqs) if (loops.get(n)!.endsWith('/tmpl.img')) assert.equal(h.diskseqOf(n), s);
    // And a second daemon on the same run dir is refused before it touches anything.
    const d3 = h.startDaemon([], { passStore: false });
    assert.equal(await d3.exited, 1);
    assert.match(d3.text(), /cannot start: another xvbd daemon already listens on .*control\.sock/);
    const st = await h.request('status');
    assert.equal((st.held as unknown[]).length, 1, 'the running daemon still holds the template');
  } finally {
    await h.cleanup();
  }
  assert.equal(h.loops().size, 0);
});
