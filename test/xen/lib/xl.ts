// Helpers for scenarios that drive libxl through `xl` with xvbd as a disk's hotplug script: installing
// the hook as /etc/xen/scripts/xvbd, running xl with its verbose output stamped line by line, reading
// what libxl says about the scripts it ran, timing the disk phase of `xl create` from xenstore, and
// finding who holds a loop device. The parsers and the phase computation are pure (tested in
// test/xen/hook-xl.test.ts without a VM).
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, waitFor } from './dom0.js';
import type { XsClient } from '../../../src/xenstore/api.js';

export const SCRIPT_DIR = '/etc/xen/scripts';
/** libxl turns `script=xvbd` into this path. */
export const HOOK_PATH = `${SCRIPT_DIR}/xvbd`;

// ---- the hook, installed as libxl looks a bare script= name up ----

export interface InstalledHook {
  /** 'install-command': the native hook put there by `xvbd hook install`; 'node-wrapper': the Node CLI */
  how: 'install-command' | 'node-wrapper';
  path: string;
  /** Removes what was installed and puts back a file that was there before. */
  uninstall(): void;
}

/** The stop-gap hook: a shell wrapper that runs the Node CLI's `xvbd hook` (the reference implementation). */
export function nodeHookWrapper(nodePath: string, repoRoot: string): string {
  return `#!/bin/sh\nexec ${nodePath} ${join(repoRoot, 'dist/src/cli/main.js')} hook "$@"\n`;
}

/**
 * Installs /etc/xen/scripts/xvbd: with the native hook built (dist/native/xvbd-hook), through the CLI's
 * `xvbd hook install` as an admin would (a CLI without that command refuses it as a hook call, changing
 * nothing); otherwise, or when that fails, as the Node wrapper. A file already there is kept aside and
 * restored by uninstall().
 */
export async function installHook(repoRoot: string, env: NodeJS.ProcessEnv, log: (l: string) => void): Promise<InstalledHook> {
  const backup = `${HOOK_PATH}.xvbd-suite-saved`;
  const hadOne = existsSync(HOOK_PATH);
  if (hadOne) renameSync(HOOK_PATH, backup);
  const uninstall = () => {
    rmSync(HOOK_PATH, { force: true });
    if (hadOne) renameSync(backup, HOOK_PATH);
  };
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  if (existsSync(join(repoRoot, 'dist/native/xvbd-hook'))) {
    const r = await run(process.execPath, [cli, 'hook', 'install'], { env });
    if (r.code === 0 && existsSync(HOOK_PATH)) return { how: 'install-command', path: HOOK_PATH, uninstall };
    log(`xvbd hook install: exit ${r.code}, ${HOOK_PATH} ${existsSync(HOOK_PATH) ? 'present' : 'absent'}: ${r.stdout}${r.stderr}; using the Node wrapper`);
  }
  writeFileSync(HOOK_PATH, nodeHookWrapper(process.execPath, repoRoot), { mode: 0o755 });
  return { how: 'node-wrapper', path: HOOK_PATH, uninstall };
}

// ---- xl, its verbose output stamped ----

export interface StampedLine {
  /** ms since the command started, when the line arrived */
  ms: number;
  line: string;
}

export interface StampedRun {
  code: number | null;
  wallMs: number;
  /** stdout and stderr lines, in arrival order */
  lines: StampedLine[];
  /** wall clock (Date.now()) when the command was started */
  startedAt: number;
}

/** Runs a command and stamps each output line as it arrives (xl logs unbuffered to stderr). */
export function runStamped(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<StampedRun> {
  return new Promise((res) => {
    const startedAt = Date.now();
    const t0 = performance.now();
    const lines: StampedLine[] = [];
    const p = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 180_000);
    for (const s of [p.stdout, p.stderr]) {
      let rest = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        const ms = Math.round(performance.now() - t0);
        const parts = (rest + d).split('\n');
        rest = parts.pop()!;
        for (const line of parts) lines.push({ ms, line });
      });
      s.on('end', () => {
        if (rest) lines.push({ ms: Math.round(performance.now() - t0), line: rest });
      });
    }
    p.on('close', (code) => {
      clearTimeout(timer);
      res({ code, wallMs: Math.round(performance.now() - t0), lines, startedAt });
    });
  });
}

