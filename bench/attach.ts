// `npm run bench -- attach [--json] [--n N] [--no-script]`: in one run, against the same simulator:
//  - xvbd's per-disk attach (the executor: loop device with autoclear + verification + diskseq, the fd
//    handed to the keeper, frontend + backend + libxl dirs in one transaction);
//  - the real Xen block script (/etc/xen/scripts/block add, unmodified) per disk, the backend dirs
//    written beforehand as libxl does (only the script's own run is timed);
//  - a no-op plan() at 1,000 disks across 100 domains (synthetic converged state);
//  - the bare ioctls (bench/loops.ts bareAttach: GET_FREE + open + LOOP_CONFIGURE) for the same N files,
//    so that xvbd / bare and block script / xvbd come from one run;
//  - xvbd's time per phase (device, keeper adopt, transaction, release), timed around the executor's
//    collaborators; the executor overlaps them, so their sum exceeds the wall time ("overlapped").
// Frees every loop device it made (the block script's with losetup -d: they have no autoclear).
import { execFile } from 'node:child_process';
import { existsSync, fstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { BATCH_MAX, execute, layoutWrites } from '../src/apply/execute.js';
import type { FdHolder } from '../src/hold/holder.js';
import { attachLayout } from '../src/xenstore/layout.js';
import { devMajor, devMinor, getDiskseq } from '../src/linux/loopdev.js';
import type { DeviceProvider } from '../src/hold/devices.js';
import type { XsClient, XsTransaction } from '../src/xenstore/api.js';
import { KeeperHolder } from '../src/hold/holder.js';
import { RegistryDevices } from '../src/apply/linux-devices.js';
import { devidToVdev } from '../src/config/index.js';
import { LoopRegistry } from '../src/linux/index.js';
import { DEFAULT_POLICY, type DiskSpec } from '../src/model/desired.js';
import type { Action, Plan } from '../src/model/plan.js';
import { plan } from '../src/plan/index.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '../src/xenstore/client.js';
import { keeperLists, keeperSocketPath } from '../src/hold/keeper-client.js';
import { KEEPER_SLOTS } from '../src/plan/holding.js';
import { bigConvergedHost, disk } from '../test/plan/fixtures.js';
import { sysClose } from '../src/linux/ffi.js';
import { bareAttach } from './loops.js';

const run_ = promisify(execFile);
const BLOCK = '/etc/xen/scripts/block';

/** The warm-up disks' indexes (this one and the one below: devids outside the measured ones, n <= 200). */
const WARM_DEVID_INDEX = 255;

function devid(i: number): number {
  return i < 16 ? (202 << 8) | (i << 4) : (1 << 28) | (i << 8);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function backingOf(dev: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${dev.replace('/dev/', '')}/loop/backing_file`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

const cliMain = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat. */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 (utime, stime) in clock ticks (USER_HZ: 100 on Linux); after the ")" the list starts at field 3
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

export async function startSimProcess(dir: string): Promise<{ pid: number; socketPath: string; sysfsDir: string; settle(): Promise<void>; close(): Promise<void> }> {
  const socketPath = join(dir, 'xs.sock');
  // the simulated blkback mirrors sysfs with real files: in memory (tmpfs) like the real sysfs, so that a
  // disk's journal on a busy host does not stall the simulated kernel
  const sysfsDir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/xvbd-bench-sysfs-') : join(dir, 'sysfs');
  const child = spawn(process.execPath, [cliMain, 'sim', '--socket', socketPath, '--sysfs', sysfsDir, '--domain', 'bench-xvbd=1', '--domain', 'bench-script=2', '--domain', 'bench-floor=3'], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const deadline = Date.now() + 10_000;
  while (!existsSync(socketPath)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('the simulator did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    pid: child.pid!,
    socketPath,
    sysfsDir,
    // blkback reacts asynchronously in the other process: give it a moment
    settle: () => new Promise((r) => setTimeout(r, 50)),
    close: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGTERM');
      }).finally(() => rmSync(sysfsDir, { recursive: true, force: true })),
  };
}

function noopPlanMs(): { ms: number; disks: number } {
  const { desired: d, observed: obs } = bigConvergedHost();
  const p0 = plan(d, obs, d.policy);
  if (p0.actions.length !== 0) throw new Error(`the synthetic state is not converged: ${p0.actions.length} actions`);
  for (let k = 0; k < 5; k++) plan(d, obs, d.policy);
  const t: number[] = [];
  for (let k = 0; k < 21; k++) {
    const t0 = performance.now();
    plan(d, obs, d.policy);
    t.push(performance.now() - t0);
  }
  return { ms: median(t), disks: obs.backends.length };
}

/** Wraps the executor's collaborators to time each phase of every step (the executor itself is unchanged). */
function phaseTimers() {
  const t: Record<string, number> = { provide: 0, hold: 0, transaction: 0, release: 0 };
  let txStarts = 0;
  let txs = 0;
  const timed = async <T>(k: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      t[k]! += performance.now() - t0;
    }
  };
  return {
    devices(d: DeviceProvider): DeviceProvider {
      return {
        provide: (disk, key, opts) => timed('provide', () => d.provide(disk, key, opts)),
        release: (key) => {
          const t0 = performance.now();
          d.release(key);
          t.release! += performance.now() - t0;
        },
        free: (loop) => d.free(loop),
        take: (loop, key) => d.take(loop, key),
        inspect: (dev) => d.inspect(dev),
      };
    },
    holder(h: FdHolder): FdHolder {
      return {
        hold: (dev, be) => timed('hold', () => h.hold(dev, be)),
        abort: (dev, be) => h.abort(dev, be),
        releaseAfterCommit: h.releaseAfterCommit,
      };
    },
    xs(x: XsClient): XsClient {
      const start = x.transactionStart.bind(x);
      x.transactionStart = () => {
        txStarts++;
        return start();
      };
      const tx = x.transaction.bind(x);
      x.transaction = <T>(fn: (t: XsTransaction) => Promise<T>, o?: { maxAttempts?: number }) => {
        txs++;
        return timed('transaction', () => tx(fn, o));
      };
      return x;
    },
    report(n: number, totalMsPerDisk: number): Record<string, number> {
      const out: Record<string, number> = {};
      let sum = 0;
      for (const [k, v] of Object.entries(t)) {
        out[k] = Number((v / n).toFixed(2));
        sum += v / n;
      }
      // the executor overlaps them (the keeper's adopt with the transaction, the next disk's device with
      // this disk's transaction): how much of their sum the wall time does not pay
      out.overlapped = Number((sum - totalMsPerDisk).toFixed(2));
      out.tx_attempts_per_tx = Number((txStarts / Math.max(1, txs)).toFixed(2));
      return out;
    },
  };
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, n: { type: 'string' }, 'no-script': { type: 'boolean' } }, strict: true });
  const n = values.n !== undefined ? Number(values.n) : 20;
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new Error('--n must be 1..200');
  const say = (s: string) => {
    if (!values.json) process.stdout.write(s + '\n');
  };
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-bench-attach-'));
  // the simulator in its own process, as xenstored and the kernel are: its simulated blkback (which
  // really opens every device) must not run on the event loop being measured
  const sim = await startSimProcess(dir);
  const runDir = join(dir, 'run');
  Object.assign(process.env, {
    XENSTORED_PATH: sim.socketPath,
    XVBD_XEN_BACKEND_SYSFS: sim.sysfsDir,
    XVBD_RUN_DIR: runDir,
    XVBD_KEEPER_XS_LOST_EXIT_MS: '15000',
  });
  const xs = await connect({ path: sim.socketPath });
  const scriptDevs: { dev: string; file: string }[] = [];
  const files: string[] = [];
  const mk = (name: string) => {
    const f = join(dir, name);
    writeFileSync(f, '');
    truncateSync(f, 16 << 20);
    files.push(f);
    return f;
  };
  let xvbdMs = 0;
  let phases: Record<string, number> = {};
  let cpu: Record<string, number> = {};
  let bareMs = 0;
  let floorMs = 0;
  let scriptMs: number | undefined;
  let retries = 0;
  try {
    // ---- bare ioctls (the physical limit), in the same run --------------------------------------
    // warm-up: make sure N free loop devices exist (LOOP_CTL_GET_FREE creating one costs far more than an
    // attach) and that both paths' code is compiled; then time N bare attaches and close them (autoclear)
    const bareFiles = Array.from({ length: n }, (_, i) => mk(`bare-${i}.img`));
    for (const fd of bareFiles.map((f) => bareAttach(f))) sysClose(fd);
    {
      const fds: number[] = [];
      const t0 = performance.now();
      for (const f of bareFiles) fds.push(bareAttach(f));
      bareMs = (performance.now() - t0) / n;
      for (const fd of fds) sysClose(fd);
    }

    // ---- the floor of a whole attach: the bare ioctls + the same nodes in one bare transaction -----
    // (no source checks, no verification, no keeper, no checks inside the transaction: what any tool
    // that attaches a file-backed disk as libxl lays it out must at least do, one disk at a time)
    {
      const floorFiles = Array.from({ length: n }, (_, i) => mk(`floor-${i}.img`));
      const fds: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const fd = bareAttach(floorFiles[i]!);
        fds.push(fd);
        const rdev = fstatSync(fd, { bigint: true }).rdev;
        const id = devid(i);
        const ids = { backendDomid: 0, frontendDomid: 3, devid: id };
        const device = { major: devMajor(rdev), minor: devMinor(rdev), devPath: readlinkSync(`/proc/self/fd/${fd}`), diskseq: String(getDiskseq(fd)) };
        const layout = attachLayout({ ...ids, vdev: devidToVdev(id), params: floorFiles[i]!, mode: 'rw', discard: false, device });
        await xs.transaction(async (tx) => {
          await Promise.all(layoutWrites(tx, layout));
        });
      }
      floorMs = (performance.now() - t0) / n;
      // blkback has its own reference now; ours go (autoclear frees each device when the backend goes)
      for (const fd of fds) sysClose(fd);
    }

    // ---- xvbd ---------------------------------------------------------------------------------
    const attachOf = (i: number, file: string): Action => {
      const id = devid(i);
      const spec: DiskSpec = { ...disk('xvda', file, 'rw'), vdev: devidToVdev(id), devid: id };
      return { kind: 'attach', domain: 'bench-xvbd', domid: 1, disk: spec };
    };
    const actions: Action[] = [];
    for (let i = 0; i < n; i++) actions.push(attachOf(i, mk(`xvbd-${i}.img`)));
    const p: Plan = { actions, findings: [], disks: [] };
    const holder = new KeeperHolder(runDir);
    const registry = new LoopRegistry();
    const devices = new RegistryDevices(registry);
    // start the keeper outside the timed part (a one-shot apply pays this once per run, not per disk), and
    // warm the executor's code with one disk of its own (not counted)
    await holder.start();
    // (two disks: consecutive attaches share a transaction, so this runs the same code as the measured run)
    const warm = await execute(
      { actions: [attachOf(WARM_DEVID_INDEX, mk('xvbd-warm.img')), attachOf(WARM_DEVID_INDEX - 1, mk('xvbd-warm2.img'))], findings: [], disks: [] },
      { xs, devices, policy: DEFAULT_POLICY, holder },
    );
    if (!warm.ok) throw new Error(`xvbd warm-up attach failed: ${warm.steps.find((s) => !s.ok)?.error}`);
    const ph = phaseTimers();
    // both keepers hold every fd: their CPU counts together
    const keeperPids = (await keeperLists(runDir)).map((k) => k.pid);
    const keepersCpu = () => keeperPids.reduce((t, pid) => t + cpuMsOf(pid), 0);
    const cpu0 = { self: process.cpuUsage(), sim: cpuMsOf(sim.pid), keeper: keepersCpu() };
    const t0 = performance.now();
    const r = await execute(p, { xs: ph.xs(xs), devices: ph.devices(devices), policy: DEFAULT_POLICY, holder: ph.holder(holder) });
    xvbdMs = (performance.now() - t0) / n;
    // the simulated blkback goes on reacting to the last commits: let it finish before reading the CPU times
    await sim.settle();
    const self = process.cpuUsage(cpu0.self);
    cpu = {
      xvbd: Number(((self.user + self.system) / 1000 / n).toFixed(2)),
      keeper: Number(((keepersCpu() - cpu0.keeper) / n).toFixed(2)),
      simulator: Number(((cpuMsOf(sim.pid) - cpu0.sim) / n).toFixed(2)),
    };
    holder.close();
    registry.closeAll();
    if (!r.ok) throw new Error(`xvbd attach failed: ${r.steps.find((s) => !s.ok)?.error}`);
    phases = ph.report(n, xvbdMs);
    say(`bare ioctls:        ${bareMs.toFixed(2)} ms/disk (GET_FREE + open + LOOP_CONFIGURE, bench/loops.ts bareAttach)`);
    say(`bare attach floor:  ${floorMs.toFixed(2)} ms/disk (bare ioctls + the same xenstore nodes, one bare transaction per disk)`);
    say(
      `xvbd attach:        ${xvbdMs.toFixed(2)} ms/disk (${n} disks; safe open, loop + verify, keeper, checked transactions of up to ${BATCH_MAX} disks) ` +
        `= ${(xvbdMs / floorMs).toFixed(2)}x the floor, ${(xvbdMs / bareMs).toFixed(1)}x the bare ioctls alone`,
    );
    say(
      `  phases, ms/disk:  device ${phases.provide} (open source, host check, LOOP_CONFIGURE, verify, diskseq), ` +
        `keeper adopt ${phases.hold}, transaction ${phases.transaction} (${phases.tx_attempts_per_tx} attempts/disk), ` +
        `release ${phases.release}; ${phases.overlapped} of their sum overlapped (pipelined)`,
    );
    say(
      `  CPU, ms/disk:     xvbd ${cpu.xvbd}, keeper ${cpu.keeper}, simulator ${cpu.simulator} (its xenstored and blkback; ` +
        `${(((cpu.xvbd ?? 0) + (cpu.keeper ?? 0) + (cpu.simulator ?? 0)) / xvbdMs / 2 * 100).toFixed(0)}% of this machine's 2 cores over the attach)`,
    );

    // ---- the Xen block script ----------------------------------------------------------------
    if (values['no-script']) {
      say('Xen block script:   skipped (--no-script)');
    } else if (existsSync(BLOCK)) {
      const env = { ...process.env, XENBUS_TYPE: 'vbd', XENBUS_BASE_PATH: 'backend' };
      let total = 0;
      for (let i = 0; i < n; i++) {
        const id = devid(i);
        const file = mk(`script-${i}.img`);
        const be = `/local/domain/0/backend/vbd/2/${id}`;
        const fe = `/local/domain/2/device/vbd/${id}`;
        await xs.transaction(async (tx) => {
          await tx.write(`${fe}/state`, '1');
          await tx.write(`${fe}/backend`, be);
          await tx.write(`${fe}/backend-id`, '0');
          for (const [k, v] of [['frontend', fe], ['frontend-id', '2'], ['online', '1'], ['state', '1'], ['params', file], ['mode', 'w'], ['type', 'file'], ['device-type', 'disk'], ['script', BLOCK]]) {
            await tx.write(`${be}/${k}`, v!);
          }
        });
        await sim.settle();
        for (let attempt = 1; ; attempt++) {
          const t1 = performance.now();
          const res = await run_('bash', [BLOCK, 'add'], { env: { ...env, XENBUS_PATH: `backend/vbd/2/${id}` } }).then(
            () => 0,
            (e: { code?: number }) => e.code ?? 1,
          );
          total += performance.now() - t1;
          const node = await xs.read(`${be}/node`);
          if (node) scriptDevs.push({ dev: node, file });
          if (res === 0) break;
          const err = (await xs.read(`${be}/hotplug-error`)) ?? '';
          // `losetup -f` then `losetup DEV FILE` races other allocators on a shared machine: retry that one
          if (attempt >= 3 || !/^losetup .* failed$/.test(err)) throw new Error(`block add failed: ${err}`);
          retries++;
          await xs.rm(`${be}/hotplug-error`);
          await xs.rm(`${be}/hotplug-status`);
        }
      }
      scriptMs = total / n;
      say(`Xen block script:   ${scriptMs.toFixed(1)} ms/disk (${n} disks; /etc/xen/scripts/block add, unmodified${retries ? `, ${retries} losetup race retries` : ''})`);
      say(`ratio:              block script / xvbd = ${(scriptMs / xvbdMs).toFixed(1)}x; xvbd / bare ioctls = ${(xvbdMs / bareMs).toFixed(1)}x`);
    } else {
      say(`Xen block script:   not installed (${BLOCK})`);
    }
  } finally {
    // backends gone -> the keeper and blkback let go -> autoclear frees ours; the script's need losetup -d
    for (const fe of await xs.directory('/local/domain/0/backend/vbd').catch(() => [] as string[])) await xs.rm(`/local/domain/0/backend/vbd/${fe}`);
    await sim.settle();
    for (const { dev, file } of scriptDevs) {
      if (backingOf(dev) === file) await run_('losetup', ['-d', dev]).catch(() => {});
    }
    const deadline = Date.now() + 8000;
    const keepersUp = () => KEEPER_SLOTS.some((s) => existsSync(keeperSocketPath(runDir, s)));
    while (Date.now() < deadline && (keepersUp() || files.some((f) => scriptDevs.some((s) => s.file === f && backingOf(s.dev) === f)))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await xs.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const noop = noopPlanMs();
  say(`no-op plan:         ${noop.ms.toFixed(2)} ms at ${noop.disks} disks / 100 domains (median of 21)`);
  if (values.json) {
    process.stdout.write(
      JSON.stringify({
        n,
        xvbd_ms_per_disk: Number(xvbdMs.toFixed(2)),
        block_script_ms_per_disk: scriptMs !== undefined ? Number(scriptMs.toFixed(2)) : null,
        ratio: scriptMs !== undefined ? Number((scriptMs / xvbdMs).toFixed(2)) : null,
        bare_ms_per_disk: Number(bareMs.toFixed(3)),
        floor_ms_per_disk: Number(floorMs.toFixed(3)),
        xvbd_vs_floor: Number((xvbdMs / floorMs).toFixed(2)),
        xvbd_vs_bare: Number((xvbdMs / bareMs).toFixed(2)),
        xvbd_phases_ms_per_disk: phases,
        cpu_ms_per_disk: cpu,
        block_script_retries: retries,
        noop_plan_ms: Number(noop.ms.toFixed(3)),
        noop_plan_disks: noop.disks,
      }) + '\n',
    );
  }
  return 0;
}
