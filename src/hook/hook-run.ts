// The libxl hook's processes (docs/hook.md):
// - `xvbd hook server`: the on-demand server native/xvbd-hook starts (once, detached, under a lock) when
//   no daemon listens; it serves every hook of a burst on $XVBD_RUN_DIR/hook.sock, the keeper holding
//   the devices, and exits once idle for a while;
// - `xvbd hook add|remove`: the Node reference hook, the same server-side code (HookServer) in-process
//   when neither the daemon nor a hook server listens.
import { appendFileSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigCache, formatErrors } from '../config/index.js';
import { hostConfig } from '../host/config.js';
import { askDaemon, controlSocketPath, ControlError, ControlServer, type ControlRequest } from '../ipc/control.js';
import { dropFromKeepers } from '../hold/keeper-client.js';
import type { XsClient } from '../xenstore/api.js';
import { connect } from '../xenstore/client.js';
import { execute } from '../apply/execute.js';
import { KeeperHolder } from '../hold/holder.js';
import { parseHookInvocation, type HookTarget } from './hook.js';
import { HookServer, targetOf, type HookServeDeps, type ServeAnswer } from './hook-serve.js';
import { RegistryDevices } from '../apply/linux-devices.js';
import { acquireApplyLock, runDir } from '../apply/lock.js';
import { stampedLog } from '../log/stdio.js';
import { letGo } from '../plan/letgo.js';

/** Where the on-demand hook server listens. */
export function hookSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(runDir(env), 'hook.sock');
}

/** Like the Xen hotplug scripts: a line in /var/log/xen/xen-hotplug.log when that log exists. */
export function hotplugLog(line: string): void {
  try {
    appendFileSync('/var/log/xen/xen-hotplug.log', `xvbd: ${line}\n`, { flag: 'a' });
  } catch {
    // no Xen log dir (simulator, tests)
  }
}

/** The HookServer's I/O for a process without the daemon (see openOneShot). */
export interface OneShotDeps extends HookServeDeps {
  holder: KeeperHolder;
  /** The keeper connection under way (started with the process: it is a Node start of its own). */
  keeperUp: Promise<void>;
  close(): Promise<void>;
}

/**
 * One xenstore connection (made again after a failure), the config through a cache, the host's loop
 * devices, and each batch's steps under the apply lock with a fresh LoopRegistry, the keeper holding
 * every device. With `startKeeper`, the keeper is started now, while this process loads its code.
 */
export async function openOneShot(
  env: NodeJS.ProcessEnv,
  log: (l: string) => void,
  opts: { startKeeper?: boolean; holder?: KeeperHolder; keeperUp?: Promise<void> } = {},
): Promise<OneShotDeps> {
  const host = hostConfig(env);
  const holder = opts.holder ?? new KeeperHolder(host.runDir);
  const started = opts.keeperUp ?? (opts.startKeeper ? holder.start() : Promise.resolve());
  const keeperUp = started.catch((e: Error) => log(`keeper: ${e.message}`));
  const linux = await import('../linux/index.js');
  const config = new ConfigCache(host.configDir, { host: host.hostName });
  let loading: ReturnType<ConfigCache['load']> | undefined;
  let xs: Promise<XsClient> | undefined;
  const client = () => {
    if (!xs) {
      const c = connect({ paths: host.xenstorePaths });
      xs = c;
      c.catch(() => {
        if (xs === c) xs = undefined;
      });
    }
    return xs;
  };
  const drop = async () => {
    const c = xs;
    xs = undefined;
    await c?.then((x) => x.close()).catch(() => undefined);
  };
  return {
    holder,
    keeperUp,
    client,
    log,
    async desired() {
      // one load at a time (the server's warm-up and its first batch would otherwise parse twice)
      const l = (loading ??= config.load().finally(() => (loading = undefined)));
      const r = await l;
      if (r.desired && r.errors.length === 0) return { desired: r.desired };
      const first = formatErrors(r.errors, { color: false }).split('\n')[0] ?? 'error';
      return { error: `the xvbd configuration in ${config.dir} is invalid (${r.errors.length} error(s)): ${first}` };
    },
    loops() {
      const mounts = linux.mountedDevices();
      return { loops: linux.listLoops({ mounts }), mountedDevs: mounts.devs };
    },
    async execute(plan, desired) {
      const lock = await acquireApplyLock({ dir: host.runDir, waitMs: 60_000 });
      const registry = new linux.LoopRegistry({ allowedRoots: desired.policy.allowedRoots });
      try {
        const r = await execute(plan, { xs: await client(), devices: new RegistryDevices(registry), policy: desired.policy, holder });
        return r.steps.map((s) => ({ target: 'backend' in s.action ? s.action.backend.path : '', ok: s.ok, ...(s.error ? { error: s.error } : {}) }));
      } catch (err) {
        await drop(); // a lost connection is made again by the next batch
        throw err;
      } finally {
        registry.closeAll();
        lock.release();
      }
    },
    async close() {
      await keeperUp;
      holder.close();
      await drop();
    },
  };
}

