// The real LiveSource: desired state from the config dir, observed state from xenstore (the real
// one, or the simulator's socket via XENSTORED_PATH) and the loop devices, the pure planner.
// Triggers: xenstore watches on the backend trees, the error trees and the frontends' state nodes
// of the disks shown, @introduceDomain / @releaseDomain; chokidar on the config dir's YAML files.
import { hostname } from 'node:os';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { ConfigCache, errorHeadline } from '../config/index.js';
import { DEFAULT_POLICY, type DesiredState } from '../model/desired.js';
import { observedOnlyPlan } from '../plan/observed-only.js';
import { plan as makePlan } from '../plan/plan.js';
import type { Plan } from '../model/plan.js';
import { snapshot, type Snapshot } from '../wire/snapshot.js';
import type { XsClient } from '../xenstore/api.js';
import { connect } from '../xenstore/client.js';
import { defaultPaths } from '../host/env.js';
import { readDaemon } from './daemon-info.js';
import type { ApplyOutcome, LiveSource, Observation } from './source.js';

/** prune: apply as `xvbd apply --prune` (`plan` is then the plan with prune that was shown). */
export type ApplyFn = (plan: Plan, desired: DesiredState, onLine: (line: string) => void, opts?: { prune?: boolean }) => Promise<ApplyOutcome>;

export interface XenSourceOptions {
  configDir: string;
  /** In a fleet directory: the host whose desired state to show (default: this machine's name). */
  host?: string;
  /** xenstore socket; default as libxenstore chooses (XENSTORED_PATH, ...). */
  socket?: string;
  /** Executes a plan (the command passes the executor when it is available). */
  apply?: ApplyFn;
  /** Where blkback's devices appear (default from the environment, see conventions). */
  xenBackendSysfs?: string;
  /** The daemon's control socket (default $XVBD_RUN_DIR/control.sock); false: do not ask a daemon. */
  controlSocket?: string | false;
}

/** The desired state of an observation made without a valid config: nothing (and nothing planned). */
const NOTHING_DESIRED: DesiredState = { domains: [], policy: DEFAULT_POLICY };

const BACKEND_TOKEN = 'xvbd-tui-be';
const DOMAIN_TOKEN = 'xvbd-tui-dom';
const FRONTEND_TOKEN = 'xvbd-tui-fe';

export class XenSource implements LiveSource {
  readonly host = hostname();
  readonly socket: string;
  readonly configDir: string;
  readonly apply?: ApplyFn;
  private xs: XsClient | undefined;
  private watchXs: XsClient | undefined;
  private lastGood: DesiredState | undefined;
  private readonly config: ConfigCache;
  private watchedBackends = new Set<number>();
  private watchedFrontends = new Set<string>();
  private onChange: ((why: string) => void) | undefined;
  private closed = false;

  constructor(private readonly o: XenSourceOptions) {
    this.configDir = o.configDir;
    this.config = new ConfigCache(o.configDir, o.host !== undefined ? { host: o.host } : {});
    this.socket = o.socket ?? defaultPaths()[0] ?? 'xenstore';
    if (o.apply) this.apply = o.apply;
  }

  private async client(): Promise<XsClient> {
    if (!this.xs) this.xs = await connect(this.o.socket !== undefined ? { path: this.o.socket } : {});
    return this.xs;
  }

  /** The desired state, or (no good one yet) `undefined` and the host is shown alone. */
  private async desired(force: boolean): Promise<{ desired: DesiredState | undefined; warning?: string }> {
    const r = await this.config.load(force);
    if (r.desired && r.errors.length === 0) {
      this.lastGood = r.desired;
      return { desired: r.desired };
    }
    const first = r.errors[0];
    const missing = r.errors.length === 1 && first!.line === 0 && first!.message === 'the config directory does not exist';
    const what = first ? errorHeadline(first) : 'no desired state';
    const more = r.errors.length > 1 ? ` (+${r.errors.length - 1} more)` : '';
    if (!this.lastGood) {
      // as `xvbd status`: the observed host (xvbd's backends, loop devices, the findings that need no
      // desired state) with the config's trouble on top; nothing planned, so nothing to apply
      const head = missing ? `config directory ${this.configDir} is missing` : `config ${this.configDir} is invalid: ${what}${more}`;
      return { desired: undefined, warning: `showing the observed host only: ${head}` };
    }
    return { desired: this.lastGood, warning: `config ${missing ? 'directory missing' : 'invalid'}, showing the last good one: ${what}${more}` };
  }

