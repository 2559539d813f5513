// The daemon (`xvbd reconcile --watch`) on real Xen, under a fake systemd (a real datagram socket,
// recvmsg for the fds, LISTEN_FDS on restart: test/daemon/fake-systemd.ts): it attaches two disks to
// dom0 itself (xen-blkfront), both ends reach 4, the fds land in the store; after a kill -9 the next
// start takes them back (same diskseq), the frontends stay Connected and the data stays readable; a
// disk removed from the YAML is detached through the real blkfront, unparked and freed. Then
// everything is removed (the SIGTERM/keeper path is covered by test/daemon on the simulator; under
// TCG a daemon start costs ~60 s, the scenario's 300 s budget allows two).
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { XenScenario } from '../framework.js';
import { dom0Config, run, sh, waitFor } from '../lib/dom0.js';
import { FakeSystemd } from '../../daemon/fake-systemd.js';
import type { ChildProcess } from 'node:child_process';

// devids no other scenario uses: xvdm, xvdn
const DISKS = [
  { vdev: 'xvdm', devid: 51904, file: 'daemon-m.img', mode: 'ro' },
  { vdev: 'xvdn', devid: 51920, file: 'daemon-n.img', mode: 'rw' },
];
const PATTERN = Buffer.from('xvbd real-Xen daemon scenario: still readable after restarts\n');

const config = (images: string, disks: typeof DISKS): string => dom0Config(images, disks, { prune: true });

class Proc {
  out = '';
  code: number | null | undefined;
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d) => (this.out += d));
    child.stderr?.on('data', (d) => (this.out += d));
    this.exited = new Promise((r) => child.on('close', (c) => r((this.code = c))));
  }
  passes(): string[] {
    return this.out.split('\n').filter((l) => / pass \d+ \(/.test(l));
  }
  async stop(sig: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.code !== undefined) return this.code;
    this.child.kill(sig);
    return this.exited;
  }
}

