// Disks served to real PV domUs, checked from inside the guests (issue "Real guests in the Xen suite").
// Two test guests (lib/testguest.ts: busybox, xen-blkfront, xsop over their own /dev/xen/xenbus, an
// agent that runs what dom0 writes to its data/xvbd/cmd/<n>) boot in a dom0 of their own (boot
// "guests"); xvbd hot-attaches their disks from a config, as `xvbd apply` does from a commit. Each TAP
// case starts with the claim it proves:
//   [domu-attach] apply hot-attaches ro + rw disks to a running domU; the guest reads the ro pattern,
//     its write to the rw disk is in the image in dom0, its write to the ro disk fails;
//   [ro-shared] one ro image for two domUs and dom0: one loop device, three frontends 4, same bytes;
//   [guest-perms] the guest's own xenstore connection: its backend readable, params / physical-device /
//     mode not writable (EACCES), its frontend writable, the other guest's dirs unreadable; the host part
//     replays the same operations on the simulator with the same permissions (a differential check);
//   [reconnect] blkfront unbound and bound again in the guest (no reconnect: recorded), then its frontend
//     dir removed: the daemon writes it anew and reprobes; same loop device, same diskseq, data read;
//   [daemon-restart-guest] kill -9 of the daemon while a guest reads and writes, then a restart: same
//     devices and diskseq, no I/O error in the guest, its I/O went on throughout;
//   [guest-hostile] garbage in a guest's own frontend nodes: plan, status and the daemon stay up, nothing
//     detached or freed, the device bound with the same diskseq;
//   [destroy] xl destroy of both domUs: backends gone, their loop devices freed (the ro one kept: dom0
//     still uses it), the daemon's and the keepers' holds released, the disks pending in `xvbd plan`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { HostContext, XenContext, XenScenario } from '../framework.js';
import { run, sh, waitFor } from '../lib/dom0.js';
import { TestGuest, buildTestGuestInitrd } from '../lib/testguest.js';
import { isAlive, loopsOf, runDirLogs, startKeepers, stopRunDirProcesses } from '../lib/xl.js';
import { connect } from '../../../src/xenstore/client.js';
import type { XsClient, XsPerms } from '../../../src/xenstore/api.js';
import { askDaemon } from '../../../src/ipc/control.js';
import { keeperLists } from '../../../src/hold/keeper-client.js';

const A = 'xvbd-ga';
const B = 'xvbd-gb';
const RO = { vdev: 'xvdb', devid: 51728 };
const RW = { vdev: 'xvdc', devid: 51744 };
/** dom0's own frontend of the shared read-only image */
const DOM0_RO = { vdev: 'xvdp', devid: 51952 };
const BASE_LINE = 'xvbd guests: the shared read-only base image';
const MB = 1 << 20;

const be = (fe: number, devid: number) => `/local/domain/0/backend/vbd/${fe}/${devid}`;
const fePath = (fe: number, devid: number) => `/local/domain/${fe}/device/vbd/${devid}`;

function config(images: string, withB: boolean): string {
  const disk = (vdev: string, file: string, mode: string) => [`  - vdev: ${vdev}`, `    file: ${images}/${file}`, `    mode: ${mode}`];
  const dom = (name: string, disks: string[][]) => ['---', 'apiVersion: xvbd/v1', 'kind: Domain', `name: ${name}`, 'disks:', ...disks.flat()];
  return [
    'apiVersion: xvbd/v1',
    'kind: Policy',
    'prune: false',
    'serve: attach',
    'detachTimeout: 20s',
    'allowedRoots:',
    `  - ${images}`,
    ...dom(A, [disk(RO.vdev, 'base.img', 'ro'), disk(RW.vdev, 'a-data.img', 'rw')]),
    ...(withB ? [...dom(B, [disk(RO.vdev, 'base.img', 'ro'), disk(RW.vdev, 'b-data.img', 'rw')]), ...dom('Domain-0', [disk(DOM0_RO.vdev, 'base.img', 'ro')])] : []),
    '',
  ].join('\n');
}

/** busybox sh: wait until the block devices exist (blkfront probed them) */
const waitDevs = (...vdevs: string[]) =>
  `i=0; while ${vdevs.map((v) => `[ ! -b /dev/${v} ]`).join(' || ')}; do i=$((i+1)); [ $i -gt 900 ] && { echo "no ${vdevs.join(' ')}"; ls /dev; exit 1; }; usleep 100000; done`;
const md5Of = (vdev: string) => `dd if=/dev/${vdev} bs=4096 count=16 2>/dev/null | md5sum | cut -d' ' -f1`;

// ---- guest-perms: the operations, as the guest runs them and as the simulator replays them ----

