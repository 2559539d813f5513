// Test bench for the executor: a simulator with the example guests, a throw-away copy of examples/host,
// a private run dir (lock, keeper), and a cleanup that leaves no loop device and no process behind.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareExampleHost, type ExampleHost } from '../../src/demo/example-host.js';
import { startSimulator, type Simulator } from '../../src/sim/index.js';
import { connect } from '../../src/xenstore/client.js';
import type { XsClient } from '../../src/xenstore/api.js';
import { waitKeepersGone } from '../helpers/keepers.js';
import { loopsUnder } from '../helpers/loops.js';

export const cliMain = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

export interface Bench {
  dir: string;
  runDir: string;
  host: ExampleHost;
  sim: Simulator;
  xs: XsClient;
  /** Environment for spawned CLI processes. */
  env: NodeJS.ProcessEnv;
  /** Loop devices whose backing file lies in this bench's images dir: name -> backing file. */
  loops(): Map<string, string>;
  /** Removes every backend, stops the keeper and the simulator, waits for the loop devices to go. */
  cleanup(): Promise<void>;
}

export const DOMAINS = [
  { name: 'web1', domid: 1 },
  { name: 'web2', domid: 2 },
  { name: 'build', domid: 3 },
  { name: 'db', domid: 4 },
];

export { loopsUnder };

export async function waitUntil(what: string, f: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function startBench(opts: { withBlockDevice?: boolean; domains?: { name: string; domid: number }[] } = {}): Promise<Bench> {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-apply-'));
  const runDir = join(dir, 'run');
  const host = prepareExampleHost({ workDir: join(dir, 'host'), withBlockDevice: opts.withBlockDevice ?? true });
  let sim: Simulator | undefined;
  try {
    sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: opts.domains ?? DOMAINS });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      XENSTORED_PATH: sim.socketPath,
      XVBD_XEN_BACKEND_SYSFS: sim.sysfsDir,
      XVBD_RUN_DIR: runDir,
      XVBD_CONFIG: host.configDir,
      XVBD_HOOK_SCRIPT: '/usr/local/bin/xvbd-hook',
      // a test killed by a time-out takes its simulator with it: its keeper must not hold devices forever
      XVBD_KEEPER_XS_LOST_EXIT_MS: '15000',
      NODE_TEST_CONTEXT: undefined,
    };
    // the in-process parts (applyOnce, keeper client) read the same environment
    Object.assign(process.env, {
      XENSTORED_PATH: env.XENSTORED_PATH,
      XVBD_XEN_BACKEND_SYSFS: env.XVBD_XEN_BACKEND_SYSFS,
      XVBD_RUN_DIR: runDir,
      XVBD_HOOK_SCRIPT: env.XVBD_HOOK_SCRIPT,
      XVBD_KEEPER_XS_LOST_EXIT_MS: env.XVBD_KEEPER_XS_LOST_EXIT_MS,
    });
    const xs = await connect({ path: sim.socketPath });
    const s = sim;
    return {
      dir,
      runDir,
      host,
      sim: s,
      xs,
      env,
      loops: () => loopsUnder(host.imagesDir),
      async cleanup() {
        try {
          // backends gone -> the keeper lets go and exits; blkback lets go
          const dirs = await xs.directory('/local/domain/0/backend/vbd').catch(() => [] as string[]); // the sim may be closed already
          for (const d of dirs) await xs.rm(`/local/domain/0/backend/vbd/${d}`);
          await s.settle();
          await waitKeepersGone(runDir).catch(() => {});
        } finally {
          await xs.close().catch(() => {});
          await s.close();
          await waitUntil('our loop devices to be freed', () => loopsUnder(host.imagesDir).size <= (host.blockDev ? 1 : 0), 5000).catch(() => {});
          // last resort, never expected: detach what is still bound to our files (reported by the test)
          const left = [...loopsUnder(host.imagesDir).keys()].filter((n) => `/dev/${n}` !== host.blockDev);
          for (const n of left) execFileSync('losetup', ['-d', `/dev/${n}`]);
          host.cleanup();
          execFileSync('rm', ['-rf', dir]);
          if (left.length > 0) throw new Error(`cleanup had to detach leaked loop devices: ${left.join(', ')}`);
        }
      },
    };
  } catch (err) {
    await sim?.close();
    host.cleanup();
    throw err;
  }
}

/** Runs the CLI; resolves with its exit code and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, opts: { killAfterMs?: number } = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [cliMain, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let t: NodeJS.Timeout | undefined;
    if (opts.killAfterMs !== undefined) t = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
    child.on('close', (code, signal) => {
      if (t) clearTimeout(t);
      res({ code, signal, out });
    });
  });
}

/** The CLI with stdout and stderr kept apart (runCli merges them). */
export function xvbd(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn(process.execPath, [cliMain, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('close', (code) => res({ code, stdout, stderr }));
  });
}
