// `xvbd hook add|remove`: what libxl runs as the disk's script=. See hook.ts for the checks and
// docs/fd-holding.md for who holds the device afterwards.
import { appendFileSync } from 'node:fs';
import { ConfigInvalidError, defaultConfigDir, formatErrors, loadDesired, vdevToDevid } from '../config/index.js';
import { askDaemon } from '../daemon/control.js';
import { connectKeeper } from '../daemon/keeper-client.js';
import { LoopRegistry } from '../linux/index.js';
import type { XsClient } from '../xenstore/api.js';
import { connect } from '../xenstore/client.js';
import { serveBackend, type FdHolder } from './execute.js';
import { KeeperHolder } from './holder.js';
import {
  HookError,
  matchDesired,
  parseHookInvocation,
  readBackendFacts,
  reportHookError,
  type HookTarget,
} from './hook.js';
import { MARKER_NODE, MARKER_VALUE } from './layout.js';
import { RegistryDevices } from './linux-devices.js';
import { acquireApplyLock, runDir } from './lock.js';

export interface HookRunOptions {
  env?: NodeJS.ProcessEnv;
  xs?: XsClient;
  holder?: FdHolder;
  /** Skip the daemon's control socket (tests). */
  noDaemon?: boolean;
  log?: (line: string) => void;
}

/** Like the Xen hotplug scripts: a line in /var/log/xen/xen-hotplug.log when it exists. */
function hotplugLog(line: string): void {
  try {
    appendFileSync('/var/log/xen/xen-hotplug.log', `xvbd-hook: ${line}\n`, { flag: 'a' });
  } catch {
    // no Xen log dir (simulator, tests)
  }
}

export async function runHook(argv: string[], opts: HookRunOptions = {}): Promise<number> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((l: string) => process.stderr.write(`xvbd hook: ${l}\n`));
  const be = env.XVBD_BACKEND_DOMID !== undefined ? Number(env.XVBD_BACKEND_DOMID) : 0;
  let op: 'add' | 'remove';
  let target: HookTarget;
  try {
    ({ op, target } = parseHookInvocation(argv, env, be));
  } catch (err) {
    // nothing trustworthy to write an error node to
    log((err as Error).message);
    hotplugLog((err as Error).message);
    return 1;
  }
  const xs = opts.xs ?? (await connect());
  try {
    if (op === 'remove') return await remove(target, opts, log);
    try {
      const detail = await add(xs, target, env, opts, log);
      log(detail);
      hotplugLog(`${target.path}: ${detail}`);
      return 0;
    } catch (err) {
      const msg = err instanceof ConfigInvalidError ? `the xvbd configuration is invalid:\n${formatErrors(err.errors)}` : (err as Error).message;
      log(`${target.path}: ${msg}`);
      hotplugLog(`${target.path}: ${msg}`);
      await reportHookError(xs, target, msg.split('\n')[0]!).catch(() => {});
      return 1;
    }
  } finally {
    if (!opts.xs) await xs.close();
  }
}

async function add(xs: XsClient, t: HookTarget, env: NodeJS.ProcessEnv, opts: HookRunOptions, log: (l: string) => void): Promise<string> {
  const facts = await readBackendFacts(xs, t);
  const desired = await loadDesired(defaultConfigDir(env));
  const { domain, disk } = matchDesired(desired, t, facts, vdevToDevid);
  if (!opts.noDaemon) {
    const rep = await askDaemon({ op: 'serve', backend: t.path }).catch((e: unknown) => {
      log(`the daemon did not answer (${(e as Error).message}); serving without it`);
      return undefined;
    });
    if (rep) {
      if (!rep.ok) throw new HookError(`the daemon refused: ${rep.error ?? 'error'}`);
      return `served by the daemon (physical-device ${String(rep.physicalDevice)})`;
    }
  }
  const lock = await acquireApplyLock({ waitMs: 60_000 });
  const registry = new LoopRegistry({ allowedRoots: desired.policy.allowedRoots });
  const holder = opts.holder ?? new KeeperHolder(runDir());
  try {
    const [marker, pdev] = await Promise.all([xs.read(`${t.path}/${MARKER_NODE}`), xs.read(`${t.path}/physical-device`)]);
    const ctx = { xs, devices: new RegistryDevices(registry), policy: desired.policy, holder };
    if (pdev !== undefined) {
      if (marker === MARKER_VALUE) return `already served (physical-device ${pdev})`;
      throw new HookError(`${t.path} already has physical-device ${pdev}, not written by xvbd`);
    }
    return await serveBackend(ctx, {
      domain: domain.name,
      domid: t.frontendDomid,
      disk,
      backend: { path: t.path, backendDomid: t.backendDomid, frontendDomid: t.frontendDomid, devid: t.devid },
    });
  } finally {
    if (holder instanceof KeeperHolder) holder.close();
    registry.closeAll();
    lock.release();
  }
}

/** libxl runs `remove` before it removes the dirs: let the holder go now (blkback still holds the device). */
async function remove(t: HookTarget, opts: HookRunOptions, log: (l: string) => void): Promise<number> {
  if (!opts.noDaemon) {
    const rep = await askDaemon({ op: 'release', backend: t.path }).catch(() => undefined);
    if (rep?.ok) {
      log(`${t.path}: released by the daemon`);
      return 0;
    }
  }
  const k = await connectKeeper(runDir()).catch(() => undefined);
  if (k) {
    try {
      await k.request({ op: 'drop', backend: t.path });
      log(`${t.path}: released by the keeper`);
    } catch (err) {
      log(`${t.path}: keeper: ${(err as Error).message}`);
    } finally {
      k.close();
    }
  }
  return 0;
}
