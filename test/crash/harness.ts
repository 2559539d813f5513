// The crash harness's host: 10 simulated guests that auto-connect (the simulator as its own process,
// `xvbd sim`, so that its pid tells blkback's opens apart from dom0's holders), 100 disks on sparse
// images, a config dir the trials rewrite, a private run dir, and ways to run xvbd and to kill it.
// Our keepers and daemons are found by /proc (command line + XVBD_RUN_DIR), never by socket names.
// cleanup() frees everything it made, and only that.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../src/xenstore/client.js';
import { cliMain, loopsUnder, runCli, waitUntil } from '../apply/helpers.js';
import { DaemonProc } from '../daemon/harness.js';
import { ControlClient } from '../../src/ipc/control.js';
import type { FakeSystemd } from '../daemon/fake-systemd.js';
import { ourProcesses, snapshot } from './snapshot.js';
import type { HostSnapshot } from './checker.js';

export interface Disk {
  domain: string;
  domid: number;
  vdev: string;
  devid: number;
  image: string;
  mode: 'ro' | 'rw';
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  ms: number;
}

/** xvda.. as docs/misc/vbd-interface.txt numbers them (xvd, major 202, 16 minors a disk). */
function devidOf(index: number): number {
  return (202 << 8) | (index << 4);
}

export class CrashHost {
  readonly dir = mkdtempSync(join(tmpdir(), 'xvbd-crash-'));
  readonly imagesDir = join(this.dir, 'images');
  readonly cfgDir = join(this.dir, 'config');
  readonly runDir = join(this.dir, 'run');
  readonly socket = join(this.dir, 'xs.sock');
  readonly sysfs = join(this.dir, 'sysfs');
  readonly disks: Disk[] = [];
  readonly env: NodeJS.ProcessEnv;
  readonly daemons: DaemonProc[] = [];
  readonly systemds: FakeSystemd[] = [];
  private sim: ChildProcess | undefined;
  private simLog = '';

  private constructor(readonly domains: { name: string; domid: number }[], disksPerDomain: number) {
    mkdirSync(this.imagesDir);
    mkdirSync(this.cfgDir);
    // one read-only template shared by every guest (one loop device for all), the rest read-write
    const template = this.image('template.img');
    for (const d of domains) {
      for (let i = 0; i < disksPerDomain; i++) {
        const vdev = `xvd${String.fromCharCode(97 + i)}`;
        const image = i === 0 ? template : this.image(`${d.name}-${vdev}.img`);
        this.disks.push({ domain: d.name, domid: d.domid, vdev, devid: devidOf(i), image, mode: i === 0 ? 'ro' : 'rw' });
      }
    }
    this.env = {
      ...process.env,
      XENSTORED_PATH: this.socket,
      XVBD_XEN_BACKEND_SYSFS: this.sysfs,
      XVBD_RUN_DIR: this.runDir,
      XVBD_CONFIG: this.cfgDir,
      // our own instance tag: nothing of another xvbd on this machine is ever ours to touch
      XVBD_INSTANCE: `crash-${(process.pid % 36 ** 4).toString(36)}`,
      // a keeper left by a harness killed mid-way lets go once its simulator is gone
      XVBD_KEEPER_XS_LOST_EXIT_MS: '15000',
      XVBD_HOOK_SCRIPT: '',
      NODE_TEST_CONTEXT: undefined,
      NOTIFY_SOCKET: undefined,
      LISTEN_FDS: undefined,
      LISTEN_PID: undefined,
      LISTEN_FDNAMES: undefined,
    };
  }

  static async start(opts: { domains: number; disksPerDomain: number }): Promise<CrashHost> {
    const domains = Array.from({ length: opts.domains }, (_, i) => ({ name: `g${i + 1}`, domid: i + 1 }));
    const h = new CrashHost(domains, opts.disksPerDomain);
    try {
      await h.startSimulator();
    } catch (err) {
      await h.cleanup();
      throw err;
    }
    return h;
  }

  get simulatorPid(): number {
    return this.sim!.pid!;
  }

  private image(name: string): string {
    const p = join(this.imagesDir, name);
    writeFileSync(p, '');
    execFileSync('truncate', ['-s', '1M', p]); // sparse: no data blocks
    return p;
  }

