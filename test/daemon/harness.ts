// A host for the daemon's end-to-end tests: temp dirs (images, config, run dir), the xenstore
// simulator with its blkback holding real loop devices, a fake systemd, and the daemon as a real
// process (`node dist/src/cli/main.js reconcile --watch`). Cleanup removes every backend (the keeper
// and blkback then let go), stops the simulator and detaches any loop device still backed by one of
// this host's images (ours only, by backing path under our temp dir).
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSimulator, type Simulator } from '../../src/sim/index.js';
import { connect } from '../../src/xenstore/client.js';
import { ControlClient, type ControlReply } from '../../src/ipc/control.js';
import { FakeSystemd } from './fake-systemd.js';
import { keeperLists } from '../../src/hold/keeper-client.js';
import { keepersRunning } from '../helpers/keepers.js';
import { boundLoops } from '../helpers/loops.js';

export const cliMain = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');

export interface DiskDecl {
  vdev: string;
  image: string;
  mode?: 'ro' | 'rw';
}

export class Host {
  readonly dir: string;
  readonly imgDir: string;
  readonly cfgDir: string;
  readonly runDir: string;
  readonly sd: FakeSystemd;
  sim!: Simulator;
  daemons: DaemonProc[] = [];

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'xvbd-daemon-'));
    this.imgDir = join(this.dir, 'images');
    this.cfgDir = join(this.dir, 'config');
    this.runDir = join(this.dir, 'run');
    mkdirSync(this.imgDir);
    mkdirSync(this.cfgDir);
    this.sd = new FakeSystemd();
  }

  static async start(domains: { name: string; domid?: number }[]): Promise<Host> {
    const h = new Host();
    h.sim = await startSimulator({ socketPath: join(h.dir, 'xs.sock'), sysfsDir: join(h.dir, 'sysfs'), domains });
    return h;
  }

  get env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      XENSTORED_PATH: this.sim.socketPath,
      XVBD_RUN_DIR: this.runDir,
      XVBD_XEN_BACKEND_SYSFS: this.sim.sysfsDir,
    };
  }

  /** A sparse image file. */
  image(name: string, mb = 8): string {
    const p = join(this.imgDir, name);
    if (!existsSync(p)) {
      writeFileSync(p, '');
      execFileSync('truncate', ['-s', `${mb}M`, p]);
    }
    return p;
  }

  policy(opts: { prune?: boolean; detachTimeout?: string } = {}): void {
    writeFileSync(
      join(this.cfgDir, 'policy.yaml'),
      [
        'apiVersion: xvbd/v1',
        'kind: Policy',
        `prune: ${opts.prune ?? true}`,
        'allowedRoots:',
        `  - ${this.imgDir}`,
        'serve: both',
        `detachTimeout: ${opts.detachTimeout ?? '2s'}`,
        '',
      ].join('\n'),
    );
  }

  domainYaml(name: string, disks: DiskDecl[]): string {
    const lines = ['apiVersion: xvbd/v1', 'kind: Domain', `name: ${name}`, 'disks:'];
    for (const d of disks) {
      lines.push(`  - vdev: ${d.vdev}`, `    file: ${this.image(d.image)}`, `    mode: ${d.mode ?? 'rw'}`);
    }
    return lines.join('\n') + '\n';
  }

  /** Writes <name>.yaml for a domain (an atomic rename, as editors and git do). */
  domain(name: string, disks: DiskDecl[], file = `${name}.yaml`): void {
    const tmp = join(this.cfgDir, `.${file}.tmp`);
    writeFileSync(tmp, this.domainYaml(name, disks));
    execFileSync('mv', ['-f', tmp, join(this.cfgDir, file)]);
  }

  removeFile(file: string): void {
    rmSync(join(this.cfgDir, file), { force: true });
  }

  writeRaw(file: string, text: string): void {
    writeFileSync(join(this.cfgDir, file), text);
  }

  backendPath(domid: number, devid: number): string {
    return `/local/domain/0/backend/vbd/${domid}/${devid}`;
  }

  /** The backend's served nodes, or undefined when the dir does not exist. */
  served(domid: number, devid: number): { physicalDevice?: string; diskseq?: string; marker?: string; node?: string } | undefined {
    const p = this.backendPath(domid, devid);
    if (this.sim.read(`${p}/frontend-id`) === undefined && this.sim.read(`${p}/params`) === undefined) return undefined;
    return {
      physicalDevice: this.sim.read(`${p}/physical-device`),
      diskseq: this.sim.read(`${p}/diskseq`),
      marker: this.sim.read(`${p}/xvbd`),
      node: this.sim.read(`${p}/physical-device-path`),
    };
  }

  /** Loop devices bound to this host's images: name -> backing file. */
  loops(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [name, l] of boundLoops()) if (l.backingFile.startsWith(this.imgDir + '/')) out.set(name, l.backingFile);
    return out;
  }

  diskseqOf(loopName: string): string | undefined {
    try {
      return readFileSync(`/sys/block/${loopName}/diskseq`, 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  async waitFor<T>(what: string, pred: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const v = await pred();
      if (v) return v;
      if (Date.now() > until) {
        const logs = this.daemons.map((d) => d.log.join('')).join('\n---\n');
        throw new Error(`timed out waiting for ${what}\n--- daemon log ---\n${logs.slice(-6000)}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Starts the daemon as systemd would (fake NOTIFY_SOCKET; stored fds passed back when any). */
  startDaemon(extraArgs: string[] = [], opts: { passStore?: boolean } = {}): DaemonProc {
    const child = this.sd.spawnService(
      process.execPath,
      [cliMain, 'reconcile', '--watch', '--config', this.cfgDir, '--debounce', '50', '--resync', '0', ...extraArgs],
      this.env,
      opts,
    );
    const d = new DaemonProc(child, join(this.runDir, 'control.sock'));
    this.daemons.push(d);
    return d;
  }

  async request(op: string, args: Record<string, unknown> = {}): Promise<ControlReply> {
    const c = await ControlClient.connect(join(this.runDir, 'control.sock'));
    try {
      return await c.request({ op, ...args }, 60_000);
    } finally {
      c.close();
    }
  }

  /** A keeper's socket exists (it unlinks it first when it exits). Polling this does not keep it alive, pings do. */
  keeperSocketExists(): boolean {
    return keepersRunning(this.runDir);
  }

  /** The pids of the keepers running for this run dir. */
  async keeperPids(): Promise<number[]> {
    return (await keeperLists(this.runDir)).map((k) => k.pid);
  }

  /** Removes every backend/frontend (as a detach would), stops everything, frees what remains. */
  async cleanup(): Promise<void> {
    for (const d of this.daemons) await d.stop().catch(() => undefined);
    // The service is stopped for good: the manager lets go of its fd store (systemd < 254 does so on
    // stop); from here on only the keeper and blkback hold anything.
    this.sd.close();
    try {
      const xs = await connect({ path: this.sim.socketPath });
      try {
        for (const fe of await xs.directory('/local/domain/0/backend/vbd')) {
          for (const devid of await xs.directory(`/local/domain/0/backend/vbd/${fe}`)) {
            await xs.rm(`/local/domain/${fe}/device/vbd/${devid}`);
          }
        }
        await xs.rm('/local/domain/0/backend/vbd');
      } finally {
        await xs.close();
      }
      await this.sim.settle();
      // The keeper sees its backends gone, closes its fds and exits; autoclear frees the devices.
      await this.waitFor('the loop devices to free themselves', () => this.loops().size === 0, 8_000).catch(() => undefined);
    } catch {
      // best effort; the forced cleanup below
    }
    for (const kp of await this.keeperPids()) {
      try {
        process.kill(kp, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await this.sim.close().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    for (const name of this.loops().keys()) {
      try {
        execFileSync('losetup', ['-d', `/dev/${name}`]);
      } catch {
        // autoclear got there first
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class DaemonProc {
  readonly log: string[] = [];
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;

  constructor(
    readonly child: ChildProcess,
    readonly controlPath: string,
  ) {
    child.stderr?.setEncoding('utf8');
    child.stdout?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => this.log.push(d));
    child.stdout?.on('data', (d: string) => this.log.push(d));
    // 'close', not 'exit': by then stdout/stderr are drained, so text() has every line.
    this.exited = new Promise((r) =>
      child.on('close', (code) => {
        this.exitCode = code;
        r(code);
      }),
    );
  }

  text(): string {
    return this.log.join('');
  }

  /** Pass summary lines ("pass N (...): ..."), in order. */
  passes(): string[] {
    return this.text()
      .split('\n')
      .filter((l) => / pass \d+ \(/.test(l));
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.exitCode !== undefined) return this.exitCode;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}