/** Lets the keepers of this run dir go of one backend's fd (the hook's `remove` without a daemon). */
async function keeperDrop(t: HookTarget, env: NodeJS.ProcessEnv): Promise<string> {
  // libxl runs `remove` before it removes the dirs: the giver's word (src/plan/letgo.ts)
  const v = letGo({ of: 'giver-drop' });
  if (v.keep) return v.reason;
  try {
    const n = await dropFromKeepers(runDir(env), t.path);
    return n > 0 ? 'released by the keeper' : 'nothing held it (no daemon, no keeper)';
  } catch (err) {
    return `keeper: ${(err as Error).message}`;
  }
}

export interface HookServerOptions {
  env?: NodeJS.ProcessEnv;
  /** Exit after this long without a request (ms); default $XVBD_HOOK_SERVER_IDLE_MS or 10 s. */
  idleMs?: number;
  /** An fd to write "ready\n" to (then close) once listening: native/xvbd-hook waits on it. */
  readyFd?: number;
  /** The keeper holder, its start already under way (see the `hook server` command). */
  holder?: KeeperHolder;
  keeperUp?: Promise<void>;
  log?: (line: string) => void;
}

/** `xvbd hook server`: runs until idle; resolves with the exit code. */
export async function runHookServer(o: HookServerOptions = {}): Promise<number> {
  const env = o.env ?? process.env;
  const log = o.log ?? stampedLog(`xvbd hook server[${process.pid}]: `);
  const envIdle = Number(env.XVBD_HOOK_SERVER_IDLE_MS);
  const idleMs = o.idleMs ?? (Number.isFinite(envIdle) && envIdle > 0 ? envIdle : 10_000);
  // the keeper (another Node process) starts while this one loads its code and the config
  const deps = await openOneShot(env, log, { startKeeper: true, ...(o.holder ? { holder: o.holder } : {}), ...(o.keeperUp ? { keeperUp: o.keeperUp } : {}) });
  // the config (YAML, the schema compiled) loads while the first hooks connect
  void deps.desired().catch(() => undefined);
  const server = new HookServer(deps);
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const arm = () => {
    clearTimeout(timer);
    if (inFlight === 0) timer = setTimeout(done, idleMs);
  };
  const handler = async (req: ControlRequest): Promise<Record<string, unknown>> => {
    inFlight++;
    clearTimeout(timer);
    try {
      if (req.op === 'ping') return { pid: process.pid };
      let t: HookTarget;
      try {
        t = targetOf(req.backend);
      } catch (err) {
        throw new ControlError((err as Error).message);
      }
      if (req.op === 'release') return { released: true, detail: await keeperDrop(t, env) };
      if (req.op !== 'serve') throw new ControlError(`unknown op "${req.op}" (serve, release, ping)`);
      const a = await server.serve(t);
      if (!a.ok) throw new ControlError(a.error);
      return { served: true, backend: t.path, physicalDevice: a.physicalDevice, detail: a.detail };
    } finally {
      inFlight--;
      arm();
    }
  };
  const ctl = await ControlServer.listen(handler, { path: hookSocketPath(env), log });
  log(`listening on ${ctl.path} (exits after ${idleMs} ms idle)`);
  if (o.readyFd !== undefined) {
    try {
      writeSync(o.readyFd, 'ready\n');
      closeSync(o.readyFd);
    } catch {
      // the starter is gone: serve whoever comes anyway
    }
  }
  arm();
  // SIGTERM as idling out: nothing is held here (the keeper has the fds), so stopping loses nothing
  const onTerm = () => done();
  process.once('SIGTERM', onTerm);
  await finished;
  process.off('SIGTERM', onTerm);
  // New connections now find no socket (and start another server); those accepted are answered first.
  await ctl.close();
  await server.idle();
  await deps.close();
  log('idle: exiting');
  return 0;
}

