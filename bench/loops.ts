// `npm run bench -- loops [--json] [--n 200]`: attaching N disks, side by side, in one run:
//   xvbd     LoopRegistry.acquire (safe open of the source, host check, lock, LOOP_CONFIGURE, verify, diskseq)
//   losetup  `losetup -f --show FILE` (a process per disk, as a shell script would)
//   bare     LOOP_CTL_GET_FREE + open + LOOP_CONFIGURE: the physical limit
// and listLoops() with the N devices attached. Frees everything it made.
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { LoopRegistry } from '../src/linux/registry.js';
import { listLoops } from '../src/linux/list.js';
import {
  LOOP_CONFIGURE,
  LOOP_CTL_GET_FREE,
  LOOP_CTL_REMOVE,
  LO_FLAGS_AUTOCLEAR,
  O_CLOEXEC,
  O_RDWR,
  SysError,
  exists,
  ioctlInt,
  ioctlPtr,
  sysClose,
  sysOpen,
} from '../src/linux/ffi.js';
import { encodeLoopConfig } from '../src/linux/loopdev.js';

const USAGE = `usage: npm run bench -- loops [--json] [--n N]

Attach N disk images three ways (xvbd registry, losetup -f --show, bare ioctls) and time
listLoops() with them attached. Needs root and /dev/loop-control. Frees everything it made.
  --n N     disks per method (default 200)
  --json    one JSON object instead of the table
`;

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean', default: false }, n: { type: 'string', default: '200' }, help: { type: 'boolean', default: false } },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const n = Number(values.n);
  if (!Number.isInteger(n) || n < 1 || n > 5000) {
    process.stderr.write(`--n must be an integer in 1..5000\n${USAGE}`);
    return 2;
  }
  const dir = mkdtempSync('/var/tmp/xvbd-bench-loops-');
  const files = (tag: string) =>
    Array.from({ length: n }, (_, i) => {
      const p = join(dir, `${tag}-${i}.img`);
      const fd = openSync(p, 'w');
      ftruncateSync(fd, 1 << 20);
      closeSync(fd);
      return p;
    });
  const xFiles = files('xvbd');
  const lFiles = files('losetup');
  const bFiles = files('bare');

  const devicesBefore = new Set(loopNames());
  const reg = new LoopRegistry({ allowedRoots: [dir] });
  const losetupDevs: string[] = [];
  const bareFds: number[] = [];
  let xvbdMs = 0;
  let losetupMs = 0;
  let bareMs = 0;
  let listMs = 0;
  let peakDevices = 0;
  let sweepMs = 0;
  const batchMs: [number[], number[], number[]] = [[], [], []];
  let listCount = 0;
  let listBaseMs = 0;
  let listBaseCount = 0;
  try {
    // Warm up each path once (page cache, module code, JIT), then free.
    {
      const h = await reg.acquire({ key: 'warm', source: xFiles[0]!, readOnly: false });
      reg.release('warm');
      void h;
      const d = execFileSync('losetup', ['-f', '--show', lFiles[0]!], { encoding: 'utf8' }).trim();
      execFileSync('losetup', ['-d', d]);
      // Make sure N free devices exist, so no method pays for creating devices (LOOP_CTL_GET_FREE adds
      // one when none is free, which costs far more than an attach).
      for (const f of bFiles) bareFds.push(bareAttach(f));
      for (let i = 0; i < 20; i++) bareFds.push(bareAttach(lFiles[i % n]!));
      for (const fd of bareFds.splice(0)) sysClose(fd);
      listLoops();
      const t = now();
      listBaseCount = listLoops().length;
      listBaseMs = now() - t;
    }

    // The host is shared (other work makes loop devices too), so the three methods run interleaved in
    // batches, in rotating order, and each method's time is the sum over its batches.
    const batch = 10;
    // Per-batch ms/disk of each method, for a median that a burst of load on the host cannot skew.
    for (let start = 0, round = 0; start < n; start += batch, round++) {
      const end = Math.min(n, start + batch);
      const order = [0, 1, 2].map((k) => (k + round) % 3);
      for (const m of order) {
        if (m === 0) {
          const t0 = now();
          for (let i = start; i < end; i++) bareFds.push(bareAttach(bFiles[i]!));
          bareMs += now() - t0;
          batchMs[0].push((now() - t0) / (end - start));
          for (const fd of bareFds.splice(0)) sysClose(fd);
        } else if (m === 1) {
          const t0 = now();
          for (let i = start; i < end; i++) await reg.acquire({ key: `bench/${i}`, source: xFiles[i]!, readOnly: false });
          xvbdMs += now() - t0;
          batchMs[1].push((now() - t0) / (end - start));
        } else {
          const t0 = now();
          for (let i = start; i < end; i++) {
            losetupDevs.push(execFileSync('losetup', ['-f', '--show', lFiles[i]!], { encoding: 'utf8' }).trim());
          }
          losetupMs += now() - t0;
          batchMs[2].push((now() - t0) / (end - start));
          for (const d of losetupDevs.splice(0)) execFileSync('losetup', ['-d', d]);
        }
      }
    }

    // listLoops with the N devices attached: through the registry (bound set kept by uevents) and as a
    // full sweep of /sys/block, alternated, median of 7 each.
    const runs: number[] = [];
    const sweeps: number[] = [];
    for (let i = 0; i < 7; i++) {
      let t = now();
      listCount = reg.listLoops().length;
      runs.push(now() - t);
      t = now();
      listLoops();
      sweeps.push(now() - t);
    }
    listMs = median(runs);
    sweepMs = median(sweeps);
    peakDevices = loopDevicesOnHost();
    reg.closeAll();
  } finally {
    reg.closeAll();
    for (const fd of bareFds) sysClose(fd);
    for (const d of losetupDevs) {
      try {
        execFileSync('losetup', ['-d', d]);
      } catch {
        // reported by the leak check of whoever looks
      }
    }
    rmSync(dir, { recursive: true, force: true });
    removeNewUnbound(devicesBefore);
  }

  const per = (ms: number) => ms / n;
  const [bareMed, xvbdMed, losetupMed] = batchMs.map(median) as [number, number, number];
  const result = {
    n,
    // ms/disk: total time of the method / N (its batches interleaved with the others')
    xvbd_ms_per_disk: round(per(xvbdMs)),
    losetup_ms_per_disk: round(per(losetupMs)),
    bare_ms_per_disk: round(per(bareMs)),
    xvbd_vs_bare: round(xvbdMs / bareMs),
    losetup_vs_bare: round(losetupMs / bareMs),
    xvbd_vs_losetup: round(xvbdMs / losetupMs),
    // the same, as the median over batches of 10 (robust to load bursts from other work on the host)
    xvbd_median_ms_per_disk: round(xvbdMed),
    losetup_median_ms_per_disk: round(losetupMed),
    bare_median_ms_per_disk: round(bareMed),
    xvbd_vs_bare_median: round(xvbdMed / bareMed),
    list_ms: round(listMs),
    list_devices: listCount,
    list_ms_per_device: round(listMs / Math.max(1, listCount)),
    list_sweep_ms: round(sweepMs),
    list_base_ms: round(listBaseMs),
    list_base_devices: listBaseCount,
    loop_devices_on_host: peakDevices,
    loadavg_1m: round(loadavg()[0]!),
    retries: reg.stats.retries,
    host_index: reg.hostStats,
    target_met: xvbdMs <= 2 * bareMs,
  };
  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
  } else {
    const rows: Array<[string, string, string]> = [
      ['xvbd (registry)', `${result.xvbd_ms_per_disk} ms/disk`, `${result.xvbd_vs_bare}x bare`],
      ['losetup -f --show', `${result.losetup_ms_per_disk} ms/disk`, `${result.losetup_vs_bare}x bare`],
      ['bare ioctls', `${result.bare_ms_per_disk} ms/disk`, '1x'],
    ];
    process.stdout.write(`loop attach, N = ${n} disks each\n`);
    for (const [a, b, c] of rows) process.stdout.write(`  ${a.padEnd(20)} ${b.padStart(16)}   ${c}\n`);
    process.stdout.write(`  xvbd vs losetup: ${result.xvbd_vs_losetup}x; target xvbd <= 2x bare: ${result.target_met ? 'met' : 'NOT met'}\n`);
    process.stdout.write(
      `  medians over batches of 10: xvbd ${result.xvbd_median_ms_per_disk}, losetup ${result.losetup_median_ms_per_disk}, ` +
        `bare ${result.bare_median_ms_per_disk} ms/disk (xvbd ${result.xvbd_vs_bare_median}x bare)\n`,
    );
    process.stdout.write(`  host: ${result.loop_devices_on_host} loop devices (bound or not) during the run, load average ${result.loadavg_1m}\n`);
    process.stdout.write(
      `listLoops(): ${result.list_ms} ms for ${listCount} bound devices (${result.list_ms_per_device} ms/device) through the registry, ` +
        `${result.list_sweep_ms} ms as a full sweep of ${peakDevices} loop devices; ${result.list_base_ms} ms for ${listBaseCount} bound before\n`,
    );
    if (Object.keys(reg.stats.retries).length > 0) process.stdout.write(`retries: ${JSON.stringify(reg.stats.retries)}\n`);
    process.stdout.write(`host index: ${JSON.stringify(result.host_index)}\n`);
  }
  return 0;
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const a = [...xs].sort((p, q) => p - q);
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}