/** Where an operation goes, by role: A is the guest, B the other guest. */
interface PermOp {
  op: 'read' | 'ls' | 'write' | 'rm';
  /** path with {A}, {B} for the two domids */
  path: string;
  value?: string;
}
const PERM_OPS: PermOp[] = [
  { op: 'read', path: `/local/domain/0/backend/vbd/{A}/${RO.devid}/params` },
  { op: 'ls', path: `/local/domain/0/backend/vbd/{A}/${RO.devid}` },
  { op: 'read', path: `/local/domain/0/backend/vbd/{A}/${RO.devid}/physical-device` },
  { op: 'write', path: `/local/domain/0/backend/vbd/{A}/${RO.devid}/params`, value: '/etc/shadow' },
  { op: 'write', path: `/local/domain/0/backend/vbd/{A}/${RO.devid}/physical-device`, value: '7:0' },
  { op: 'write', path: `/local/domain/0/backend/vbd/{A}/${RO.devid}/mode`, value: 'w' },
  { op: 'rm', path: `/local/domain/0/backend/vbd/{A}/${RO.devid}/mode` },
  { op: 'write', path: `/local/domain/{A}/device/vbd/${RO.devid}/xvbd-perm-test`, value: '1' },
  { op: 'read', path: `/local/domain/{A}/device/vbd/${RO.devid}/xvbd-perm-test` },
  { op: 'rm', path: `/local/domain/{A}/device/vbd/${RO.devid}/xvbd-perm-test` },
  { op: 'read', path: `/local/domain/{B}/device/vbd/${RO.devid}/state` },
  { op: 'ls', path: `/local/domain/{B}/device/vbd/${RO.devid}` },
  { op: 'write', path: `/local/domain/{B}/device/vbd/${RO.devid}/state`, value: '1' },
  { op: 'read', path: `/local/domain/0/backend/vbd/{B}/${RO.devid}/params` },
  { op: 'ls', path: `/local/domain/0/backend/vbd/{B}/${RO.devid}` },
];
const fill = (p: string, a: number, b: number) => p.replaceAll('{A}', String(a)).replaceAll('{B}', String(b));
/** what an answer says: "ok" or xenstored's error name */
const outcome = (line: string): string => (/^ERR (\w+)/.exec(line)?.[1] ?? 'ok');

/** The guest's script: one line per operation, "<i> <first line of xsop's answer>". */
function permScript(a: number, b: number): string {
  return PERM_OPS.map((o, i) => {
    const args = [o.op, fill(o.path, a, b), ...(o.value !== undefined ? [o.value] : [])].map((x) => `'${x}'`).join(' ');
    return `r=$(xsop ${args} 2>&1 | head -n 1); echo "${i} $r"`;
  }).join('\n');
}

/** The nodes whose permissions decide the answers: each operation's path and its parents below /local/domain/<x>. */
function permNodes(): string[] {
  const out = new Set<string>();
  for (const o of PERM_OPS) {
    const parts = o.path.split('/');
    for (let k = 4; k <= parts.length; k++) out.add(parts.slice(0, k).join('/'));
  }
  return [...out].filter((p) => !p.endsWith('/xvbd-perm-test')).sort();
}

interface PermRecord {
  a: number;
  b: number;
  /** role path -> [value, perms with {A}/{B}] */
  nodes: Record<string, { value: string; perms: string }>;
  /** per operation: "ok" or the error name */
  real: string[];
}

const permsText = (p: XsPerms, a: number, b: number) =>
  p.map((x) => `${x.perm}${x.domid === a ? '{A}' : x.domid === b ? '{B}' : String(x.domid)}`).join(',');
const parsePermsText = (s: string, a: number, b: number): XsPerms =>
  s.split(',').map((e) => ({ perm: e[0] as 'n' | 'r' | 'w' | 'b', domid: Number(fill(e.slice(1), a, b)) }));

// ---- the scenario ----