/** For a failure message: libxl's warnings and errors, what the scripts printed, then the last lines. */
export function outputOf(r: StampedRun, last = 25): string {
  const tail = r.lines.slice(-last);
  const notable = r.lines.slice(0, -last).filter((l) => !/^(libxl: debug|xencall:buffer: debug)/.test(l.line) && l.line.trim() !== '');
  return [...notable, ...(notable.length > 0 ? [{ ms: 0, line: '...' }] : []), ...tail].map((l) => `${l.ms > 0 ? `+${l.ms}ms ` : ''}${l.line}`).join('\n');
}

export interface HotplugCall {
  ms: number;
  script: string;
  op: string;
}

/** libxl's `calling hotplug script: <script> <op>` lines (debug level: xl -vvv), with their stamps. */
export function hotplugCalls(lines: readonly StampedLine[]): HotplugCall[] {
  const out: HotplugCall[] = [];
  for (const l of lines) {
    const m = /calling hotplug script: (\S+) (\S+)/.exec(l.line);
    if (m) out.push({ ms: l.ms, script: m[1]!, op: m[2]! });
  }
  return out;
}

/** What libxl logs from a failed script's hotplug-error node: its `script: <message>` lines. */
export function hotplugErrors(lines: readonly StampedLine[]): string[] {
  const out: string[] = [];
  for (const l of lines) {
    const m = /device_hotplug_child_death_cb: .*?script: (.*)$/.exec(l.line);
    if (m) out.push(m[1]!);
  }
  return out;
}

// ---- the disk phase of a domain start, as xenstore shows it ----

export interface BackendSample {
  /** Date.now() when the watch event arrived */
  at: number;
  frontendDomid: number;
  devid: number;
  /** 'seen': the first event under this backend dir; otherwise the hotplug-status value read then */
  what: 'seen' | 'connected' | 'error' | 'other';
}

export interface DiskPhase {
  /** ms from the first backend dir appearing to the last hotplug-status=connected */
  phaseMs: number;
  /** per devid: ms from its backend dir appearing to its hotplug-status=connected */
  perDiskMs: Record<number, number>;
  /** Date.now() of the first backend dir */
  firstAt: number;
  lastAt: number;
}

/**
 * The disk phase of one domain's start from the samples of a backend watch: every listed devid must
 * have been seen and connected (else an error naming the missing ones). Pure.
 */
export function diskPhase(samples: readonly BackendSample[], frontendDomid: number, devids: readonly number[]): DiskPhase {
  const seen = new Map<number, number>();
  const connected = new Map<number, number>();
  for (const s of samples) {
    if (s.frontendDomid !== frontendDomid || !devids.includes(s.devid)) continue;
    if (!seen.has(s.devid)) seen.set(s.devid, s.at);
    if (s.what === 'connected' && !connected.has(s.devid)) connected.set(s.devid, s.at);
  }
  const missing = devids.filter((d) => !seen.has(d) || !connected.has(d));
  if (missing.length > 0) {
    throw new Error(`domain ${frontendDomid}: no hotplug-status=connected seen for devid ${missing.join(', ')}`);
  }
  const firstAt = Math.min(...devids.map((d) => seen.get(d)!));
  const lastAt = Math.max(...devids.map((d) => connected.get(d)!));
  const perDiskMs: Record<number, number> = {};
  for (const d of devids) perDiskMs[d] = connected.get(d)! - seen.get(d)!;
  return { phaseMs: lastAt - firstAt, perDiskMs, firstAt, lastAt };
}

