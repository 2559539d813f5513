// `npm run bench -- hook [--json] [--n N] [--reps R]`: a domain start through libxl's hotplug scripts, in
// one run, against the same simulator (its own process, as xenstored is). For N disks of one domain,
// the backend, frontend and libxl dirs are written beforehand exactly as libxl's device_disk_add writes
// them (not timed); then every script of the domain is started at once, as libxl starts them, and the
// wall time runs until each has exited and every backend's hotplug-status is `connected` (the scripts are
// started by native/bench-burst, a fork and exec each from C, as libxl starts them):
//  - Xen's /etc/xen/scripts/block add, unmodified;
//  - the C hook (dist/native/xvbd-hook) without a daemon, cold: no hook server, no keeper running (the
//    first hook starts the hook server, which starts the keeper);
//  - the same, warm: the hook server still lingering from the previous domain start;
//  - the Node reference hook (`xvbd hook add`, one Node per disk, in-process server each);
//  - the C hook with the daemon (`xvbd reconcile --watch`, policy serve: hook) listening: under systemd as
//    docs/systemd.md runs it (test/daemon's fake systemd: the fd store holds each device), and bare (the
//    keepers hold them);
//  - `node -e 0`: one alone (Node's bare start) and N at once.
// Each figure is the median of R bursts (default 3). Default N = 1, 8 and 32; `--only daemon,block` runs
// some of them (the others print NaN). Frees every loop device.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { devidToVdev } from '../src/config/index.js';
import type { VbdPaths } from '../src/xenstore/layout.js';
import { askDaemon } from '../src/ipc/control.js';
import type { XsClient } from '../src/xenstore/api.js';
import { connect } from '../src/xenstore/client.js';
import { libxlDiskAdd, libxlDiskRemove } from '../test/hook/libxl.js';
import { FakeSystemd } from '../test/daemon/fake-systemd.js';
import { loopsUnder } from '../test/helpers/loops.js';
import { startSimProcess } from './attach.js';

const run_ = promisify(execFile);
const BLOCK = '/etc/xen/scripts/block';
const cliMain = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const nativeHook = fileURLToPath(new URL('../native/xvbd-hook', import.meta.url));
const MAX_N = 32;
/** The simulator's domains (bench/attach.ts startSimProcess). */
const XVBD_DOM = { name: 'bench-xvbd', domid: 1 };
const SCRIPT_DOM = { name: 'bench-script', domid: 2 };

function devid(i: number): number {
  return i < 16 ? (202 << 8) | (i << 4) : (1 << 28) | (i << 8);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}