export const scenario: XenScenario = {
  description: 'real PV domUs with disks xvbd serves, checked from inside the guests: attach, ro sharing, permissions, reconnect, daemon restart, hostile guest, destroy',
  boot: 'guests',
  // two guest boots, two Node CLI runs per case and two daemon starts under TCG on a loaded host
  xenTimeoutMs: 780_000,
  async xen(t) {
    const images = join(t.tmpDir, 'guest-images');
    const conf = join(t.tmpDir, 'guest-conf');
    const runDir = join(t.tmpDir, 'guest-run');
    for (const d of [images, conf, runDir]) mkdirSync(d, { recursive: true });
    const img = (f: string) => join(images, f);
    for (const f of ['base.img', 'a-data.img', 'b-data.img']) writeFileSync(img(f), Buffer.alloc(8 * MB));
    {
      const fd = openSync(img('base.img'), 'r+');
      for (let off = 0; off < 64 * 1024; off += 4096) writeSync(fd, Buffer.from(`${BASE_LINE} @${off}\n`), 0, undefined, off);
      closeSync(fd);
    }
    writeFileSync(join(conf, 'host.yaml'), config(images, false));
    const cli = join(t.repoRoot, 'dist/src/cli/main.js');
    // libxl's xl destroy runs a backend's script= remove: the native hook, which asks the daemon
    const env: NodeJS.ProcessEnv = { ...process.env, XVBD_RUN_DIR: runDir, XVBD_CONFIG: conf, XVBD_HOOK_SCRIPT: join(t.repoRoot, 'dist/native/xvbd-hook') };
    delete env.XENSTORED_PATH;
    delete env.XVBD_XEN_BACKEND_SYSFS;
    const xvbd = (args: string[], timeoutMs = 240_000) => run(process.execPath, [cli, ...args], { env, timeoutMs });
    const xs: XsClient = await connect({ path: t.xenstoredSocket });
    const read = (p: string) => xs.read(p);
    const guests: TestGuest[] = [];
    let daemon: Daemon | undefined;
    const diskseqOf = async (dev: string) => readFileSync(`/sys/block/${dev.replace('/dev/', '')}/diskseq`, 'utf8').trim();
    const loopOf = async (file: string) => {
      const l = await loopsOf(img(file));
      assert.equal(l.length, 1, `one loop device on ${file}: ${l.join(' ')}`);
      return { dev: l[0]!, diskseq: await diskseqOf(l[0]!) };
    };
    const state = async (fe: number, devid: number) => `be ${await read(`${be(fe, devid)}/state`)} fe ${await read(`${fePath(fe, devid)}/state`)}`;
    const connected = async (fe: number, devid: number) => (await state(fe, devid)) === 'be 4 fe 4';
    const ctx = async () => {
      const lines = [];
      for (const g of guests) for (const d of [RO, RW]) lines.push(`${g.name} ${d.vdev}: ${await state(g.domid, d.devid)}`);
      return lines.join('\n') + (daemon ? `\n--- daemon log ---\n${daemon.out.split('\n').slice(-25).join('\n')}` : '') + `\n${runDirLogs(runDir)}`;
    };
    const logged = (fn: () => Promise<void>) => async () => {
      try {
        await fn();
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${await ctx()}`);
      }
    };
    try {
      await sh('modprobe', ['xen-blkfront']);
      // The two keepers first, as their units would be: a cold Node start under TCG on a loaded host can
      // take longer than the 60 s apply gives a keeper it starts itself (and longer still beside two
      // booting guests, so the guests wait).
      const k0 = Date.now();
      const keepersUp = await startKeepers(t.repoRoot, env, runDir, 300_000);
      t.log(`keepers ${keepersUp ? 'listening' : 'NOT listening'} after ${Date.now() - k0} ms`);
      const ramdisk = await buildTestGuestInitrd(t.tmpDir, t.repoRoot);
      await t.test('two test guests boot and their agents answer over their own xenbus', async () => {
        const [ga, gb] = await Promise.all([A, B].map((name) => TestGuest.create({ name, dir: t.tmpDir, ramdisk, xs, log: (l) => t.log(l) })));
        guests.push(ga!, gb!);
        assert.ok(keepersUp, `the keepers did not start:\n${runDirLogs(runDir)}`);
        assert.equal((await ga!.ok('cat /proc/cmdline >/dev/null; echo "$((6*7))"')).trim(), '42');
      }, { timeoutMs: 300_000 });
      if (guests.length !== 2) throw new Error('the test guests did not come up');
      const [ga, gb] = guests as [TestGuest, TestGuest];

      await t.test('[domu-attach] xvbd apply hot-attaches a ro and a rw disk to a running domU: the guest reads the ro pattern, its rw write is in the image, a write to the ro disk fails', logged(async () => {
        const r = await xvbd(['apply', '--auto-approve']);
        t.log(`apply: exit ${r.code}\n${r.stdout}`);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        for (const d of [RO, RW]) await waitFor(() => connected(ga.domid, d.devid), `${A} ${d.vdev} both ends 4`, { timeoutMs: 120_000, intervalMs: 500 });
        assert.equal(await read(`${be(ga.domid, RO.devid)}/mode`), 'r');
        assert.equal(await read(`${be(ga.domid, RW.devid)}/mode`), 'w');
        await ga.ok(waitDevs(RO.vdev, RW.vdev), 120_000);
        const line = (await ga.ok(`dd if=/dev/${RO.vdev} bs=512 count=1 2>/dev/null | head -n 1`)).trim();
        assert.equal(line, `${BASE_LINE} @0`);
        const wrote = `${A} wrote this through blkfront`;
        await ga.ok(`echo "${wrote}" | dd of=/dev/${RW.vdev} bs=512 count=1 conv=sync,fsync 2>&1`);
        await waitFor(() => readFileSync(img('a-data.img')).subarray(0, wrote.length).toString() === wrote, 'the guest\'s write in a-data.img', { timeoutMs: 30_000 });
        const before = readFileSync(img('base.img')).subarray(0, 512);
        const ro = await ga.run(`dd if=/dev/zero of=/dev/${RO.vdev} bs=512 count=1 conv=fsync 2>&1`);
        t.log(`write to the ro disk in the guest: exit ${ro.rc}: ${ro.out.trim()}`);
        assert.notEqual(ro.rc, 0, `a write to the read-only ${RO.vdev} succeeded in the guest: ${ro.out}`);
        assert.deepEqual(readFileSync(img('base.img')).subarray(0, 512), before, 'base.img unchanged');
      }), { timeoutMs: 400_000 });

      await t.test('[ro-shared] one ro image for two domUs and dom0: exactly one loop device, three frontends Connected, the same bytes read by all three', logged(async () => {
        writeFileSync(join(conf, 'host.yaml'), config(images, true));
        const r = await xvbd(['apply', '--auto-approve']);
        t.log(`apply: exit ${r.code}\n${r.stdout}`);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const fronts = [[ga.domid, RO.devid], [gb.domid, RO.devid], [gb.domid, RW.devid], [0, DOM0_RO.devid]] as const;
        for (const [fe, devid] of fronts) await waitFor(() => connected(fe, devid), `frontend ${fe}/${devid} both ends 4`, { timeoutMs: 120_000, intervalMs: 500 });
        const base = await loopOf('base.img');
        const pds = await Promise.all([[ga.domid, RO.devid], [gb.domid, RO.devid], [0, DOM0_RO.devid]].map(([fe, devid]) => read(`${be(fe!, devid!)}/physical-device`)));
        assert.equal(new Set(pds).size, 1, `one physical-device for the three: ${pds.join(' ')}`);
        await gb.ok(waitDevs(RO.vdev, RW.vdev), 120_000);
        await waitFor(async () => (await run('test', ['-b', `/dev/${DOM0_RO.vdev}`])).code === 0, `/dev/${DOM0_RO.vdev} in dom0`, { timeoutMs: 60_000 });
        const want = createHash('md5').update(readFileSync(img('base.img')).subarray(0, 64 * 1024)).digest('hex');
        const dom0Buf = Buffer.alloc(64 * 1024);
        const fd = openSync(`/dev/${DOM0_RO.vdev}`, 'r');
        try {
          readSync(fd, dom0Buf, 0, dom0Buf.length, 0);
        } finally {
          closeSync(fd);
        }
        const got = { [A]: (await ga.ok(md5Of(RO.vdev))).trim(), [B]: (await gb.ok(md5Of(RO.vdev))).trim(), 'Domain-0': createHash('md5').update(dom0Buf).digest('hex') };
        assert.deepEqual(got, { [A]: want, [B]: want, 'Domain-0': want });
        t.log(`one loop device ${base.dev} (diskseq ${base.diskseq}) for ${A}, ${B} and Domain-0; md5 of the first 64 KiB ${want} everywhere`);
      }), { timeoutMs: 400_000 });

      await t.test('[guest-perms] from inside a domU over its own xenbus: its backend readable, params/physical-device/mode not writable, its frontend writable, the other guest\'s dirs unreadable', logged(async () => {
        const out = await ga.ok(permScript(ga.domid, gb.domid));
        const lines = out.trim().split('\n');
        const real = PERM_OPS.map((_, i) => outcome(lines.find((l) => l.startsWith(`${i} `))?.slice(String(i).length + 1) ?? 'ERR (no answer)'));
        t.log(PERM_OPS.map((o, i) => `${o.op} ${o.path}: ${real[i]}`).join('\n'));
        const expect = ['ok', 'ok', 'ok', 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'ok', 'ok', 'ok', 'EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES'];
        assert.deepEqual(real, expect);
        assert.equal(await read(`${be(ga.domid, RO.devid)}/params`), img('base.img'), 'params unchanged');
        const nodes: PermRecord['nodes'] = {};
        for (const p of permNodes()) {
          const path = fill(p, ga.domid, gb.domid);
          const value = await read(path);
          if (value === undefined) continue;
          nodes[p] = { value, perms: permsText(await xs.getPerms(path), ga.domid, gb.domid) };
        }
        t.record('perms', { a: ga.domid, b: gb.domid, nodes, real } satisfies PermRecord);
      }), { timeoutMs: 120_000 });

      await t.test('[reconnect] blkfront unbound in the guest: both ends close, the loop device stays with the same diskseq; a bind does not bring the frontend back (Linux 6.1, recorded); the guest removes its frontend dir: the daemon writes it anew and reprobes the backend, the guest reads its data again on the same device', logged(async () => {
        const before = await loopOf('a-data.img');
        const pd = await read(`${be(ga.domid, RW.devid)}/physical-device`);
        const drv = '/sys/bus/xen/drivers/vbd';
        await ga.ok(`echo vbd-${RW.devid} > ${drv}/unbind && i=0; while [ -b /dev/${RW.vdev} ]; do i=$((i+1)); [ $i -gt 300 ] && exit 1; usleep 100000; done; echo unbound`, 60_000);
        await waitFor(async () => (await state(ga.domid, RW.devid)) === 'be 6 fe 6', `${A} ${RW.vdev} both ends Closed`, { timeoutMs: 60_000, intervalMs: 500 });
        t.log(`closed: blkback ${blkbackHolds(ga.domid, RW.devid) ? 'still holds the device (online=1)' : 'let go'}`);
        assert.deepEqual(await loopOf('a-data.img'), before, 'the loop device while the frontend is closed');
        assert.equal(await read(`${be(ga.domid, RW.devid)}/physical-device`), pd, 'the backend still names it');
        // Bound again, Linux 6.1's blkfront keeps the Closed state its unbind left and ignores a backend
        // waiting in InitWait (recorded: frontend 1 written by the guest, backend 2, no ring): a frontend
        // comes back only as a new device, which blkback probes only when a backend node changes.
        await ga.ok(`xsop write device/vbd/${RW.devid}/state 1`);
        await waitFor(async () => (await read(`${be(ga.domid, RW.devid)}/state`)) === '2', `${A} ${RW.vdev}'s backend in InitWait again`, { timeoutMs: 60_000, intervalMs: 500 });
        const bound = await ga.run(`echo vbd-${RW.devid} > ${drv}/bind; i=0; while [ ! -b /dev/${RW.vdev} ] && [ $i -lt 100 ]; do i=$((i+1)); usleep 100000; done; [ -b /dev/${RW.vdev} ] && echo reconnected || echo "not reconnected"`, 60_000);
        t.log(`bind after unbind: ${bound.out.trim()}; ${await state(ga.domid, RW.devid)}`);
        assert.deepEqual(await loopOf('a-data.img'), before, 'the loop device after the bind');
        const afterBind = await state(ga.domid, RW.devid);

        // A frontend comes back as a new xenbus device: the guest removes its frontend dir (its own) and
        // cannot write one back (device/vbd is not its own). blkback unregisters the backend; the daemon,
        // watching the frontend's state, writes the frontend anew and has the kernel probe the backend.
        daemon = await Daemon.start(cli, conf, env);
        const rm = await ga.run(`xsop rm device/vbd/${RW.devid} && echo removed; xsop write device/vbd/${RW.devid + 16}/state 1 2>&1 || true`);
        t.log(`the guest: ${rm.out.trim().replace(/\n/g, ' | ')}`);
        assert.match(rm.out, /removed/);
        assert.match(rm.out, /EACCES/, 'a guest cannot create a frontend dir of its own');
        await waitFor(() => connected(ga.domid, RW.devid), `${A} ${RW.vdev} both ends 4 again`, { timeoutMs: 120_000, intervalMs: 500 });
        await ga.ok(waitDevs(RW.vdev), 120_000);
        const line = (await ga.ok(`dd if=/dev/${RW.vdev} bs=512 count=1 2>/dev/null | head -n 1`)).trim();
        assert.equal(line, `${A} wrote this through blkfront`, 'the guest reads its data again');
        assert.deepEqual(await loopOf('a-data.img'), before, 'the same loop device, the same diskseq');
        assert.equal(await read(`${be(ga.domid, RW.devid)}/physical-device`), pd, 'the backend names the same device');
        assert.ok(blkbackHolds(ga.domid, RW.devid), 'blkback holds it again');
        const reprobed = daemon.out.split('\n').filter((l) => /reprobe/.test(l));
        assert.ok(reprobed.length > 0, `the daemon reprobed it:\n${daemon.out.split('\n').slice(-20).join('\n')}`);
        t.log(`reconnected: ${reprobed.join(' | ')}`);
        t.record('reconnect', { bound: bound.out.trim(), states: afterBind, guest: rm.out.trim(), reprobed });
      }), { timeoutMs: 360_000 });

      await t.test('[daemon-restart-guest] kill -9 of the daemon while a domU reads and writes, then a restart: same loop devices, same diskseq, no I/O error, the I/O went on', logged(async () => {
        // started by [reconnect] when it got that far
        daemon ??= await Daemon.start(cli, conf, env);
        const loops = { base: await loopOf('base.img'), a: await loopOf('a-data.img'), b: await loopOf('b-data.img') };
        // the guest's I/O loop: a counter written to the rw disk at 1 MiB and read back, the ro disk read
        await gb.ok(
          [
            'touch /tmp/io.run; : > /tmp/io.err; echo 0 > /tmp/io.n',
            '( i=0; while [ -e /tmp/io.run ]; do i=$((i+1));',
            // a missing /dev node would make dd write a plain file in /dev and read it back
            `  [ -b /dev/${RW.vdev} ] && [ -b /dev/${RO.vdev} ] || echo "no block device in round $i" >> /tmp/io.err;`,
            `  echo "io $i" | dd of=/dev/${RW.vdev} bs=512 seek=2048 count=1 conv=sync,fsync 2>/dev/null || echo "write $i failed" >> /tmp/io.err;`,
            `  [ "$(dd if=/dev/${RW.vdev} bs=512 skip=2048 count=1 2>/dev/null | head -n 1)" = "io $i" ] || echo "read-back $i differs" >> /tmp/io.err;`,
            `  dd if=/dev/${RO.vdev} bs=4096 count=1 2>/dev/null | grep -q "xvbd guests" || echo "ro read $i failed" >> /tmp/io.err;`,
            '  echo $i > /tmp/io.n; usleep 200000; done ) > /dev/null 2>&1 &',
            'echo started',
          ].join('\n'),
        );
        const count = async () => Number((await gb.ok('cat /tmp/io.n')).trim());
        await waitFor(async () => (await count()) >= 3, 'the guest\'s I/O loop running', { timeoutMs: 60_000 });
        const atKill = await count();
        await daemon.kill('SIGKILL');
        t.log(`daemon killed (-9) at I/O round ${atKill}`);
        const whileDown = await waitFor(async () => {
          const n = await count();
          return n >= atKill + 3 ? n : 0;
        }, 'I/O rounds while no daemon runs', { timeoutMs: 60_000 });
        daemon = await Daemon.start(cli, conf, env);
        const afterRestart = await waitFor(async () => {
          const n = await count();
          return n >= whileDown + 3 ? n : 0;
        }, 'I/O rounds after the restart', { timeoutMs: 60_000 });
        const errs = await gb.ok('rm -f /tmp/io.run; sleep 1; cat /tmp/io.err');
        t.log(`I/O rounds: ${atKill} at the kill, ${whileDown} while down, ${afterRestart} after the restart; errors: ${errs.trim() || 'none'}`);
        assert.equal(errs.trim(), '', 'I/O errors in the guest');
        assert.deepEqual({ base: await loopOf('base.img'), a: await loopOf('a-data.img'), b: await loopOf('b-data.img') }, loops);
        for (const d of [RO, RW]) assert.ok(await connected(gb.domid, d.devid), `${B} ${d.vdev} still Connected`);
      }), { timeoutMs: 400_000 });

      await t.test('[guest-hostile] a guest writes garbage into its own frontend nodes: plan, status and the daemon stay up; nothing detached or freed; the device bound with the same diskseq', logged(async () => {
        if (!daemon) throw new Error('no daemon (the restart case failed)');
        const before = { base: await loopOf('base.img'), a: await loopOf('a-data.img'), b: await loopOf('b-data.img') };
        const F = `device/vbd/${RW.devid}`;
        const stage1 = await gb.run(
          [
            `xsop write ${F}/state abc`,
            `xsop big ${F}/junk-big 4000`,
            `xsop fill ${F}/junk 3000 x`,
            `xsop write ${F}/backend ${be(ga.domid, RW.devid)}`,
            `xsop write ${F}/backend-id 9999999999999999999999`,
            `xsop write ${F}/event-channel -1`,
          ].join('\n'),
        );
        t.log(`garbage, stage 1 (rc ${stage1.rc}): ${stage1.out.replace(/\n/g, ' | ')}`);
        const checkTools = async (stage: string) => {
          for (const args of [['plan', '--json'], ['status', '--json']]) {
            const r = await xvbd(args);
            // 0, or 3 while an error finding (the guest's broken frontend) stands: never 1, an error
            assert.ok([0, 2, 3].includes(r.code), `${stage}: xvbd ${args[0]} exit ${r.code}: ${r.stderr}`);
            JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
          }
          const ping = await askDaemon({ op: 'ping' }, { path: join(runDir, 'control.sock') });
          assert.ok(ping?.ok, `${stage}: the daemon answers`);
        };
        await checkTools('after non-numeric state, 4 KB value, extra nodes, a foreign backend');
        await gb.run(`xsop write ${F}/state 99`);
        await checkTools('after state 99');
        await gb.run(`xsop rm ${F}/state`);
        await checkTools('after the state node removed');
        await daemon.reconcileNow(xvbd);
        assert.ok(daemon.alive(), 'the daemon runs');
        for (const d of [RO, RW]) assert.notEqual(await read(`${be(gb.domid, d.devid)}/params`), undefined, `${B} ${d.vdev}: backend still there`);
        assert.deepEqual({ base: await loopOf('base.img'), a: await loopOf('a-data.img'), b: await loopOf('b-data.img') }, before, 'same devices, same diskseq');
        assert.equal((await ga.ok(`dd if=/dev/${RO.vdev} bs=512 count=1 2>/dev/null | head -n 1`)).trim(), `${BASE_LINE} @0`, `${A} unaffected`);
        const failed = daemon.out.split('\n').filter((l) => /-detach|-free|BUG|FAILED/.test(l));
        assert.deepEqual(failed, [], 'no detach, free or failure in the daemon\'s log');
      }), { timeoutMs: 400_000 });

      await t.test('[destroy] xl destroy of both domUs: their backends go, their loop devices are freed (the shared ro one kept for dom0), the holds released, the disks pending', logged(async () => {
        if (!daemon) throw new Error('no daemon');
        const base = await loopOf('base.img');
        for (const g of [ga, gb]) {
          const r = await run('xl', ['destroy', g.name], { env, timeoutMs: 120_000 });
          assert.equal(r.code, 0, `xl destroy ${g.name}: ${r.stdout}${r.stderr}`);
        }
        for (const g of [ga, gb]) {
          await waitFor(async () => (await xs.directory(`/local/domain/0/backend/vbd/${g.domid}`).catch(() => [])).length === 0, `no backend of ${g.name}`, { timeoutMs: 60_000 });
        }
        for (const f of ['a-data.img', 'b-data.img']) await waitFor(async () => (await loopsOf(img(f))).length === 0, `the loop device of ${f} freed`, { timeoutMs: 60_000 });
        assert.deepEqual(await loopOf('base.img'), base, 'the shared ro device stays for dom0, same diskseq');
        const gone = new Set([ga, gb].flatMap((g) => [RO, RW].map((d) => be(g.domid, d.devid))));
        await waitFor(async () => {
          const st = await askDaemon({ op: 'status' }, { path: join(runDir, 'control.sock') });
          const held = ((st?.held ?? []) as { users: string[] }[]).flatMap((h) => h.users);
          return !held.some((u) => gone.has(u));
        }, 'the daemon lets go of the guests\' backends', { timeoutMs: 60_000 });
        await waitFor(async () => (await keeperLists(runDir)).every((k) => !k.held.some((h) => gone.has(h.backend))), 'the keepers let go', { timeoutMs: 60_000 });
        const plan = await xvbd(['plan', '--json']);
        const rows = (JSON.parse(plan.stdout.slice(plan.stdout.indexOf('{'))) as { disks: { domain: string; vdev: string; sync: string }[] }).disks;
        const guestRows = rows.filter((r) => r.domain === A || r.domain === B).map((r) => `${r.domain} ${r.vdev} ${r.sync}`).sort();
        assert.deepEqual(guestRows, [`${A} ${RO.vdev} pending`, `${A} ${RW.vdev} pending`, `${B} ${RO.vdev} pending`, `${B} ${RW.vdev} pending`]);
        guests.length = 0;
      }), { timeoutMs: 300_000 });
    } finally {
      await daemon?.kill('SIGTERM');
      for (const g of guests) await g.destroy().catch(() => undefined);
      await cleanupDom0Disk(xs, t);
      await stopRunDirProcesses(runDir, t);
      for (const f of ['base.img', 'a-data.img', 'b-data.img']) {
        for (const l of await loopsOf(img(f))) {
          t.log(`cleanup: ${l} still on ${f}: losetup -d`);
          await run('losetup', ['-d', l]);
        }
      }
      await xs.close();
    }
  },

  async host(t: HostContext) {
    await t.test('[guest-perms] the simulator\'s guest view gives the real answers (same operations, same permissions)', async () => {
      const rec = t.recorded<PermRecord>('perms');
      assert.ok(rec, 'no recording from real Xen (its [guest-perms] case failed)');
      const { startSimulator } = await import('../../../src/sim/index.js');
      mkdirSync(t.tmpDir, { recursive: true });
      const sim = await startSimulator({ socketPath: join(t.tmpDir, 'xs.sock'), domains: [{ name: A }, { name: B }] });
      const xs = await connect({ path: sim.socketPath });
      try {
        const a = sim.domains().find((d) => d.name === A)!.domid;
        const b = sim.domains().find((d) => d.name === B)!.domid;
        // the real nodes, parents first, with their real permissions (domids mapped)
        for (const p of Object.keys(rec.nodes).sort()) {
          const path = fill(p, a, b);
          if ((await xs.read(path)) === undefined) await xs.write(path, rec.nodes[p]!.value);
          await xs.setPerms(path, parsePermsText(rec.nodes[p]!.perms, a, b));
        }
        const guest = sim.asDomain(a);
        const sim_ = PERM_OPS.map((o) => {
          const path = fill(o.path, a, b);
          try {
            if (o.op === 'read') guest.read(path);
            else if (o.op === 'ls') guest.directory(path);
            else if (o.op === 'write') guest.write(path, o.value!);
            else guest.rm(path);
            return 'ok';
          } catch (e) {
            return (e as { errno?: string }).errno ?? String(e);
          }
        });
        const diffs = PERM_OPS.map((o, i) => (sim_[i] === rec.real[i] ? '' : `${o.op} ${o.path}: real ${rec.real[i]}, simulator ${sim_[i]}`)).filter(Boolean);
        assert.deepEqual(diffs, []);
      } finally {
        await xs.close();
        await sim.close();
      }
    });
  },
};

