// Small helpers for scenario authors (usable in dom0 and on the host).
import { execFile } from 'node:child_process';
import { join } from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command (async: never blocks the event loop, so an in-process simulator keeps answering). */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((res) => {
    const p = execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      res({ code, stdout, stderr });
    });
    if (opts.input !== undefined) p.stdin?.end(opts.input);
  });
}

/** run() that throws (with the output) unless the command exits 0; resolves to its stdout, trimmed. */
export async function sh(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/** The project's CLI: `node <repo>/dist/src/cli/main.js ...args`. */
export function xvbd(repoRoot: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  return run(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), ...args], opts);
}

/** Polls until fn() returns a truthy value; throws after timeoutMs naming `what`. */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const end = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${opts.timeoutMs ?? 30_000} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
}

/** An xvbd config for dom0 itself (frontend and backend in dom0): a Policy and one Domain-0 document. */
export function dom0Config(
  images: string,
  disks: readonly { vdev: string; file: string; mode: string }[],
  opts: { prune: boolean },
): string {
  return [
    'apiVersion: xvbd/v1',
    'kind: Policy',
    `prune: ${opts.prune}`,
    'allowedRoots:',
    `  - ${images}`,
    'detachTimeout: 20s',
    '---',
    'apiVersion: xvbd/v1',
    'kind: Domain',
    'name: Domain-0',
    `disks:${disks.length === 0 ? ' []' : ''}`,
    ...disks.flatMap((d) => [`  - vdev: ${d.vdev}`, `    file: ${d.file.startsWith('/') ? d.file : `${images}/${d.file}`}`, `    mode: ${d.mode}`]),
    '',
  ].join('\n');
}
