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
  close(): Promise<void>;
}

export interface TestLoop {
  name: string;
  major: number;
  minor: number;
  diskseq: string;
  hex: string;
  close(): void;
}

export async function setup(tag: string, domains: { name: string; domid: number }[]): Promise<Env> {
  const dir = mkdtempSync(`/var/tmp/xvbd-test-observe-${tag}-`);
  const socketPath = join(dir, 'xs.sock');
  const sim = await startSimulator({ socketPath, sysfsDir: join(dir, 'sysfs'), domains });
  const env = { ...process.env, XENSTORED_PATH: socketPath, XVBD_XEN_BACKEND_SYSFS: join(dir, 'sysfs') };
  const loops: TestLoop[] = [];
  const e: Env = {
    dir,
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
    async close() {
      for (const l of loops) l.close();
      await sim.close();
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