/** Whether blkback's vbd for this backend is registered and holds a device (xen-backend sysfs). */
function blkbackHolds(fe: number, devid: number): boolean {
  try {
    return readFileSync(`/sys/bus/xen-backend/devices/vbd-${fe}-${devid}/physical_device`, 'utf8').trim() !== '';
  } catch {
    return false;
  }
}

/** dom0's own frontend of the shared image: closed through blkfront, then the dirs removed. */
async function cleanupDom0Disk(xs: XsClient, t: XenContext): Promise<void> {
  const b = be(0, DOM0_RO.devid);
  if ((await xs.read(b)) === undefined) return;
  await xs.write(`${b}/online`, '0');
  await xs.write(`${b}/state`, '5');
  await waitFor(async () => (await xs.read(`${b}/state`)) === '6', `${b} closed`, { timeoutMs: 20_000 }).catch(() => t.log(`cleanup: ${b} did not reach 6`));
  for (const p of [b, fePath(0, DOM0_RO.devid), `/libxl/0/device/vbd/${DOM0_RO.devid}`]) await xs.rm(p).catch(() => undefined);
}

/** `xvbd reconcile --watch` without systemd (its holds: itself and the two keepers). */
class Daemon {
  out = '';
  private code: number | null | undefined;
  private readonly exited: Promise<void>;
  private constructor(private readonly child: ReturnType<typeof spawn>) {
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exited = new Promise((r) => child.on('close', (c) => ((this.code = c), r())));
  }