  private async startSimulator(): Promise<void> {
    const args = ['sim', '--socket', this.socket, '--sysfs', this.sysfs, '--auto-connect', ...this.domains.map((d) => `--domain=${d.name}=${d.domid}`)];
    const sim = spawn(process.execPath, [cliMain, ...args], { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.sim = sim;
    sim.stderr!.on('data', (d: Buffer) => (this.simLog = (this.simLog + d.toString()).slice(-4000)));
    // ready once it says so (the socket exists a moment before the line is written)
    await waitUntil(`the simulator to serve (${this.simLog})`, () => /XENSTORED_PATH=/.test(this.simLog) || sim.exitCode !== null, 20_000);
    if (sim.exitCode !== null) throw new Error(`xvbd sim exited ${sim.exitCode}: ${this.simLog}`);
  }

  /** Writes the desired state: these disks, our images dir as the only allowed root. */
  writeConfig(disks: Disk[], policy: { prune: boolean }): void {
    const docs = [
      ['apiVersion: xvbd/v1', 'kind: Policy', `prune: ${policy.prune}`, 'allowedRoots:', `  - ${this.imagesDir}`, 'serve: both', 'detachTimeout: 0ms'].join('\n'),
    ];
    for (const d of this.domains) {
      const mine = disks.filter((k) => k.domid === d.domid);
      if (mine.length === 0) continue;
      const lines = ['apiVersion: xvbd/v1', 'kind: Domain', `name: ${d.name}`, 'disks:'];
      for (const k of mine) lines.push(`  - vdev: ${k.vdev}`, `    file: ${k.image}`, `    mode: ${k.mode}`);
      docs.push(lines.join('\n'));
    }
    // by rename, as git and editors write: a watching daemon never reads half a file
    const tmp = join(this.cfgDir, '.host.yaml.tmp');
    writeFileSync(tmp, docs.join('\n---\n') + '\n');
    renameSync(tmp, join(this.cfgDir, 'host.yaml'));
  }

  /** Runs an xvbd command to its end. */
  async cli(args: string[]): Promise<CliRun> {
    const t0 = performance.now();
    const r = await runCli(args, this.env);
    return { ...r, ms: performance.now() - t0 };
  }

  /**
   * Runs an xvbd command and calls `at` on each line it prints and once `afterMs` has passed;
   * `at` may kill it (or anything else). Resolves when it has exited.
   */
  spawnCli(args: string[], at: { afterMs?: number; onLine?: (line: string, n: number) => void; onTime?: () => void }): { child: ChildProcess; done: Promise<CliRun> } {
    const t0 = performance.now();
    const child = spawn(process.execPath, [cliMain, ...args], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let partial = '';
    let n = 0;
    const onData = (d: Buffer) => {
      out += d.toString();
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) at.onLine?.(l, ++n);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const t = at.afterMs !== undefined ? setTimeout(() => at.onTime?.(), at.afterMs) : undefined;
    const done = new Promise<CliRun>((res) =>
      child.on('close', (code, signal) => {
        if (t) clearTimeout(t);
        res({ code, signal, out, ms: performance.now() - t0 });
      }),
    );
    return { child, done };
  }

  /** Our keeper processes now (there may be several, or none). */
  keepers(): number[] {
    return ourProcesses(this.runDir, 'keeper');
  }

  /** Starts `xvbd reconcile --watch`: as systemd would when given a fake systemd (its fd store passed back), else bare. */
  startDaemon(sd?: FakeSystemd): DaemonProc {
    const args = [cliMain, 'reconcile', '--watch', '--config', this.cfgDir, '--debounce', '50', '--resync', '0'];
    const child = sd ? sd.spawnService(process.execPath, args, this.env) : spawn(process.execPath, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const d = new DaemonProc(child, join(this.runDir, 'control.sock'));
    this.daemons.push(d);
    return d;
  }

  /**
   * Asks the daemon for passes (control socket `reconcile`, as `xvbd reconcile` does) until one plans
   * nothing. False when it does not get there within a few passes or the daemon is gone.
   */
  async daemonConverged(d: DaemonProc, timeoutMs = 30_000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    for (let passes = 0; passes < 8 && Date.now() < end && d.exitCode === undefined; ) {
      let c: ControlClient;
      try {
        c = await ControlClient.connect(d.controlPath);
      } catch {
        await new Promise((r) => setTimeout(r, 50)); // not listening yet
        continue;
      }
      try {
        const rep = await c.request({ op: 'reconcile', reason: 'crash harness' }, Math.max(1000, end - Date.now()));
        passes++;
        const pass = rep.pass as { planActions?: number; error?: string } | undefined;
        if (rep.ok && pass && !pass.error && pass.planActions === 0) return true;
      } catch {
        // killed, or the pass outlived the time-out
      } finally {
        c.close();
      }
    }
    return false;
  }

  private async xs<T>(f: (xs: Awaited<ReturnType<typeof connect>>) => Promise<T>): Promise<T> {
    const xs = await connect({ path: this.socket });
    try {
      return await f(xs);
    } finally {
      await xs.close().catch(() => undefined);
    }
  }

  /**
   * Every guest removes the state node of each of its vbd frontends (a guest may: blkback then
   * unregisters and closes the device). Waits until blkback has let go. Returns how many.
   */
  async removeFrontendStates(): Promise<number> {
    const removed = await this.xs(async (xs) => {
      const vbds = await Promise.all(
        this.domains.map(async (d) => {
          const base = `/local/domain/${d.domid}/device/vbd`;
          const devids = await xs.directory(base).catch(() => [] as string[]);
          return devids.map((devid) => ({ domid: d.domid, devid, state: `${base}/${devid}/state` }));
        }),
      );
      const all = vbds.flat();
      const had = await Promise.all(all.map((v) => xs.read(v.state)));
      const some = all.filter((_, i) => had[i] !== undefined);
      await Promise.all(some.map((v) => xs.rm(v.state)));
      return some;
    });
    // blkback's sysfs mirror loses physical_device when it closes the device
    await waitUntil(
      'blkback to let go of the frontends that lost their state',
      () => removed.every((v) => !existsSync(join(this.sysfs, `vbd-${v.domid}-${v.devid}`, 'physical_device'))),
      10_000,
    ).catch(() => undefined);
    return removed.length;
  }

  /** Unplugs every disk of these domains the way `xl destroy` tears devices down: backend, frontend and libxl dirs removed. */
  async unplugDomains(domids: number[]): Promise<void> {
    await this.xs(async (xs) => {
      for (const d of domids) {
        await xs.transaction(async (tx) => {
          await Promise.all([
            tx.rm(`/local/domain/0/backend/vbd/${d}`),
            tx.rm(`/local/domain/${d}/device/vbd`),
            tx.rm(`/libxl/${d}/device/vbd`),
          ]);
        });
      }
    });
  }

  snapshot(): Promise<HostSnapshot> {
    return snapshot({ env: this.env, simulatorPid: this.simulatorPid, runDir: this.runDir, imagesDir: this.imagesDir });
  }

  /** Bound loop devices backed by our images: name -> backing file. */
  loops(): Map<string, string> {
    return loopsUnder(this.imagesDir);
  }

  /**
   * Stops our daemons and keepers (by pid, found for our run dir), the fake systemds (their stored
   * fds), the simulator; waits for our loop devices to free themselves and detaches, as a last
   * resort, only devices still backed by our own images. Returns what it had to force, if anything.
   */
  async cleanup(): Promise<string[]> {
    const forced: string[] = [];
    const kill = (pid: number) => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    };
    for (const d of this.daemons) if (d.exitCode === undefined) d.child.kill('SIGKILL');
    await Promise.all(this.daemons.map((d) => d.exited));
    for (const pid of ourProcesses(this.runDir, 'reconcile')) kill(pid);
    for (const sd of this.systemds) sd.close();
    if (this.sim && this.sim.exitCode === null) {
      // every disk unplugged: the keepers see their backends go and let go of the devices
      await this.unplugDomains(this.domains.map((d) => d.domid)).catch(() => undefined);
      await waitUntil('our loop devices to be released', () => this.loops().size === 0, 3000).catch(() => undefined);
    }
    for (const pid of this.keepers()) kill(pid);
    if (this.sim && this.sim.exitCode === null) {
      const exited = new Promise((r) => this.sim!.once('exit', r));
      this.sim.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (this.sim.exitCode === null) kill(this.sim.pid!);
    }
    await waitUntil('our loop devices to be freed', () => this.loops().size === 0, 5000).catch(() => undefined);
    for (const [name, file] of this.loops()) {
      forced.push(`/dev/${name} (${file})`);
      try {
        execFileSync('losetup', ['-d', `/dev/${name}`]);
      } catch {
        // freed meanwhile
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    return forced;
  }
}