export const scenario: XenScenario = {
  description: 'the daemon under a fake systemd: attaches to dom0, fd store, kill -9 + restart keeps the devices, YAML removal detaches',
  order: 85,
  async xen(t) {
    const images = join(t.tmpDir, 'daemon-images');
    const conf = join(t.tmpDir, 'daemon-conf');
    const runDir = join(t.tmpDir, 'daemon-run');
    mkdirSync(images, { recursive: true });
    mkdirSync(conf, { recursive: true });
    for (const d of DISKS) writeFileSync(join(images, d.file), Buffer.alloc(8 << 20));
    const mFile = join(images, DISKS[0]!.file);
    const nFile = join(images, DISKS[1]!.file);
    const fd = openSync(mFile, 'r+');
    writeSync(fd, PATTERN, 0, PATTERN.length, 4096);
    closeSync(fd);
    writeFileSync(join(conf, 'host.yaml'), config(images, DISKS));
    const env: NodeJS.ProcessEnv = { ...process.env, XVBD_RUN_DIR: runDir };
    delete env.XENSTORED_PATH; // the real xenstored
    delete env.XVBD_XEN_BACKEND_SYSFS; // the real sysfs
    const be = (devid: number) => `/local/domain/0/backend/vbd/0/${devid}`;
    const fe = (devid: number) => `/local/domain/0/device/vbd/${devid}`;
    const read = async (p: string) => {
      const r = await run('xenstore-read', [p]);
      return r.code === 0 ? r.stdout.trim() : undefined;
    };
    const loopsOf = async (file: string) => (await sh('losetup', ['-j', file])).split('\n').filter(Boolean).map((l) => l.split(':')[0]!);
    const cli = join(t.repoRoot, 'dist/src/cli/main.js');
    const sd = new FakeSystemd();
    const procs: Proc[] = [];
    const start = (passStore = true) => {
      const p = new Proc(sd.spawnService(process.execPath, [cli, 'reconcile', '--watch', '--config', conf, '--resync', '0'], env, { passStore }));
      procs.push(p);
      return p;
    };
    /** Runs a case body; a failure carries the last daemon's log (the scenario may be cut short before finally). */
    const logged = (fn: () => Promise<void>) => async () => {
      try {
        await fn();
      } catch (err) {
        const tail = procs.at(-1)?.out.split('\n').slice(-30).join('\n') ?? '(no daemon)';
        const states = await Promise.all(DISKS.map(async (x) => `${x.vdev} be=${await read(`${be(x.devid)}/state`)} fe=${await read(`${fe(x.devid)}/state`)}`));
        throw new Error(`${(err as Error).message}\n${states.join(', ')}\n--- daemon log ---\n${tail}`);
      }
    };
    const bothConnected = async () => {
      for (const d of DISKS) {
        if ((await read(`${be(d.devid)}/state`)) !== '4' || (await read(`${fe(d.devid)}/state`)) !== '4') return false;
      }
      return true;
    };
    const readBack = () => {
      const buf = Buffer.alloc(PATTERN.length);
      const k = openSync('/dev/xvdm', 'r');
      try {
        readSync(k, buf, 0, buf.length, 4096);
      } finally {
        closeSync(k);
      }
      return buf.toString();
    };
    const seqs: Record<string, string | undefined> = {};
    try {
      await sh('modprobe', ['xen-blkfront']);
      const ok1 = await t.test('the daemon attaches both disks; both ends 4; READY=1; one stored fd per loop device', logged(async () => {
        const t0 = Date.now();
        const d = start();
        await waitFor(bothConnected, 'both ends 4', { timeoutMs: 150_000 });
        t.log(`daemon start to both disks Connected: ${Date.now() - t0} ms`);
        await sd.waitFor('READY=1', () => sd.having('READY', '1').length === 1, 30_000);
        await sd.waitFor('2 stored fds', () => sd.store.length === 2, 30_000);
        for (const x of DISKS) {
          const pd = await read(`${be(x.devid)}/physical-device`);
          assert.equal(readFileSync(`/sys/bus/xen-backend/devices/vbd-0-${x.devid}/physical_device`, 'utf8').trim(), pd);
          seqs[x.vdev] = await read(`${be(x.devid)}/diskseq`);
        }
        assert.deepEqual(sd.store.map((s) => s.name).sort(), DISKS.map((x) => `xvbd-loop-${seqs[x.vdev]}`).sort());
        await waitFor(() => existsSync('/dev/xvdm'), '/dev/xvdm', { timeoutMs: 30_000 });
        assert.equal(readBack(), PATTERN.toString());
        t.record('first-pass', d.passes()[0]);
      }), { timeoutMs: 170_000 });
      if (!ok1) {
        t.skip('the rest', 'the first attach failed');
        return;
      }
      await t.test('kill -9: the fd store alone keeps the devices; the next start takes them back', logged(async () => {
        await procs.at(-1)!.stop('SIGKILL');
        const t0 = Date.now();
        const d = start();
        await waitFor(() => d.passes().length >= 1, 'first pass after kill -9', { timeoutMs: 140_000 });
        t.log(`restart to first pass: ${Date.now() - t0} ms`);
        assert.match(d.out, /took back 2 loop fd\(s\) from systemd/);
        assert.match(d.passes()[0]!, /nothing to do; 2\/2 disks synced/);
        for (const x of DISKS) assert.equal(await read(`${be(x.devid)}/diskseq`), seqs[x.vdev]);
        assert.ok(await bothConnected(), 'both ends still 4');
        assert.equal(readBack(), PATTERN.toString(), 'the data is still readable through /dev/xvdm');
      }), { timeoutMs: 150_000 });
      await t.test('a disk removed from the YAML: detached through the real blkfront, unparked, freed', logged(async () => {
        const d = procs.at(-1)!;
        const dev = (await loopsOf(nFile))[0];
        assert.ok(dev);
        const t0 = Date.now();
        writeFileSync(join(conf, 'host.yaml'), config(images, DISKS.slice(0, 1)));
        await waitFor(async () => (await read(be(51920))) === undefined && (await read(fe(51920))) === undefined, 'xvdn dirs removed', { timeoutMs: 60_000 });
        t.log(`config change to detached: ${Date.now() - t0} ms`);
        await sd.waitFor('FDSTOREREMOVE', () => sd.having('FDSTOREREMOVE', '1').some((m) => m.fields.FDNAME === `xvbd-loop-${seqs.xvdn}`), 30_000);
        await waitFor(async () => (await loopsOf(nFile)).length === 0, `${dev} freed`, { timeoutMs: 30_000 });
        assert.ok(d.passes().some((l) => /-detach Domain-0 devid 51920 .* ok/.test(l)), d.passes().join('\n'));
      }), { timeoutMs: 80_000 });
    } finally {
      for (const p of procs) await p.stop('SIGTERM').catch(() => undefined);
      procs.forEach((p, i) => t.log(`daemon ${i + 1} log:\n${p.out.split('\n').slice(-25).join('\n')}`));
      for (const d of DISKS) await run('xenstore-write', [`${be(d.devid)}/online`, '0', `${be(d.devid)}/state`, '5']);
      await new Promise((r) => setTimeout(r, 2000));
      for (const d of DISKS) {
        await run('xenstore-rm', [be(d.devid)]);
        await run('xenstore-rm', [fe(d.devid)]);
        await run('xenstore-rm', [`/libxl/0/device/vbd/${d.devid}`]);
      }
      sd.close();
      for (const f of [mFile, nFile]) {
        await waitFor(async () => (await loopsOf(f)).length === 0, `${f} released`, { timeoutMs: 15_000 }).catch(async () => {
          for (const l of await loopsOf(f)) await run('losetup', ['-d', l]);
        });
      }
    }
  },
};
