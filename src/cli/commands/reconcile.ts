// `xvbd reconcile [--watch]`: one reconcile pass (observe, plan, execute) and exit with a
// Terraform-like code, or the daemon that keeps the host converged (src/daemon, docs/systemd.md).
import { hostOption, parseCommand, UsageError } from '../args.js';
import { EXIT_CHANGES, EXIT_ERROR, EXIT_FINDINGS, EXIT_OK } from '../exit.js';
import { resolve } from 'node:path';
import { defaultConfigDir } from '../../config/index.js';
import { CliError } from '../errors.js';
import type { Finding } from '../../model/plan.js';
import { exitAfterFlush, stampedLog, writeErr, writeOut } from '../../log/stdio.js';

const USAGE = `Usage: xvbd reconcile [--config DIR] [--host NAME] [--watch] [options]

Observes the host, plans against the desired state and carries the plan out.

Without --watch: one pass, then exit. When a daemon listens on its control socket, the pass runs
in the daemon (it holds the fds); otherwise here, and the fds go to the keeper.
Exit status (once):
  0 = already converged (nothing to do), 2 = changes made, all succeeded,
  3 = error findings remain after the pass (a disk broken or blocked: source missing or mounted,
      a read-write file shared...; listed on stderr), even if changes were made,
  1 = error (invalid config, a failed step, xenstore unreachable), 2 also = usage error.

With --watch: the daemon. A pass at start, then one per trigger (config dir changes, xenstore
backend/vbd and @introduceDomain/@releaseDomain watches, SIGHUP, periodic resync), coalesced, with
exponential backoff after errors. systemd: Type=notify, fd store (see docs/systemd.md).
Stop with SIGTERM: nothing is detached; held fds go to the keeper and systemd's fd store.

Options:
  --config DIR        desired-state directory (default $XVBD_CONFIG or /etc/xvbd)
  --host NAME         in a fleet directory (with \`kind: Host\` documents), this host's desired state
                      (default: this machine's name, \`uname -n\`, or $XVBD_HOST)
  --watch             run as the daemon
  --resync SECONDS    periodic full pass in watch mode (default 300; 0 = off)
  --debounce MS       quiet time that coalesces a burst of triggers (default 200)
  --hook-script PATH  written as the backend's script= on attach (so xl block-detach runs the hook);
                      default $XVBD_HOOK_SCRIPT, else /usr/local/bin/xvbd-hook when installed
  --local             once: run the pass here even if a daemon listens
  --json              once: print the pass outcome as JSON
  --metrics-file PATH watch: after every pass, write the daemon's state for Prometheus there (text format,
                      replaced atomically; for node_exporter's textfile collector, e.g.
                      /var/lib/prometheus/node-exporter/xvbd.prom; the name must end in .prom)
  -h, --help          this help
Environment: XVBD_RUN_DIR (default /run/xvbd: control.sock, apply.lock, keeper), XENSTORED_PATH,
  XVBD_XEN_BACKEND_SYSFS, NOTIFY_SOCKET / LISTEN_FDS / WATCHDOG_USEC (set by systemd).`;

