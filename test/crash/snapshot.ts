// Collects the checker's HostSnapshot from the real host: Debian's xenstore-ls (XENSTORED_PATH at the
// simulator), util-linux losetup, sysfs diskseq, and every process's /proc/<pid>/fd. Also finds our
// own xvbd processes (keepers, daemons) by their command line and XVBD_RUN_DIR, so that the harness
// needs no socket names.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { backendsOf, parseLosetup, parseXenstoreLs, type Holder, type HostSnapshot } from './checker.js';

const run = promisify(execFile);

export const LOSETUP_COLUMNS = 'NAME,MAJ:MIN,BACK-FILE,BACK-INO,BACK-MAJ:MIN,RO,AUTOCLEAR';
const BACKENDS = '/local/domain/0/backend/vbd';

export interface XvbdProcess {
  pid: number;
  /** The xvbd subcommand: keeper, reconcile, apply, sim... */
  command: string;
  runDir: string | undefined;
}

function readNul(path: string): string[] | undefined {
  try {
    return readFileSync(path, 'latin1').split('\0').filter((x) => x !== '');
  } catch {
    return undefined; // gone, or not ours to read
  }
}

function pids(): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

/** Every running `node .../dist/src/cli/main.js <command>`, with the XVBD_RUN_DIR it runs under. */
export function xvbdProcesses(): XvbdProcess[] {
  const out: XvbdProcess[] = [];
  for (const pid of pids()) {
    const argv = readNul(`/proc/${pid}/cmdline`);
    if (!argv) continue;
    const i = argv.findIndex((a) => a.endsWith('dist/src/cli/main.js'));
    if (i < 1 || argv[i + 1] === undefined) continue;
    const env = readNul(`/proc/${pid}/environ`) ?? [];
    const rd = env.find((e) => e.startsWith('XVBD_RUN_DIR='));
    out.push({ pid, command: argv[i + 1]!, runDir: rd?.slice('XVBD_RUN_DIR='.length) });
  }
  return out;
}

/** Our processes of one kind: `keeper` or `reconcile` (the daemon) running for this run dir. */
export function ourProcesses(runDir: string, command: string): number[] {
  return xvbdProcesses()
    .filter((p) => p.command === command && p.runDir === runDir)
    .map((p) => p.pid);
}

/** Every process's open block devices: decimal "major:minor" -> pids (one entry per process). */
export function openBlockDevices(): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const pid of pids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    const seen = new Set<string>();
    for (const fd of fds) {
      const p = `/proc/${pid}/fd/${fd}`;
      try {
        // sockets, pipes and anon inodes are no device; stat'ing only the rest keeps the scan cheap
        if (/^(socket|pipe|anon_inode):/.test(readlinkSync(p))) continue;
        const st = statSync(p);
        if (!st.isBlockDevice()) continue;
        const mm = `${Math.floor(st.rdev / 256) % 4096}:${(st.rdev % 256) + Math.floor(st.rdev / 2 ** 20) * 256}`;
        if (!seen.has(mm)) {
          seen.add(mm);
          out.set(mm, [...(out.get(mm) ?? []), pid]);
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

function roleOf(pid: number, simulatorPid: number, runDir: string, procs: Map<number, XvbdProcess>): string {
  if (pid === simulatorPid) return 'simulator';
  if (pid === process.pid) return 'test';
  const p = procs.get(pid);
  if (p) {
    const role = p.command === 'reconcile' ? 'daemon' : p.command;
    return p.runDir === runDir ? role : `${role} of ${p.runDir ?? '/run/xvbd'}`;
  }
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return 'gone';
  }
}

function diskseqOf(name: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${name}/diskseq`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function identity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** `xenstore-ls -f` of every backend; one xenstore-ls per frontend domain, in parallel (each walks its tree one request at a time). */
export async function xenstoreLs(env: NodeJS.ProcessEnv): Promise<string> {
  const tolerateGone = (err: unknown): string => {
    // no such dir (nothing attached, or unplugged meanwhile)
    if (/No such file|ENOENT/.test(String((err as { stderr?: string }).stderr ?? ''))) return '';
    throw err;
  };
  const list = await run('xenstore-list', [BACKENDS], { env }).then((r) => r.stdout, tolerateGone);
  const domids = list.split('\n').filter((d) => d !== '');
  const parts = await Promise.all(
    domids.map((d) => run('xenstore-ls', ['-f', `${BACKENDS}/${d}`], { env, maxBuffer: 64 << 20 }).then((r) => r.stdout, tolerateGone)),
  );
  return parts.join('');
}

export async function losetupJson(): Promise<string> {
  return (await run('losetup', ['--list', '--json', '-O', LOSETUP_COLUMNS], { maxBuffer: 64 << 20 })).stdout;
}

/** One look at the host, as the checker wants it. */
export async function snapshot(opts: { env: NodeJS.ProcessEnv; simulatorPid: number; runDir: string; imagesDir: string }): Promise<HostSnapshot> {
  const backends = backendsOf(parseXenstoreLs(await xenstoreLs(opts.env)));
  const loops = parseLosetup(await losetupJson(), diskseqOf);
  const procs = new Map(xvbdProcesses().map((p) => [p.pid, p]));
  const holders = new Map<string, Holder[]>();
  for (const [mm, ps] of openBlockDevices()) holders.set(mm, ps.map((pid) => ({ pid, role: roleOf(pid, opts.simulatorPid, opts.runDir, procs) })));
  const sources = new Map<string, string>();
  for (const b of backends) {
    const id = b.params !== undefined ? identity(b.params) : undefined;
    if (b.params !== undefined && id !== undefined) sources.set(b.params, id);
  }
  return { backends, loops, holders, simulatorPid: opts.simulatorPid, sources, imagesDir: opts.imagesDir };
}