/** `/local/domain/<be>/backend/vbd/<fe>/<devid>[/node...]` -> its parts, or undefined. */
export function parseVbdPath(path: string, backendDomid = 0): { frontendDomid: number; devid: number; node: string } | undefined {
  const m = new RegExp(`^/local/domain/${backendDomid}/backend/vbd/([0-9]+)/([0-9]+)(?:/(.*))?$`).exec(path);
  if (!m) return undefined;
  return { frontendDomid: Number(m[1]), devid: Number(m[2]), node: m[3] ?? '' };
}

/**
 * Records, from a xenstore watch on dom0's vbd backends, when each backend dir first appears and when
 * its hotplug-status changes. One watch, on the connection it is given (nothing else may use its events).
 */
export class BackendWatch {
  readonly samples: BackendSample[] = [];
  /** backend dir -> the last hotplug-error read there (kept after libxl removes the dir) */
  readonly errors = new Map<string, string>();
  /** backend dir -> whether its loop device was still bound when the dir's removal was seen */
  readonly boundAtRemoval = new Map<string, boolean>();
  private readonly removalProbes = new Map<string, string>();
  private readonly known = new Set<string>();
  private readonly token = `xvbd-hook-xl-${process.pid}`;
  private readonly path = '/local/domain/0/backend/vbd';

  constructor(private readonly xs: XsClient) {}

  async start(): Promise<void> {
    await this.xs.watch(this.path, this.token);
    void (async () => {
      for await (const ev of this.xs.events()) {
        if (ev.token !== this.token) continue;
        const at = Date.now();
        const p = parseVbdPath(ev.path);
        if (!p) continue;
        if (p.node === '' && this.removalProbes.has(ev.path)) {
          // sampled before anything else can run: by the time the dir is seen gone, whoever still held
          // the device may be letting go because of that very removal
          const bound = loopBound(this.removalProbes.get(ev.path)!);
          if ((await this.xs.read(ev.path).catch(() => '')) === undefined) {
            this.boundAtRemoval.set(ev.path, bound);
            this.removalProbes.delete(ev.path);
          }
        }
        const key = `${p.frontendDomid}/${p.devid}`;
        if (!this.known.has(key)) {
          this.known.add(key);
          this.samples.push({ at, frontendDomid: p.frontendDomid, devid: p.devid, what: 'seen' });
        }
        if (p.node === 'hotplug-status') {
          const v = await this.xs.read(ev.path).catch(() => undefined);
          this.samples.push({ at, frontendDomid: p.frontendDomid, devid: p.devid, what: v === 'connected' ? 'connected' : v === 'error' ? 'error' : 'other' });
        } else if (p.node === 'hotplug-error') {
          const v = await this.xs.read(ev.path).catch(() => undefined);
          if (v !== undefined) this.errors.set(ev.path.slice(0, -'/hotplug-error'.length), v);
        }
      }
    })().catch(() => undefined); // the connection closed: the samples so far stand
  }

  /**
   * When the backend dir is removed, records whether `loopDev` was still bound at that moment (in
   * boundAtRemoval). libxl runs the hotplug script's remove before it removes the dirs: a device already
   * free then was let go by remove, not by the holders noticing the removal.
   */
  probeRemoval(backend: string, loopDev: string): void {
    this.removalProbes.set(backend, loopDev);
  }

  /** Forgets the backends seen so far, so that a later dir with the same domid/devid counts as new. */
  reset(): void {
    this.samples.length = 0;
    this.errors.clear();
    this.boundAtRemoval.clear();
    this.removalProbes.clear();
    this.known.clear();
  }

  async stop(): Promise<void> {
    await this.xs.unwatch(this.path, this.token).catch(() => undefined);
  }
}

// ---- loop devices and who holds them ----

