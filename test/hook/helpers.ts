// Shared by the hook tests: running the C hook as libxl does, the daemon, the on-demand hook server's
// end, and a domain with many disks of its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { askDaemon } from '../../src/ipc/control.js';
import { devidToVdev } from '../../src/config/index.js';
import { cliMain, DOMAINS, waitUntil, type Bench } from '../apply/helpers.js';

export const HOOK = fileURLToPath(new URL('../../native/xvbd-hook', import.meta.url));

/** The example host's domains, one the config does not name, and one with many disks. */
export const HOOK_DOMAINS = [...DOMAINS, { name: 'many', domid: 5 }, { name: 'stranger', domid: 9 }];

/** The environment libxl gives a hotplug script (plus the bench's), for one backend. */
export function hookEnv(b: Bench, fe: number, devid: number): NodeJS.ProcessEnv {
  // the hook server lingers this long after a test's last hook (then the cleanup stops it anyway)
  return { ...b.env, XENBUS_PATH: `backend/vbd/${fe}/${devid}`, XVBD_HOOK_SERVER_IDLE_MS: '3000' };
}

export function runNative(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const c = spawn(HOOK, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('close', (code) => res({ code, out }));
  });
}

/** The domain `many` (domid 5): n read-write disks xvda.. of its own, in a config file of their own. */
export function manyDisksConfig(b: Bench, n: number): { devid: number; vdev: string; file: string }[] {
  const disks = Array.from({ length: n }, (_, i) => {
    const devid = (202 << 8) | (i << 4);
    const file = join(b.host.imagesDir, `many-${i}.img`);
    writeFileSync(file, '');
    truncateSync(file, 4 << 20);
    return { devid, vdev: devidToVdev(devid), file };
  });
  writeFileSync(
    join(b.host.configDir, 'many.yaml'),
    `apiVersion: xvbd/v1\nkind: Domain\nname: many\ndisks:\n${disks.map((d) => `  - vdev: ${d.vdev}\n    file: ${d.file}\n`).join('')}`,
  );
  return disks;
}

/** Sets the policy's `serve:` in the example host's policy.yaml. */
export function setServe(b: Bench, serve: 'attach' | 'hook' | 'both'): void {
  const pol = join(b.host.configDir, 'policy.yaml');
  writeFileSync(pol, readFileSync(pol, 'utf8').replace(/^serve: \w+$/m, `serve: ${serve}`));
}

/** Stops the on-demand hook server of the bench's run dir, if one runs (it was started by our hooks). */
export async function stopHookServer(b: Bench): Promise<void> {
  const sock = join(b.runDir, 'hook.sock');
  if (!existsSync(sock)) return;
  const rep = await askDaemon({ op: 'ping' }, { path: sock }).catch(() => undefined);
  if (rep?.ok && typeof rep.pid === 'number') process.kill(rep.pid, 'SIGTERM');
  await waitUntil('the hook server to exit', () => !existsSync(sock), 10_000);
}

export interface DaemonProc {
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** `xvbd reconcile --watch`, once its control socket answers and its first pass is done. */
export async function startDaemon(b: Bench): Promise<DaemonProc> {
  const child = spawn(process.execPath, [cliMain, 'reconcile', '--watch', '--resync', '0'], { env: b.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const ctl = join(b.runDir, 'control.sock');
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((res) => child.once('exit', res));
    child.kill('SIGTERM');
    await exited;
  };
  try {
    await waitUntil(
      'the daemon',
      async () => {
        if (child.exitCode !== null) throw new Error(`the daemon exited: ${log}`);
        const rep = existsSync(ctl) ? await askDaemon({ op: 'ping' }, { path: ctl }).catch(() => undefined) : undefined;
        return Boolean(rep?.ok && Number(rep.finished) >= 1); // the start pass has ended: what comes next is the hook's
      },
      20_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, log: () => log, stop };
}
