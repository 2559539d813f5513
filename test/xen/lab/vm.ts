// Host side of the xvbd Xen lab: set-up (test/xen/lab/setup.sh) and one VM boot that runs one job in dom0.
// The VM is Xen 4.17 + Debian's dom0 kernel under QEMU (TCG, no KVM needed); dom0's userland is the host's
// own /usr over 9p (read-only, cache=loose), the repo and any other directory can be shared the same way,
// and the per-run directory is /host in dom0 (read-write, cache=none) with the job's results in /host/out.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is dist/test/xen/lab/vm.js once built). */
export function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
}

/** The lab's cache dir: $XVBD_XENLAB or /var/tmp/xvbd-xenlab. */
export function labDir(): string {
  return process.env.XVBD_XENLAB ?? '/var/tmp/xvbd-xenlab';
}

export interface SetupResult {
  lab: string;
  ms: number;
}

/**
 * Installs the lab's Debian packages and builds the images into the cache dir, or does nothing when they
 * are present and up to date (setup.sh keeps a stamp). Its progress goes to stderr.
 */
export function setupLab(opts: { lab?: string; force?: boolean } = {}): SetupResult {
  const lab = opts.lab ?? labDir();
  const script = join(repoRoot(), 'test/xen/lab/setup.sh');
  const t0 = Date.now();
  const res = spawnSync('bash', [script, ...(opts.force ? ['--force'] : [])], {
    env: { ...process.env, XVBD_XENLAB: lab },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  if (res.status !== 0 || !/xenlab-ready/.test(res.stdout ?? '')) {
    throw new Error(`xen lab set-up failed (${script} exit ${res.status ?? res.signal}): ${res.stdout ?? ''}`);
  }
  return { lab, ms: Date.now() - t0 };
}

/** A host directory shared read-only (cache=loose) into dom0's userland root at guestPath. */
export interface Share {
  tag: string;
  hostPath: string;
  guestPath: string;
}

export interface VmRunOptions {
  lab?: string;
  /** bash script text, run as `bash /host/job.sh` in dom0's userland root, cwd /tmp */
  job: string;
  /** extra read-only shares; the repo and (when outside /usr) node's prefix are added by defaultShares() */
  shares?: Share[];
  /** hard limit for the whole VM run */
  timeoutMs?: number;
  /** MiB for the whole VM; dom0 gets half */
  memMiB?: number;
  /** each line the job prints, as it arrives on the console */
  onJobLine?: (line: string) => void;
}

export interface VmRunResult {
  /** the job's exit code; null when there is none (boot failure, crash, time-out) */
  rc: number | null;
  /** the job's output (stdout + stderr), from /host/out/job.log */
  output: string;
  timedOut: boolean;
  runDir: string;
  /** /host/out in dom0 */
  outDir: string;
  /** the whole serial console (Xen + dom0), each line prefixed with host seconds since QEMU started */
  serialLog: string;
  wallMs: number;
  /** host ms from QEMU start to the job's first line / to its end */
  jobStartMs?: number;
  jobEndMs?: number;
  /** lines of the console that say why Xen or dom0 died, if any */
  crash: string[];
}

/** Shares every job needs: the repo (dist + node_modules) at its host path, node's prefix if not /usr. */
export function defaultShares(): Share[] {
  const shares: Share[] = [{ tag: 'repo', hostPath: repoRoot(), guestPath: repoRoot() }];
  const prefix = resolve(dirname(process.execPath), '..');
  if (prefix !== '/usr' && !prefix.startsWith('/usr/')) {
    shares.push({ tag: 'nodeprefix', hostPath: prefix, guestPath: prefix });
  }
  return shares;
}

function newRunDir(lab: string): string {
  const runs = join(lab, 'runs');
  mkdirSync(runs, { recursive: true });
  // keep the last few runs for post-mortems
  const old = readdirSync(runs)
    .filter((n) => /^run-/.test(n))
    .sort();
  for (const n of old.slice(0, Math.max(0, old.length - 4))) rmSync(join(runs, n), { recursive: true, force: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const dir = join(runs, `run-${stamp}-${process.pid}`);
  mkdirSync(join(dir, 'out'), { recursive: true });
  return dir;
}

const BEGIN = '=====XVBD-JOB-BEGIN=====';
const END = /=====XVBD-JOB-END rc=(\S+)=====/;

/** Boots the VM once, runs the job in dom0, collects its output and exit code; QEMU is gone on return. */
export async function runInDom0(opts: VmRunOptions): Promise<VmRunResult> {
  const lab = opts.lab ?? labDir();
  const out = join(lab, 'out');
  for (const f of ['xen-4.17', 'vmlinux', 'dom0-initrd.cpio.gz']) {
    if (!existsSync(join(out, f))) throw new Error(`xen lab not set up: ${join(out, f)} missing (run setupLab first)`);
  }
  const runDir = newRunDir(lab);
  const outDir = join(runDir, 'out');
  const shares = opts.shares ?? defaultShares();
  for (const s of shares) {
    if (!/^[a-z][a-z0-9]{0,30}$/.test(s.tag) || ['host0', 'hostusr', 'xvbdlab'].includes(s.tag)) throw new Error(`bad share tag ${s.tag}`);
    if (!s.guestPath.startsWith('/') || /\s/.test(s.guestPath)) throw new Error(`bad guest path ${s.guestPath}`);
  }
  const mounts = [...shares.map((s) => `${s.tag}:${s.guestPath}`), 'xvbdlab:/xvbd-lab'];
  writeFileSync(join(runDir, 'run.conf'), `MOUNTS="${mounts.join(' ')}"\n`);
  writeFileSync(join(runDir, 'job.sh'), opts.job, { mode: 0o755 });

  const mem = opts.memMiB ?? 2048;
  const smp = 2;
  const xenArgs = [
    'smap=0', // Xen under TCG with SMAP: dom0 dies at its first exception bounce
    'console=com1',
    'com1=115200,8n1',
    `dom0_mem=${mem / 2}M,max:${mem / 2}M`,
    `dom0_max_vcpus=${smp}`,
    'bootscrub=false',
    'loglvl=all',
    'guest_loglvl=all',
  ].join(' ');
  const dom0Args = 'console=hvc0 earlyprintk=xen loglevel=4';
  const virtfs = (tag: string, path: string, ro: boolean, model: string) =>
    ['-virtfs', `local,path=${path},mount_tag=${tag},security_model=${model},id=${tag}${ro ? ',readonly=on' : ''}`];
  const args = [
    '-accel', 'tcg,thread=multi,tb-size=512',
    // no XSAVE: with other domains running, Xen switches dom0's extended state with XSAVE/XRSTOR, and
    // under TCG (QEMU 7.2, whose AVX is new) node in dom0 then died with SIGSEGV right after a guest
    // started; with FXSAVE only, nothing in dom0 uses AVX and the state Xen switches is the x87/SSE one
    '-cpu', 'max,-xsave',
    '-smp', String(smp),
    '-m', String(mem),
    '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
    '-kernel', join(out, 'xen-4.17'),
    '-append', xenArgs,
    '-initrd', `${join(out, 'vmlinux')} ${dom0Args},${join(out, 'dom0-initrd.cpio.gz')}`,
    ...virtfs('host0', runDir, false, 'passthrough'),
    ...virtfs('hostusr', '/usr', true, 'none'),
    ...virtfs('xvbdlab', out, true, 'none'), // the lab's images (a guest kernel + initrd) at /xvbd-lab
    ...shares.flatMap((s) => virtfs(s.tag, s.hostPath, true, 'none')),
  ];
  const serialLog = join(runDir, 'serial.log');
  const log = createWriteStream(serialLog);
  const t0 = Date.now();
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = (sig: NodeJS.Signals) => {
    if (qemu.exitCode === null && qemu.signalCode === null) qemu.kill(sig);
  };
  let jobStartMs: number | undefined;
  let jobEndMs: number | undefined;
  let inJob = false;
  const crash: string[] = [];
  let pending = '';
  const onData = (buf: Buffer) => {
    pending += buf.toString('utf8');
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).replace(/\r$/, '');
      pending = pending.slice(nl + 1);
      const t = ((Date.now() - t0) / 1000).toFixed(2).padStart(7);
      log.write(`${t} ${line}\n`);
      if (line.includes(BEGIN)) {
        inJob = true;
        jobStartMs = Date.now() - t0;
      } else if (END.test(line)) {
        inJob = false;
        jobEndMs = Date.now() - t0;
        // dom0 reboots at once; if it hangs on the way down, the results are in already
        setTimeout(() => kill('SIGKILL'), 15_000).unref();
      } else if (inJob && !line.startsWith('(XEN)')) {
        opts.onJobLine?.(line);
      }
      if (/Kernel panic|Unhandled|crashed|FATAL/.test(line) && crash.length < 5) crash.push(line);
    }
  };
  qemu.stdout.on('data', onData);
  qemu.stderr.on('data', onData);
  let timedOut = false;
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const timer = setTimeout(() => {
    timedOut = true;
    kill('SIGTERM');
    setTimeout(() => kill('SIGKILL'), 5000).unref();
  }, timeoutMs);
  const onSignal = () => kill('SIGKILL');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await new Promise<void>((res) => {
    qemu.on('error', (e) => {
      crash.push(`cannot start qemu-system-x86_64: ${e.message}`);
      res();
    });
    qemu.on('close', () => res());
  });
  clearTimeout(timer);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (pending) onData(Buffer.from('\n'));
  await new Promise<void>((res) => log.end(() => res()));
  const wallMs = Date.now() - t0;

  let rc: number | null = null;
  try {
    const s = readFileSync(join(outDir, 'job.rc'), 'utf8').trim();
    if (/^\d+$/.test(s)) rc = Number(s);
  } catch {
    // no result
  }
  let output = '';
  try {
    output = readFileSync(join(outDir, 'job.log'), 'utf8');
  } catch {
    // no output
  }
  return { rc, output, timedOut, runDir, outDir, serialLog, wallMs, jobStartMs, jobEndMs, crash };
}