/** The loop devices backed by a file (losetup -j). */
export async function loopsOf(file: string): Promise<string[]> {
  const r = await run('losetup', ['-j', file]);
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[0]!);
}

/** Pids of the processes that hold the block device `dev` open (by st_rdev, however they opened it). */
export function openersOf(dev: string): number[] {
  const rdev = statSync(dev).rdev;
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone meanwhile
    }
    for (const fd of fds) {
      try {
        const st = statSync(`/proc/${pid}/fd/${fd}`);
        if (st.isBlockDevice() && st.rdev === rdev) {
          out.push(Number(pid));
          break;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

/** Pids of the processes started with XVBD_RUN_DIR=runDir (the hook server, keepers: this run's only). */
export function processesOfRunDir(runDir: string): number[] {
  const want = `XVBD_RUN_DIR=${runDir}`;
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n))) {
    if (Number(pid) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(want)) out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Whether a loop device (name like /dev/loop3) is bound: sysfs has its loop/ dir only then. */
export function loopBound(dev: string): boolean {
  return existsSync(`/sys/block/${dev.replace(/^\/dev\//, '')}/loop/backing_file`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whatever the hook started in this scenario's run dir (the native hook's server, the keepers): nothing
 * is held any more by now. The server first (it may still talk to the keepers on its way out), then the
 * keepers; each group gets SIGTERM and 10 s.
 */
export async function stopRunDirProcesses(runDir: string, t: { log(line: string): void }): Promise<void> {
  const pids = processesOfRunDir(runDir);
  const what = new Map(pids.map((p) => [p, commandOf(p)]));
  const keepers = pids.filter((p) => /^xvbd keeper\b/.test(what.get(p)!));
  for (const group of [pids.filter((p) => !keepers.includes(p)), keepers]) {
    for (const pid of group) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone meanwhile
      }
    }
    await waitFor(() => group.every((p) => !isAlive(p)), 'the run dir\'s processes to exit', { timeoutMs: 10_000 }).catch(() => undefined);
    for (const pid of group.filter(isAlive)) {
      t.log(`cleanup: pid ${pid} (${what.get(pid)}) still running 10 s after SIGTERM: SIGKILL`);
      process.kill(pid, 'SIGKILL');
    }
  }
}

export function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).slice(1).join(' ').replace(/\S*\/dist\/src\/cli\/main\.js/, 'xvbd');
  } catch {
    return '?';
  }
}

/** The two keepers of the run dir, with a long idle exit; resolves once both listen (false: not in 120 s). */
export function startKeepers(repoRoot: string, env: NodeJS.ProcessEnv, runDir: string, timeoutMs = 120_000): Promise<boolean> {
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const logFd = openSync(join(runDir, 'keeper-primed.log'), 'a');
  for (const slot of ['a', 'b']) {
    const k = spawn(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'keeper', '--slot', slot, '--idle-exit', '900000'], { env, stdio: ['ignore', logFd, logFd], cwd: '/' });
    k.on('error', (e) => appendFileSync(join(runDir, 'keeper-primed.log'), `keeper ${slot}: ${e.message}\n`));
    k.on('exit', (code, sig) => appendFileSync(join(runDir, 'keeper-primed.log'), `keeper ${slot} exited: code ${code} signal ${sig}\n`));
  }
  closeSync(logFd);
  return waitFor(() => ['a', 'b'].every((s) => existsSync(join(runDir, `keeper-${s}.sock`))), 'both keepers listening', { timeoutMs }).then(() => true, () => false);
}

/** What the hook's helpers logged in the run dir, for a failure message. */
export function runDirLogs(runDir: string): string {
  const out: string[] = [];
  for (const f of ['hook-server.log', 'keeper.log', 'keeper-primed.log']) {
    try {
      out.push(`${f}:\n${readFileSync(join(runDir, f), 'utf8').split('\n').slice(-25).join('\n')}`);
    } catch {
      // not there
    }
  }
  return out.join('\n');
}