function loopNames(): string[] {
  try {
    return readdirSync('/sys/block').filter((d) => /^loop\d+$/.test(d));
  } catch {
    return [];
  }
}

function loopDevicesOnHost(): number {
  return loopNames().length;
}

/**
 * The run made loop devices (LOOP_CTL_GET_FREE adds one when none is free): remove those that did not
 * exist before and are unbound now. The kernel refuses (EBUSY) any that is bound or open.
 */
function removeNewUnbound(before: Set<string>): void {
  const control = sysOpen('/dev/loop-control', O_RDWR | O_CLOEXEC);
  try {
    for (const name of loopNames()) {
      if (before.has(name) || exists(`/sys/block/${name}/loop`)) continue;
      try {
        ioctlInt(control, LOOP_CTL_REMOVE, Number(name.slice(4)));
      } catch {
        // bound or opened by someone meanwhile: theirs now
      }
    }
  } finally {
    sysClose(control);
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** GET_FREE + open + LOOP_CONFIGURE (autoclear), retrying only the plain EBUSY race. Returns the loop fd. */
export function bareAttach(file: string): number {
  const backing = sysOpen(file, O_RDWR | O_CLOEXEC);
  const control = sysOpen('/dev/loop-control', O_RDWR | O_CLOEXEC);
  try {
    for (;;) {
      const nr = ioctlInt(control, LOOP_CTL_GET_FREE, 0);
      const fd = sysOpen(`/dev/loop${nr}`, O_RDWR | O_CLOEXEC);
      try {
        ioctlPtr(fd, LOOP_CONFIGURE, encodeLoopConfig(backing, 0, { flags: LO_FLAGS_AUTOCLEAR }));
        return fd;
      } catch (e) {
        sysClose(fd);
        if (!(e instanceof SysError && e.code === 'EBUSY')) throw e;
      }
    }
  } finally {
    sysClose(control);
    sysClose(backing);
  }
}