// Long: flag checks, then either the daemon's wiring (--watch) or one pass; its lazy imports keep `xvbd hook` fast.
export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, {
    config: { type: 'string' },
    host: { type: 'string' },
    watch: { type: 'boolean', default: false },
    resync: { type: 'string', default: '300' },
    debounce: { type: 'string', default: '200' },
    'hook-script': { type: 'string' },
    local: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'metrics-file': { type: 'string' },
  });
  if (!args) return 0;
  const a = args.values;
  const num = (name: string, v: string, max: number) => {
    if (!/^[0-9]{1,9}$/.test(v) || Number(v) > max) throw new UsageError('reconcile', `--${name} must be a whole number from 0 to ${max}, not ${JSON.stringify(v)}`);
    return Number(v);
  };
  const resyncS = num('resync', a.resync, 86_400);
  const debounceMs = num('debounce', a.debounce, 60_000);
  const configDir = resolve(a.config ?? defaultConfigDir());
  const metricsFile = a['metrics-file'];
  if (metricsFile !== undefined) {
    if (!a.watch) throw new CliError('--metrics-file is for the daemon (--watch): a one-shot pass writes no metrics');
    if (!metricsFile.startsWith('/') || !metricsFile.endsWith('.prom') || metricsFile.endsWith('/.prom')) {
      throw new CliError(`--metrics-file must be an absolute path ending in .prom (node_exporter's textfile collector reads *.prom), not ${metricsFile}`);
    }
  }
  // As `xvbd apply` does: --hook-script, else $XVBD_HOOK_SCRIPT, else /usr/local/bin/xvbd-hook if installed.
  const { wire } = await import('../../wire/wire.js');
  const w = wire();
  const hookScript = a['hook-script'] ?? w.host.hookScript;

  const { controlSocketPath, askDaemon } = await import('../../ipc/control.js');
  const { planWithPolicy } = await import('../../wire/wiring.js');
  // what the daemon and a one-shot pass are both made of: config, xenstore, observe, plan, loop devices
  const registry = w.registry();
  const core = {
    configDir,
    ...hostOption('reconcile', a.host),
    connect: () => w.xenstore(),
    observe: w.observe(registry),
    plan: planWithPolicy,
    registry,
    devices: w.devices(registry),
    ...(hookScript ? { hookScript } : {}),
    xenBackendSysfs: w.host.xenBackendSysfs,
  };

  if (a.watch) {
    const { Daemon } = await import('../../daemon/daemon.js');
    // journald stamps and ranks the lines itself when stderr is the journal (<N> prefixes, no time)
    const log = stampedLog();
    const d = new Daemon({
      ...core,
      runDir: w.host.runDir,
      controlPath: controlSocketPath(),
      resyncMs: resyncS * 1000,
      debounceMs,
      ...(metricsFile !== undefined ? { metricsFile } : {}),
      log,
    });
    // A bug in a callback must not take the daemon (and the fds it holds) down: log it, keep serving.
    process.on('unhandledRejection', (e) => log(`BUG: unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, 'crit'));
    const done = new Promise<string>((res) => {
      process.once('SIGTERM', () => res('SIGTERM'));
      process.once('SIGINT', () => res('SIGINT'));
    });
    // A signal during start (a first pass that hangs on xenstore...) stops it too.
    let early: string | undefined;
    try {
      early = (await Promise.race([d.start().then(() => undefined), done])) ?? undefined;
    } catch (err) {
      await d.stop('start failed').catch(() => undefined);
      throw new CliError(`cannot start: ${(err as Error).message}`);
    }
    const why = early ?? (await done);
    await d.stop(why);
    // Everything is handed off and closed; a stray handle (a file watcher's poller on a removed config
    // dir...) must not keep the process around until systemd's stop time-out.
    exitAfterFlush(0);
    return 0;
  }

  // Once. A running daemon does the pass (it holds the fds and the loop), unless --local.
  if (!a.local) {
    const reply = await askDaemon({ op: 'reconcile', reason: 'xvbd reconcile', config: configDir, ...hostOption('reconcile', a.host) }, { timeoutMs: 300_000 }).catch((e: Error) => {
      throw new CliError(`the daemon's control socket failed: ${e.message}`);
    });
    if (reply) {
      if (!reply.ok) throw new CliError(`the daemon refused: ${reply.error}`);
      const pass = reply.pass as PassResult & { summary: string };
      const after = await remaining(pass, configDir);
      if (a.json) writeOut(JSON.stringify({ via: 'daemon', ...pass, errorFindingsAfter: after.findings ?? null }, null, 2) + '\n');
      else writeOut(`(via the daemon) ${pass.summary}\n`);
      return report(pass, after, a.json);
    }
  }
  const { Reconciler } = await import('../../daemon/reconciler.js');
  const { DaemonEngine } = await import('../../daemon/engine.js');
  const holder = w.keeperHolder();
  const lines: string[] = [];
  const log = (l: string) => {
    lines.push(l);
    if (!a.json) writeErr(l + '\n');
  };
  // a one-shot pass asks the keepers what they hold, as `apply` does: unheld devices are taken back
  const engine = new DaemonEngine({ ...core, observe: w.observe(registry, { holders: true }), holder, log });
  const rec = new Reconciler(engine, { log, debounceMs: 0 });
  let o: Awaited<ReturnType<typeof rec.trigger>>;
  try {
    o = await rec.trigger('xvbd reconcile', { urgent: true });
  } finally {
    await rec.stop();
    holder.close();
    await engine.close();
    // from here on only the keepers hold what the pass served: the look after it sees what stays
    registry.closeAll();
  }
  const after = await remaining(o, configDir);
  if (a.json) {
    const { outcomeJson } = await import('../../daemon/daemon.js');
    writeOut(JSON.stringify({ via: 'local', ...outcomeJson(o), errorFindingsAfter: after.findings ?? null, log: lines }, null, 2) + '\n');
  } else if (!o.configOk) {
    writeErr('the config is invalid (see above): nothing was done\n');
  }
  return report(o, after, a.json);
}