/** The processes with an fd open on /dev/<name> (for the error when a device is not freed). */
function holdersOf(name: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`) === `/dev/${name}`)) {
        out.push(`${pid} (${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1, 4).join(' ')})`);
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

async function waitUntil(what: string, f: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const benchBurst = fileURLToPath(new URL('../native/bench-burst', import.meta.url));

/**
 * Starts every command at once, as libxl starts a domain's hotplug scripts: a fork and exec each from a
 * small C process (native/bench-burst.c; Node's own spawn costs milliseconds a child). The commands are
 * one program with one environment, each child with its own XENBUS_PATH. Resolves when all have exited,
 * with the wall time the launcher measured from its first fork to the last exit.
 */
function burst(cmds: { file: string; args: string[]; env: NodeJS.ProcessEnv }[]): Promise<{ wallMs: number; codes: number[]; stderr: string[] }> {
  const first = cmds[0]!;
  const { XENBUS_PATH: _x, ...env } = first.env;
  void _x;
  const vars = cmds.map((c, i) => {
    if (c.file !== first.file || c.args.join('\0') !== first.args.join('\0')) throw new Error('burst: one program for every child');
    return c.env.XENBUS_PATH !== undefined ? `XENBUS_PATH=${c.env.XENBUS_PATH}` : `BENCH_BURST_CHILD=${i}`;
  });
  return new Promise((resolve, reject) => {
    const child = spawn(benchBurst, [first.file, ...first.args, '--', ...vars], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const wall = /^wall_us (\d+)$/m.exec(out);
      if (code !== 0 || !wall) return reject(new Error(`bench-burst exited ${code}: ${err}`));
      const codes = cmds.map((_c, i) => Number(new RegExp(`^exit ${i} (\\d+)$`, 'm').exec(out)?.[1] ?? 255));
      resolve({ wallMs: Number(wall[1]) / 1000, codes, stderr: cmds.map(() => err) });
    });
  });
}

interface Setup {
  dir: string;
  runDir: string;
  imagesDir: string;
  configDir: string;
  xs: XsClient;
  env: NodeJS.ProcessEnv;
}

/** The config: policy serve: hook, domain bench-xvbd with MAX_N read-write disks (the first N are used). */
function writeConfig(s: Setup): void {
  const disks = Array.from({ length: MAX_N }, (_, i) => `  - vdev: ${devidToVdev(devid(i))}\n    file: ${join(s.imagesDir, `hook-${i}.img`)}\n`).join('');
  writeFileSync(
    join(s.configDir, 'host.yaml'),
    `apiVersion: xvbd/v1\nkind: Policy\nserve: hook\nallowedRoots: [${s.imagesDir}]\n---\napiVersion: xvbd/v1\nkind: Domain\nname: ${XVBD_DOM.name}\ndisks:\n${disks}`,
  );
}

/** libxl's dirs for n disks of one domain, one transaction per disk as device_disk_add does. */
async function addDisks(s: Setup, domid: number, n: number, file: (i: number) => string, script: string): Promise<VbdPaths[]> {
  const out: VbdPaths[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await libxlDiskAdd(s.xs, { frontendDomid: domid, devid: devid(i), vdev: devidToVdev(devid(i)), target: file(i), mode: 'w', script }));
  }
  return out;
}

/** After a burst: every backend connected (else the figure is void), then the dirs go and the devices with them. */
async function finish(s: Setup, label: string, paths: VbdPaths[], r: { codes: number[]; stderr: string[] }, blockScript: boolean): Promise<void> {
  const status = await Promise.all(paths.map((p) => s.xs.read(`${p.backend}/hotplug-status`)));
  const bad = r.codes.findIndex((c, i) => c !== 0 || status[i] !== 'connected');
  const nodes = blockScript ? await Promise.all(paths.map((p) => s.xs.read(`${p.backend}/node`))) : [];
  // as libxl does: the scripts' `remove` (not timed), then the dirs go
  if (!blockScript) {
    await burst(paths.map((p) => ({ file: nativeHook, args: ['remove'], env: { ...s.env, XENBUS_PATH: p.backend.replace(/^\/local\/domain\/0\//, '') } })));
  }
  for (const p of paths) await libxlDiskRemove(s.xs, p);
  // the block script's devices have no autoclear: its `remove` would detach them; here losetup -d does
  for (const n of nodes) if (n && /^\/dev\/loop\d+$/.test(n)) await run_('losetup', ['-d', n]).catch(() => {});
  // (a keeper may keep a device until its grace period ends: up to 60 s)
  await waitUntil(`${label}: its loop devices to be freed`, () => loopsUnder(s.imagesDir).size === 0, 90_000).catch((e: Error) => {
    throw new Error(`${e.message}: ${[...loopsUnder(s.imagesDir).keys()].map((n) => `${n} held by ${holdersOf(n).join(', ') || 'no process (blkback?)'}`).join('; ')}`);
  });
  if (bad >= 0) {
    const err = await s.xs.read(`${paths[bad]!.backend}/hotplug-error`).catch(() => undefined);
    const logs = ['hook-server.log', 'keeper.log'].map((f) => {
      try {
        return `${f}:\n${readFileSync(join(s.runDir, f), 'utf8').slice(-2000)}`;
      } catch {
        return `${f}: none`;
      }
    });
    throw new Error(`${label}: script ${bad} exited ${r.codes[bad]}, hotplug-status ${status[bad]}${err ? ` (${err})` : ''}: ${r.stderr[bad]!.trim().slice(0, 400)}\n${logs.join('\n')}`);
  }
}

/** Neither a hook server nor a keeper runs in the run dir (a cold domain start). */
async function waitCold(s: Setup): Promise<void> {
  const hookSock = join(s.runDir, 'hook.sock');
  if (existsSync(hookSock)) {
    const rep = await askDaemon({ op: 'ping' }, { path: hookSock }).catch(() => undefined);
    if (rep?.ok && typeof rep.pid === 'number') process.kill(rep.pid, 'SIGTERM'); // the server the bench's own hooks started
  }
  await waitUntil('the hook server and the keepers to exit', () => !existsSync(hookSock) && !readdirSync(s.runDir).some((f) => /^keeper.*\.sock$/.test(f)), 30_000);
}

/** `reps` bursts of the C hook with `xvbd reconcile --watch` listening, under the fake systemd or bare. */
async function daemonBursts(s: Setup, n: number, reps: number, systemd: boolean, hookEnv: (i: number) => NodeJS.ProcessEnv): Promise<number[]> {
  const sd = systemd ? new FakeSystemd() : undefined;
  const args = [cliMain, 'reconcile', '--watch', '--resync', '0'];
  const daemon = sd ? sd.spawnService(process.execPath, args, s.env) : spawn(process.execPath, args, { env: s.env, stdio: ['ignore', 'ignore', 'pipe'] });
  let dlog = '';
  daemon.stderr!.on('data', (d: Buffer) => (dlog = (dlog + d.toString()).slice(-20000)));
  const out: number[] = [];
  try {
    const ctl = join(s.runDir, 'control.sock');
    await waitUntil('the daemon', async () => {
      const rep = existsSync(ctl) ? await askDaemon({ op: 'ping' }, { path: ctl }).catch(() => undefined) : undefined;
      return Boolean(rep?.ok && Number(rep.passes) >= 1);
    });
    for (let rep = 0; rep < reps; rep++) {
      const paths = await addDisks(s, XVBD_DOM.domid, n, (i) => join(s.imagesDir, `hook-${i}.img`), 'xvbd');
      const r = await burst(Array.from({ length: n }, (_, i) => ({ file: nativeHook, args: ['add'], env: hookEnv(i) })));
      if (process.env.BENCH_HOOK_DEBUG) {
        const again = await burst(Array.from({ length: n }, (_, i) => ({ file: nativeHook, args: ['add'], env: hookEnv(i) })));
        dlog += `\nDEBUG burst ${r.wallMs.toFixed(0)} ms; again (already served) ${again.wallMs.toFixed(0)} ms\n`;
      }
      await finish(s, `hook with the daemon${systemd ? ' under systemd' : ''}`, paths, r, false).catch((e: Error) => {
        throw new Error(`${e.message}\ndaemon log:\n${dlog}`);
      });
      out.push(r.wallMs);
    }
    if (process.env.BENCH_HOOK_DEBUG) process.stderr.write(dlog);
  } finally {
    const exited = new Promise((res) => daemon.once('exit', res));
    if (daemon.exitCode === null) daemon.kill('SIGTERM');
    await exited;
    sd?.close();
  }
  return out;
}

interface RunFigures {
  n: number;
  reps: number;
  block_script_wall_ms: number | null;
  block_script_retries: number;
  hook_wall_ms: number;
  hook_warm_wall_ms: number;
  hook_node_wall_ms: number;
  hook_daemon_wall_ms: number;
  hook_daemon_bare_wall_ms: number;
  node_start_ms: number;
  node_burst_wall_ms: number;
  ratio_block_over_hook: number | null;
  ratio_block_over_hook_warm: number | null;
  ratio_block_over_hook_node: number | null;
  ratio_block_over_hook_daemon: number | null;
  ratio_block_over_hook_daemon_bare: number | null;
  hook_daemon_over_node_start: number;
}

async function measure(s: Setup, n: number, reps: number, only: Set<string>, say: (l: string) => void): Promise<RunFigures> {
  const hookEnv = (i: number, env: NodeJS.ProcessEnv = s.env) => ({ ...env, XENBUS_PATH: `backend/vbd/${XVBD_DOM.domid}/${devid(i)}` });
  const t: Record<string, number[]> = { block: [], hook: [], warm: [], node: [], daemon: [], bare: [], nodeStart: [], nodeBurst: [] };
  const haveBlock = existsSync(BLOCK) && only.has('block');
  let blockRetries = 0;
  for (let rep = 0; rep < reps; rep++) {
    // `losetup -f` then `losetup DEV FILE` races other allocators on a shared machine (bench/attach.ts
    // retries those too): a burst with a failed script is void and runs again, at most twice more
    for (let attempt = 1; haveBlock; attempt++) {
      const paths = await addDisks(s, SCRIPT_DOM.domid, n, (i) => join(s.imagesDir, `script-${i}.img`), BLOCK);
      const env = { ...s.env, XENBUS_TYPE: 'vbd', XENBUS_BASE_PATH: 'backend' };
      const r = await burst(Array.from({ length: n }, (_, i) => ({ file: BLOCK, args: ['add'], env: { ...env, XENBUS_PATH: `backend/vbd/${SCRIPT_DOM.domid}/${devid(i)}` } })));
      const failed = await finish(s, 'block script', paths, r, true).then(
        () => undefined,
        (e: Error) => e,
      );
      if (!failed) {
        t.block!.push(r.wallMs);
        break;
      }
      if (attempt >= 3) throw failed;
      blockRetries++;
    }
    const hookRun = async (label: string, key: string, file: string, args: string[]) => {
      if (!only.has(key)) return;
      const paths = await addDisks(s, XVBD_DOM.domid, n, (i) => join(s.imagesDir, `hook-${i}.img`), 'xvbd');
      const r = await burst(Array.from({ length: n }, (_, i) => ({ file, args, env: hookEnv(i) })));
      await finish(s, label, paths, r, false);
      t[key]!.push(r.wallMs);
    };
    await waitCold(s);
    await hookRun('hook (cold)', 'hook', nativeHook, ['add']);
    if (process.env.BENCH_HOOK_DEBUG && only.has('hook')) process.stderr.write(readFileSync(join(s.runDir, 'hook-server.log'), 'utf8').slice(-3000));
    await hookRun('hook (warm)', 'warm', nativeHook, ['add']);
    await waitCold(s);
    await hookRun('Node hook', 'node', process.execPath, [cliMain, 'hook', 'add']);
    const one = await burst([{ file: process.execPath, args: ['-e', '0'], env: s.env }]);
    t.nodeStart!.push(one.wallMs);
    const many = await burst(Array.from({ length: n }, () => ({ file: process.execPath, args: ['-e', '0'], env: s.env })));
    t.nodeBurst!.push(many.wallMs);
  }
  // the daemon, started once for the bursts of this N (its start is not part of a domain start): under
  // systemd as docs/systemd.md runs it (the fake one of test/daemon: the fd store holds the devices), and
  // bare (the keepers hold them, started by its first hold)
  for (const kind of ['daemon', 'bare'] as const) {
    if (!only.has(kind)) continue;
    await waitCold(s);
    t[kind]!.push(...(await daemonBursts(s, n, reps, kind === 'daemon', hookEnv)));
  }
  const m = (k: string) => (t[k]!.length > 0 ? Number(median(t[k]!).toFixed(1)) : NaN);
  const block = haveBlock ? m('block') : null;
  const ratio = (x: number) => (block === null ? null : Number((block / x).toFixed(2)));
  const f: RunFigures = {
    n,
    reps,
    block_script_wall_ms: block,
    block_script_retries: blockRetries,
    hook_wall_ms: m('hook'),
    hook_warm_wall_ms: m('warm'),
    hook_node_wall_ms: m('node'),
    hook_daemon_wall_ms: m('daemon'),
    hook_daemon_bare_wall_ms: m('bare'),
    node_start_ms: m('nodeStart'),
    node_burst_wall_ms: m('nodeBurst'),
    ratio_block_over_hook: ratio(m('hook')),
    ratio_block_over_hook_warm: ratio(m('warm')),
    ratio_block_over_hook_node: ratio(m('node')),
    ratio_block_over_hook_daemon: ratio(m('daemon')),
    ratio_block_over_hook_daemon_bare: ratio(m('bare')),
    hook_daemon_over_node_start: Number((m('daemon') / m('nodeStart')).toFixed(2)),
  };
  const x = (r: number | null) => (r === null ? '-' : `${r}x`);
  const col = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(0)} ms`).padStart(9);
  say(`N = ${n} disks of one domain, all scripts at once (median of ${reps}):`);
  say(`  Xen block script                   ${col(block)}${blockRetries ? `   (${blockRetries} burst(s) run again: losetup raced another allocator)` : ''}`);
  say(`  xvbd hook, no daemon, cold         ${col(f.hook_wall_ms)}   block script / hook = ${x(f.ratio_block_over_hook)}   (starts the hook server and both keepers)`);
  say(`  xvbd hook, no daemon, warm         ${col(f.hook_warm_wall_ms)}   block script / hook = ${x(f.ratio_block_over_hook_warm)}   (hook server lingering)`);
  say(`  xvbd hook in Node (reference)      ${col(f.hook_node_wall_ms)}   block script / hook = ${x(f.ratio_block_over_hook_node)}`);
  say(`  xvbd hook, daemon under systemd    ${col(f.hook_daemon_wall_ms)}   block script / hook = ${x(f.ratio_block_over_hook_daemon)}   (fd store holds; target >= 10x at N = 8 and 32)`);
  say(`  xvbd hook, daemon without systemd  ${col(f.hook_daemon_bare_wall_ms)}   block script / hook = ${x(f.ratio_block_over_hook_daemon_bare)}   (the keepers hold)`);
  say(`  node -e 0: one ${f.node_start_ms.toFixed(0)} ms, ${n} at once ${f.node_burst_wall_ms.toFixed(0)} ms`);
  return f;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, n: { type: 'string' }, reps: { type: 'string' }, only: { type: 'string' } }, strict: true });
  const kinds = ['block', 'hook', 'warm', 'node', 'daemon', 'bare'];
  const only = new Set(values.only !== undefined ? values.only.split(',') : kinds);
  for (const k of only) if (!kinds.includes(k)) throw new Error(`--only takes ${kinds.join(',')}`);
  const ns = values.n !== undefined ? [Number(values.n)] : [1, 8, 32];
  for (const n of ns) if (!Number.isInteger(n) || n < 1 || n > MAX_N) throw new Error(`--n must be 1..${MAX_N}`);
  const reps = values.reps !== undefined ? Number(values.reps) : 3;
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new Error('--reps must be 1..20');
  for (const f of [nativeHook, benchBurst]) if (!existsSync(f)) throw new Error(`${f} is missing: npm run build compiles it (gcc)`);
  const say = (l: string) => {
    if (!values.json) process.stdout.write(l + '\n');
  };
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-bench-hook-'));
  const sim = await startSimProcess(dir);
  let xs: XsClient | undefined;
  const runs: RunFigures[] = [];
  const s0 = { dir, runDir: join(dir, 'run'), imagesDir: join(dir, 'images'), configDir: join(dir, 'config') };
  try {
    for (const d of [s0.runDir, s0.imagesDir, s0.configDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
    xs = await connect({ path: sim.socketPath });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      XENSTORED_PATH: sim.socketPath,
      XVBD_XEN_BACKEND_SYSFS: sim.sysfsDir,
      XVBD_RUN_DIR: s0.runDir,
      XVBD_CONFIG: s0.configDir,
      XVBD_KEEPER_XS_LOST_EXIT_MS: '15000',
      XVBD_HOOK_SERVER_IDLE_MS: '60000',
    };
    const s: Setup = { ...s0, xs, env };
    for (let i = 0; i < MAX_N; i++) {
      for (const name of [`hook-${i}.img`, `script-${i}.img`]) {
        const f = join(s.imagesDir, name);
        writeFileSync(f, '');
        truncateSync(f, 16 << 20);
      }
    }
    writeConfig(s);
    for (const n of ns) runs.push(await measure(s, n, reps, only, say));
    await waitCold(s);
  } finally {
    await xs?.close().catch(() => undefined);
    await sim.close();
    for (const [n] of loopsUnder(join(dir, 'images'))) await run_('losetup', ['-d', `/dev/${n}`]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
  const target = runs.find((r) => r.n === 8) ?? runs[0]!;
  const met = (r: RunFigures) => ({
    daemon_10x: r.ratio_block_over_hook_daemon === null ? null : r.ratio_block_over_hook_daemon >= 10,
    no_daemon_not_slower: r.ratio_block_over_hook === null ? null : r.ratio_block_over_hook >= 1,
  });
  if (values.json) {
    // the top level is the N = 8 run (the issue's targets) when it ran; `runs` has every N
    process.stdout.write(JSON.stringify({ ...target, targets_met: met(target), runs: runs.map((r) => ({ ...r, targets_met: met(r) })) }) + '\n');
  }
  return 0;
}