export interface HookRunOptions {
  env?: NodeJS.ProcessEnv;
  /** Skip the daemon's control socket and any hook server (tests). */
  noDaemon?: boolean;
  log?: (line: string) => void;
}

/** The reply of a server (daemon or hook server) that listens, or undefined when none does. */
async function askServers(req: ControlRequest, env: NodeJS.ProcessEnv, log: (l: string) => void): Promise<{ who: string; rep: Awaited<ReturnType<typeof askDaemon>> } | undefined> {
  for (const [who, path] of [['the daemon', controlSocketPath(env)], ['the hook server', hookSocketPath(env)]] as const) {
    const rep = await askDaemon(req, { path }).catch((e: unknown) => {
      log(`${who} did not answer (${(e as Error).message})`);
      return undefined;
    });
    if (rep) return { who, rep };
  }
  return undefined;
}

/** `xvbd hook add|remove`: the Node reference hook. */
export async function runHook(argv: string[], opts: HookRunOptions = {}): Promise<number> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? ((l: string) => process.stderr.write(`xvbd hook: ${l}\n`));
  const say = (l: string) => {
    log(l);
    hotplugLog(l);
  };
  const be = env.XVBD_BACKEND_DOMID !== undefined ? Number(env.XVBD_BACKEND_DOMID) : 0;
  let op: 'add' | 'remove';
  let target: HookTarget;
  try {
    ({ op, target } = parseHookInvocation(argv, env, be));
  } catch (err) {
    say((err as Error).message); // nothing trustworthy to write an error node to
    // as the C hook: the wrong arguments are a usage error (2), a bad or missing XENBUS_PATH a failure (1)
    const usage = argv.length < 1 || argv.length > 2 || (argv[0] !== 'add' && argv[0] !== 'remove') || (argv.length === 2 && !argv[1]!.startsWith('XENBUS_PATH='));
    return usage ? 2 : 1;
  }
  const req = { op: op === 'add' ? 'serve' : 'release', backend: target.path };
  const asked = opts.noDaemon ? undefined : await askServers(req, env, log);
  if (op === 'remove') {
    const detail = asked?.rep?.ok ? `released by ${asked.who}` : await keeperDrop(target, env);
    say(`${target.path}: ${detail}`);
    return 0;
  }
  let answer: ServeAnswer;
  if (asked?.rep) {
    const r = asked.rep;
    answer = r.ok ? { ok: true, physicalDevice: String(r.physicalDevice), detail: `served by ${asked.who} (physical-device ${String(r.physicalDevice)})` } : { ok: false, error: r.error ?? 'error' };
  } else {
    const deps = await openOneShot(env, () => undefined);
    try {
      answer = await new HookServer(deps).serve(target);
    } finally {
      await deps.close();
    }
  }
  say(`${target.path}: ${answer.ok ? answer.detail : answer.error}`);
  return answer.ok ? 0 : 1;
}