/** What `reconcile` (once) needs of a pass outcome, from this process or the daemon's reply. */
interface PassResult {
  ok: boolean;
  configOk: boolean;
  steps: unknown[];
  error?: string;
  errorFindings?: Finding[];
}

/**
 * The error findings that remain after a pass that went well: the pass's own when it changed nothing,
 * else a fresh look (observe and plan, read-only), as the steps may have fixed some (a take-back, a
 * replace) or not (a source still missing). `lookFailed` when that look failed.
 */
async function remaining(o: PassResult, configDir: string): Promise<{ findings?: Finding[]; lookFailed?: string }> {
  if (o.error || !o.ok || !o.configOk) return {};
  if (o.steps.length === 0) return { findings: o.errorFindings ?? [] };
  try {
    const { snapshot } = await import('../../wire/snapshot.js');
    const { askHolders } = await import('../holders.js');
    const snap = await snapshot({ configDir, holders: askHolders });
    if (!snap.plan) return { lookFailed: `the config in ${configDir} no longer loads` };
    return { findings: snap.plan.findings.filter((f) => f.severity === 'error') };
  } catch (err) {
    return { lookFailed: err instanceof Error ? err.message : String(err) };
  }
}

/** Prints what keeps the exit status from 0 or 2 (on stderr, unless --json) and returns it. */
function report(o: PassResult, after: { findings?: Finding[]; lookFailed?: string }, json: boolean): number {
  const code = exitCode(o, after);
  if (!json && after.lookFailed !== undefined) writeErr(`the steps ran, but looking at the host again failed: ${after.lookFailed}\n`);
  if (!json && code === EXIT_FINDINGS) {
    const n = after.findings!.length;
    writeErr(`${n === 1 ? '1 error finding remains' : `${n} error findings remain`} (xvbd status shows them all):\n`);
    for (const f of after.findings!) writeErr(`  ! error ${f.kind}: ${f.message}\n      fix: ${f.fix}\n`);
  }
  return code;
}

/**
 * 1 = anything failed or the config is invalid, 3 = error findings remain (even after changes),
 * 2 = changes made and all succeeded, 0 = nothing to do.
 */
export function exitCode(o: PassResult, after: { findings?: Finding[]; lookFailed?: string } = {}): number {
  if (o.error || !o.ok || !o.configOk || after.lookFailed !== undefined) return EXIT_ERROR;
  if ((after.findings ?? o.errorFindings ?? []).length > 0) return EXIT_FINDINGS;
  return o.steps.length > 0 ? EXIT_CHANGES : EXIT_OK;
}
