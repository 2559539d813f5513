// Shared helpers of the simulator tests: a simulator in a temp dir, the real xenstore-* tools
// pointed at it, and loop devices these tests create (and always free).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/sim/index.js';

export interface SimEnv {
  dir: string;
  sim: Simulator;
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export async function simEnv(opts: Partial<SimulatorOptions> = {}): Promise<SimEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-sim-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), ...opts });
  const env = { ...process.env, XENSTORED_PATH: sim.socketPath };
  return {
    dir,
    sim,
    env,
    close: async () => {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a real xenstore-* tool against the simulator (blocking: the simulator runs in-process, so async). */
export function tool(env: NodeJS.ProcessEnv, cmd: string, args: string[], input?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.on('error', () => undefined);
    p.stdin.end(input ?? '');
  });
}

export interface TestLoop {
  dev: string;
  name: string;
  /** "major:minor" in hex, as `stat -c %t:%T` prints it. */
  mm: string;
  file: string;
  /** Bound to our file right now? */
  bound(): boolean;
  autoclear(): boolean;
  /** Detaches if still bound to our file (never touches anyone else's device). */
  free(): void;
}

export function makeLoop(dir: string, name: string, sizeMiB = 4, readOnly = false): TestLoop {
  const file = join(dir, `${name}.img`);
  writeFileSync(file, '');
  execFileSync('truncate', ['-s', `${sizeMiB}M`, file]);
  const dev = execFileSync('losetup', ['-f', '--show', ...(readOnly ? ['-r'] : []), file], { encoding: 'utf8' }).trim();
  const mm = execFileSync('stat', ['-c', '%t:%T', dev], { encoding: 'utf8' }).trim();
  const lname = dev.replace('/dev/', '');
  const bound = () => {
    try {
      return readFileSync(`/sys/block/${lname}/loop/backing_file`, 'utf8').trim() === file;
    } catch {
      return false;
    }
  };
  return {
    dev,
    name: lname,
    mm,
    file,
    bound,
    autoclear: () => readFileSync(`/sys/block/${lname}/loop/autoclear`, 'utf8').trim() === '1',
    free: () => {
      if (bound()) spawnSync('losetup', ['-d', dev]);
    },
  };
}

/** Polls until cond() or the timeout (autoclear frees a device asynchronously). */
export async function waitFor(cond: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

export function exists(p: string): boolean {
  return existsSync(p);
}