  /** Starts it and waits until its first pass has ended. */
  static async start(cli: string, conf: string, env: NodeJS.ProcessEnv): Promise<Daemon> {
    const d = new Daemon(spawn(process.execPath, [cli, 'reconcile', '--watch', '--config', conf, '--resync', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    const ctl = join(env.XVBD_RUN_DIR!, 'control.sock');
    try {
      await waitFor(async () => {
        if (d.code !== undefined) throw new Error(`the daemon exited (${d.code}): ${d.out}`);
        const rep = await askDaemon({ op: 'ping' }, { path: ctl }).catch(() => undefined);
        return Boolean(rep?.ok && Number(rep.finished) >= 1);
      }, 'the daemon\'s first pass', { timeoutMs: 180_000, intervalMs: 500 });
    } catch (err) {
      await d.kill('SIGTERM');
      throw new Error(`${(err as Error).message}\n--- the daemon's output ---\n${d.out.split('\n').slice(-30).join('\n')}`);
    }
    return d;
  }

  alive(): boolean {
    return this.code === undefined && this.child.pid !== undefined && isAlive(this.child.pid);
  }

  /** A pass now (`xvbd reconcile` asks the running daemon), so what the guest wrote has been looked at. */
  async reconcileNow(xvbd: (a: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>): Promise<void> {
    const r = await xvbd(['reconcile']);
    assert.ok([0, 2, 3].includes(r.code ?? -1), `xvbd reconcile: exit ${r.code}: ${r.stdout}${r.stderr}`);
  }

  async kill(sig: NodeJS.Signals): Promise<void> {
    if (this.code !== undefined) return;
    this.child.kill(sig);
    await this.exited;
  }
}
