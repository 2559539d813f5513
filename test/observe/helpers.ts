// Test scaffolding for observe / CLI tests: a private scratch dir, the real simulator on a socket in
// it, the real xenstore-* clients pointed at it, and real loop devices of our own (autoclear + fd).
import { execFile } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSimulator, type Simulator } from '../../src/sim/index.js';
import { attachLoop } from '../../src/linux/loopdev.js';
import { closeSource, openSource } from '../../src/linux/source.js';
import { sysClose } from '../../src/linux/ffi.js';
import { boundLoops } from '../helpers/loops.js';
import { waitKeepersGone } from '../helpers/keepers.js';
import { KeeperHolder } from '../../src/hold/holder.js';

const execFileP = promisify(execFile);

export interface Env {
  dir: string;
  sim: Simulator;
  env: NodeJS.ProcessEnv;
  /** Real `xenstore-write k v k v ...` (one transaction) against the simulator. */
  write(pairs: Record<string, string>): Promise<void>;
  rm(path: string): Promise<void>;
  /** Real `xenstore-chmod -r path perms...` (e.g. "n3", "r0": owner domain 3, dom0 may read). */
  chmod(path: string, ...perms: string[]): Promise<void>;
  /** Frontend + backend dirs as libxl writes them (frontend first), with libxl's permissions. */
  vbd(fe: number, devid: number, backend: Record<string, string>, be?: number): Promise<void>;
  image(name: string, mb?: number): string;
  inode(p: string): { dev: string; ino: string };
  /** A loop device of ours (marker, autoclear); close() frees it. */
  loop(path: string, readOnly: boolean): Promise<TestLoop>;
  /**
   * Hands a test loop device to this env's two keepers for the backend of (fe, devid), as apply does: a
   * served device nobody holds is the planner's loop-unheld. They let go once the simulator is gone.
   */
  keep(l: TestLoop, fe: number, devid: number): Promise<void>;
  /** This env's run dir (XVBD_RUN_DIR of env): its keepers. */
  runDir: string;
  close(): Promise<void>;
}

export interface TestLoop {
  name: string;
  major: number;
  minor: number;
  diskseq: string;
  hex: string;
  fd: number;
  close(): void;
}

export async function setup(tag: string, domains: { name: string; domid: number }[]): Promise<Env> {
  const dir = mkdtempSync(`/var/tmp/xvbd-test-observe-${tag}-`);
  const socketPath = join(dir, 'xs.sock');
  const sim = await startSimulator({ socketPath, sysfsDir: join(dir, 'sysfs'), domains });
  const runDir = join(dir, 'run');
  const env = { ...process.env, XENSTORED_PATH: socketPath, XVBD_XEN_BACKEND_SYSFS: join(dir, 'sysfs'), XVBD_RUN_DIR: runDir };
  const loops: TestLoop[] = [];
  let holder: KeeperHolder | undefined;
  const e: Env = {
    dir,
    runDir,
    sim,
    env,
    async write(pairs) {
      const args = Object.entries(pairs).flat();
      await execFileP('xenstore-write', ['--', ...args], { env });
    },
    async rm(path) {
      await execFileP('xenstore-rm', [path], { env });
    },
    async chmod(path, ...perms) {
      await execFileP('xenstore-chmod', ['-r', path, ...perms], { env });
    },
    async vbd(fe, devid, backend, be = 0) {
      await e.write(frontendNodes(fe, devid, be));
      await e.chmod(`/local/domain/${fe}/device/vbd/${devid}`, `n${fe}`, `r${be}`);
      await e.write(backendNodes(fe, devid, backend, be));
      await e.chmod(`/local/domain/${be}/backend/vbd/${fe}/${devid}`, `n${be}`, `r${fe}`);
    },
    image(name, mb = 4) {
      const p = join(dir, name);
      const fd = openSync(p, 'w');
      ftruncateSync(fd, mb << 20);
      closeSync(fd);
      return p;
    },
    inode(p) {
      const s = statSync(p, { bigint: true });
      return { dev: String(s.dev), ino: String(s.ino) };
    },
    async loop(path, readOnly) {
      const src = openSource(path, { allowedRoots: [dir], readOnly });
      try {
        const l = await attachLoop({ fd: src.fd, dev: src.devB, ino: src.inoB }, { readOnly });
        let open = true;
        const t: TestLoop = {
          name: l.name,
          major: l.major,
          minor: l.minor,
          diskseq: String(l.diskseq),
          hex: `${l.major.toString(16)}:${l.minor.toString(16)}`,
          fd: l.fd,
          close() {
            if (open) sysClose(l.fd);
            open = false;
          },
        };
        loops.push(t);
        return t;
      } finally {
        closeSource(src);
      }
    },
    async keep(l, fe, devid) {
      // the keepers are started by this process: they read its environment
      Object.assign(process.env, { XENSTORED_PATH: socketPath, XVBD_KEEPER_XS_LOST_EXIT_MS: '500' });
      holder ??= new KeeperHolder(runDir);
      const backend = `/local/domain/0/backend/vbd/${fe}/${devid}`;
      await holder.hold({ key: backend, kind: 'loop', major: l.major, minor: l.minor, devPath: `/dev/${l.name}`, diskseq: l.diskseq, fd: l.fd, shared: false }, backend);
    },
    async close() {
      holder?.close();
      for (const l of loops) l.close();
      await sim.close();
      // keepers lose their xenstore with the simulator and let go (XVBD_KEEPER_XS_LOST_EXIT_MS)
      await waitKeepersGone(runDir, 15_000).catch(() => undefined);
      // autoclear frees our devices once blkback (the simulator) and we closed them
      const until = Date.now() + 3000;
      while (Date.now() < until && mine(dir).length > 0) await new Promise((r) => setTimeout(r, 20));
      const left = mine(dir);
      rmSync(dir, { recursive: true, force: true });
      if (left.length > 0) throw new Error(`loop devices left bound: ${left.join(', ')}`);
    },
  };
  return e;
}

/** Loop devices bound to a file in dir (ours only: other tests run on the same machine). */
export function mine(dir: string): string[] {
  return [...boundLoops().values()].filter((l) => l.backingFile.startsWith(dir + '/')).map((l) => l.name);
}

/** The nodes libxl writes for a vbd (frontend first, then backend), as xenstore-write pairs. */
export function frontendNodes(fe: number, devid: number, be = 0): Record<string, string> {
  const f = `/local/domain/${fe}/device/vbd/${devid}`;
  return {
    [`${f}/backend`]: `/local/domain/${be}/backend/vbd/${fe}/${devid}`,
    [`${f}/backend-id`]: String(be),
    [`${f}/virtual-device`]: String(devid),
    [`${f}/device-type`]: 'disk',
    [`${f}/state`]: '1',
  };
}

export function backendNodes(fe: number, devid: number, extra: Record<string, string>, be = 0): Record<string, string> {
  const b = `/local/domain/${be}/backend/vbd/${fe}/${devid}`;
  const out: Record<string, string> = {
    [`${b}/frontend`]: `/local/domain/${fe}/device/vbd/${devid}`,
    [`${b}/frontend-id`]: String(fe),
    [`${b}/online`]: '1',
    [`${b}/state`]: '1',
    [`${b}/type`]: 'phy',
    [`${b}/device-type`]: 'disk',
  };
  for (const [k, v] of Object.entries(extra)) out[`${b}/${k}`] = v;
  return out;
}