  async load(opts: { force?: boolean } = {}): Promise<Observation> {
    const t0 = performance.now();
    const { desired, warning } = await this.desired(opts.force ?? false);
    const xs = await this.client();
    let snap: Snapshot;
    try {
      snap = await snapshot({
        configDir: this.configDir,
        xs,
        ...(desired ? { desired } : {}),
        // no good config yet: observe dom0's backends and the loop devices anyway
        observeOnConfigError: true,
        // Plain pipelined reads, not one transaction: the screen is display only (apply observes
        // again, consistently, under the lock), a torn read is corrected by the next refresh that
        // the same change triggers, and at 1,000 backends plain reads took ~135 ms against
        // ~500 ms in a transaction (simulator, measured 2026-11-25).
        transaction: false,
        ...(this.o.xenBackendSysfs !== undefined ? { xenBackendSysfs: this.o.xenBackendSysfs } : {}),
      });
    } catch (err) {
      // A broken connection (xenstored restarted, the simulator went away): reconnect next time.
      this.xs = undefined;
      await xs.close().catch(() => undefined);
      throw err;
    }
    if (!snap.observed) throw new Error('no observation');
    const plan = desired ? snap.plan : observedOnlyPlan(snap.observed);
    if (!plan) throw new Error('no plan');
    const o: Observation = { desired: desired ?? NOTHING_DESIRED, observed: snap.observed, plan, observedAt: Date.now(), observeMs: performance.now() - t0 };
    if (warning !== undefined) o.warning = warning;
    if (this.o.controlSocket !== false) o.daemon = await readDaemon(this.o.controlSocket);
    // what `apply --prune` would do: the same observation, the policy with prune (never allowDataLoss)
    if (desired && snap.policy) o.prunePlan = snap.policy.prune ? plan : makePlan(desired, snap.observed, { ...snap.policy, prune: true, allowDataLoss: false });
    return o;
  }

  subscribe(onChange: (why: string) => void): () => Promise<void> {
    this.onChange = onChange;
    const watcher: FSWatcher = chokidarWatch(this.configDir, {
      ignoreInitial: true,
      depth: 0,
      ignored: (p: string, st?: { isFile(): boolean }) => Boolean(st?.isFile()) && !/\.ya?ml$/.test(p),
    });
    const onCfg = (p: string) => {
      if (/\.ya?ml$/.test(p)) onChange('config');
    };
    watcher.on('add', onCfg).on('change', onCfg).on('unlink', onCfg);
    watcher.on('error', () => undefined);
    void this.connectWatches();
    return async () => {
      this.onChange = undefined;
      await watcher.close().catch(() => undefined);
    };
  }

  private async connectWatches(): Promise<void> {
    if (this.closed) return;
    let xs: XsClient;
    try {
      xs = await connect(this.o.socket !== undefined ? { path: this.o.socket } : {});
    } catch {
      setTimeout(() => void this.connectWatches(), 2000).unref();
      return;
    }
    if (this.closed) {
      await xs.close().catch(() => undefined);
      return;
    }
    this.watchXs = xs;
    this.watchedBackends.clear();
    this.watchedFrontends.clear();
    try {
      await xs.watch('@introduceDomain', DOMAIN_TOKEN);
      await xs.watch('@releaseDomain', DOMAIN_TOKEN);
      await this.watchBackend(0);
    } catch {
      // the event loop below ends when the connection fails
    }
    void (async () => {
      try {
        for await (const ev of xs.events()) {
          if (ev.token === DOMAIN_TOKEN || ev.token.startsWith(BACKEND_TOKEN) || ev.token === FRONTEND_TOKEN) this.onChange?.(`xenstore ${ev.path}`);
        }
      } catch {
        // connection ended
      }
      if (!this.closed && this.watchXs === xs) {
        this.watchXs = undefined;
        setTimeout(() => void this.connectWatches(), 1000).unref();
      }
    })();
  }

  private async watchBackend(be: number): Promise<void> {
    const xs = this.watchXs;
    if (!xs || this.watchedBackends.has(be)) return;
    this.watchedBackends.add(be);
    await xs.watch(`/local/domain/${be}/backend/vbd`, `${BACKEND_TOKEN}-${be}`);
    await xs.watch(`/local/domain/${be}/error/backend/vbd`, `${BACKEND_TOKEN}-${be}`);
  }

  /** After each load: watch every backend domain desired and every frontend state node seen. */
  observed(o: Observation): void {
    const xs = this.watchXs;
    if (!xs) return;
    void (async () => {
      try {
        for (const d of o.desired.domains) for (const k of d.disks) await this.watchBackend(k.backendDomid);
        const want = new Set<string>();
        for (const b of o.observed.backends) {
          // Only well-formed frontend paths (the guest cannot write them; libxl or we did).
          if (b.frontendPath && /^\/local\/domain\/\d+\/device\/vbd\/\d+$/.test(b.frontendPath)) want.add(`${b.frontendPath}/state`);
        }
        // Issued all at once: the client pipelines them (1,000 watches are a few round trips).
        const add = [...want].filter((p) => !this.watchedFrontends.has(p));
        const drop = [...this.watchedFrontends].filter((p) => !want.has(p));
        for (const p of add) this.watchedFrontends.add(p);
        for (const p of drop) this.watchedFrontends.delete(p);
        await Promise.all([
          ...add.map((p) => xs.watch(p, FRONTEND_TOKEN).catch(() => this.watchedFrontends.delete(p))),
          ...drop.map((p) => xs.unwatch(p, FRONTEND_TOKEN).catch(() => undefined)),
        ]);
      } catch {
        // the watch connection failed: it reconnects by itself
      }
    })();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.onChange = undefined;
    const a = this.xs;
    const b = this.watchXs;
    this.xs = undefined;
    this.watchXs = undefined;
    await Promise.all([a?.close(), b?.close()].map((p) => p?.catch(() => undefined)));
  }
}
