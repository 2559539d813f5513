// `xvbd reconcile --watch`: the long-running daemon. Wires the reconcile loop to its triggers
// (chokidar on the config dir, xenstore watches on the backend trees and @introduceDomain /
// @releaseDomain, a periodic resync, SIGHUP), to systemd (READY, STATUS, WATCHDOG, STOPPING, the fd
// store, LISTEN_FDS) and to the control socket. Stopping never detaches anything: the fds go to the
// keeper (and stay in systemd's fd store), so every backend stays served.
import { frontendDomids } from './frontends.js';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { existsSync, openSync, constants as fsc } from 'node:fs';
import { dirname } from 'node:path';
import type { XsClient } from '../xenstore/api.js';
import type { LoopRegistry } from '../linux/registry.js';
import { sysClose } from '../linux/ffi.js';
import type { PeerCred } from '../linux/socket.js';
import { ControlError, ControlServer, type ControlRequest } from '../ipc/control.js';
import { DaemonEngine, type EngineDeps } from './engine.js';
import { defaultHostName } from '../config/index.js';
import { MetricsWriter } from './metrics.js';
import { VERSION } from '../version.js';
import { FdStore, FdStoreHolder } from '../hold/fdstore.js';
import { durableHoldings } from '../hold/holdings.js';
import { withKeptBy } from '../observe/holders.js';
import { KeeperHolder } from '../hold/holder.js';
import { KEEPER_SLOTS } from '../plan/holding.js';
import { StoreAwareDevices } from './devices.js';
import { Reconciler, type PassOutcome } from './reconciler.js';
import { listenFds, Notifier, watchdogIntervalMs } from '../ipc/systemd.js';
import { dropFromKeepers, keeperLists, keeperSocketPath } from '../hold/keeper-client.js';
import { backendPath, parseBackendArg } from '../xen/vbd.js';
import { letGo } from '../plan/letgo.js';
import { HookServer, targetOf } from '../hook/hook-serve.js';
import { mountedDevices } from '../linux/index.js';
import type { LogFn } from '../log/stdio.js';
import { XenstoreCache, dirtOf, drift, frontendWatchPath } from '../observe/cache.js';
import type { XenstoreReader } from '../observe/observe.js';
import { LoopCache, type Mounts } from '../observe/loop-cache.js';
import { SourceCache } from '../observe/source-cache.js';
import { listLoops, LoopUevents } from '../linux/index.js';
import type { CachedReaders } from '../observe/readers.js';


export interface DaemonOptions extends Omit<EngineDeps, 'fdStore' | 'log'> {
  runDir: string;
  controlPath: string;
  /** Periodic resync (ms); 0 = none. */
  resyncMs: number;
  /** Debounce of triggers (ms). */
  debounceMs?: number;
  backoffMaxMs?: number;
  log?: LogFn;
  /** Watchdog: stop pinging when a pass runs longer than this (ms; default max(120 s, 2 x WatchdogSec)). */
  passStuckMs?: number;
  /** Hand the held fds to the keeper on stop (default true). */
  handoffOnStop?: boolean;
  /** Write the Prometheus textfile (src/daemon/metrics.ts) here after every pass. */
  metricsFile?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Keep the xenstore half of the observation in a cache kept true by the watches (src/observe/cache.ts;
   * default true, `XVBD_OBSERVE_CACHE=0` turns it off: every pass reads everything).
   */
  observeCache?: boolean;
}

function stamp(): string {
  return new Date().toISOString();
}

export class Daemon {
  readonly notifier: Notifier;
  readonly fdStore: FdStore;
  readonly engine: DaemonEngine;
  readonly reconciler: Reconciler;
  private control: ControlServer | undefined;
  private watcher: FSWatcher | undefined;
  private xsWatch: XsClient | undefined;
  private timers: NodeJS.Timeout[] = [];
  private stopping: Promise<void> | undefined;
  private readonly log: LogFn;
  private watchedBackends = new Set<number>();
  private readonly initialFirings = new Map<string, number>();
  readonly registry: LoopRegistry;
  private startedGate: Promise<void> = Promise.resolve();
  private readonly metrics: MetricsWriter | undefined;
  /** The xenstore half of the observation between passes (undefined: every pass reads everything). */
  readonly cache: XenstoreCache | undefined;
  /** The next refresh also reads everything and logs what the cache had wrong (the periodic resync). */
  private verifyCache = false;
  /** Frontend domains whose device/vbd is watched, on the current watch connection. */
  private watchedFrontends = new Set<number>();
  /** Without the cache: the frontend domains of the last pass's backends (src/daemon/frontends.ts). */
  private seenFrontends: number[] = [];
  /** The loop-device half between passes, kept true by the kernel's uevents. */
  private loopCache: LoopCache | undefined;
  private loopUevents: LoopUevents | undefined;
  /** The sources between passes, kept true by inotify on their directories. */
  private readonly sourceCache = new SourceCache();

  constructor(private readonly o: DaemonOptions) {
    this.log = o.log ?? ((l) => process.stderr.write(`${stamp()} ${l}\n`));
    this.cache = (o.observeCache ?? (o.env ?? process.env).XVBD_OBSERVE_CACHE !== '0') ? new XenstoreCache() : undefined;
    if (this.cache) this.loopCache = this.makeLoopCache(o.registry);
    const reader: CachedReaders | undefined = this.cache
      ? {
          xenstore: this.cachedReader(this.cache),
          sources: (paths, loops, mountedDevs) => this.sourceCache.observe(paths, loops, mountedDevs),
          ...(this.loopCache ? { loops: (m: Mounts) => this.loopCache!.list(m) } : {}),
        }
      : undefined;
    this.registry = o.registry;
    this.notifier = new Notifier(o.env ? { env: o.env } : {});
    this.fdStore = new FdStore(this.notifier, o.registry, this.log);
    this.engine = new DaemonEngine({
      ...o,
      // who durably holds each device: the keepers, and our own fd store
      observe: async (xs, desired) => {
        const [observed, holdings] = await Promise.all([o.observe(xs, desired, reader), durableHoldings(o.runDir, { parked: this.fdStore.parkedDiskseqs })]);
        return withKeptBy(observed, holdings);
      },
      devices: new StoreAwareDevices(o.devices, o.registry, this.fdStore),
      fdStore: this.fdStore,
      // Before a commit names a device, a holder that outlives this process has it: PID 1's fd store, or
      // both keepers (docs/fd-holding.md). The registry keeps its own fd as well.
      holder: o.holder ?? (this.fdStore.enabled ? new FdStoreHolder(this.fdStore) : new KeeperHolder(o.runDir, { keepOwn: true })),
      log: this.log,
      // Under systemd, what a one-shot `xvbd apply` (or the hook without us) gave the keepers meanwhile
      // moves to the fd store. Without it the keepers stay the holders: nothing to take over.
      beforeSweep: async () => {
        if (this.fdStore.enabled && KEEPER_SLOTS.some((s) => existsSync(keeperSocketPath(o.runDir, s)))) await this.takeOverFromKeepers();
      },
    });
    this.reconciler = new Reconciler(this.engine, {
      log: this.log,
      debounceMs: o.debounceMs ?? 200,
      maxDelayMs: 2_000,
      backoffBaseMs: 1_000,
      backoffMaxMs: o.backoffMaxMs ?? 60_000,
    });
    if (o.metricsFile !== undefined) {
      this.metrics = new MetricsWriter(o.metricsFile, { host: (o.host ?? defaultHostName()).toLowerCase(), configDir: o.configDir, version: VERSION }, this.log);
    }
    this.reconciler.onPass((p) => this.afterPass(p));
  }

  /** Takes back fds (systemd's fd store, the keeper), listens, watches, runs the first pass, READY=1. */
  async start(): Promise<void> {
    const env = this.o.env ?? process.env;
    // The control socket first: if another daemon runs, stop here, before touching any fd or the keeper.
    // Requests wait (startedGate) until the fds are taken back.
    let open!: () => void;
    this.startedGate = new Promise<void>((r) => (open = r));
    this.control = await ControlServer.listen((req, peer) => this.handle(req, peer), { path: this.o.controlPath, log: this.log });
    try {
      await this.takeBack(env);
    } finally {
      open();
    }
    await this.startTriggers();
    const first = await this.reconciler.trigger('start', { urgent: true }).catch((e: Error) => {
      this.log(`first pass failed: ${e.message}`, 'err');
      return undefined;
    });
    await this.notifier.ready(first ? statusLine(first) : 'running').catch((e: Error) => this.log(`sd_notify: ${e.message}`));
    const wd = watchdogIntervalMs(env);
    if (wd) {
      this.log(`watchdog: pinging every ${Math.round(wd / 2)} ms`);
      // Alive = the event loop runs AND no pass is stuck: a pass hung longer than stuckMs (an xenstore
      // call that never returns...) stops the pings, systemd kills and restarts us, and the fd store
      // keeps every device alive across that.
      const stuckMs = this.o.passStuckMs ?? Math.max(120_000, wd * 2);
      let warned = false;
      this.timers.push(
        setInterval(() => {
          if (this.reconciler.passRunningMs() > stuckMs) {
            if (!warned) this.log(`watchdog: a pass has run for more than ${stuckMs} ms; no more pings`, 'warning');
            warned = true;
            return;
          }
          warned = false;
          void this.notifier.watchdog().catch(() => undefined);
        }, Math.max(100, Math.floor(wd / 2))),
      );
    }
  }

  /** The fds systemd hands back (LISTEN_FDS), then those a keeper holds. */
  private async takeBack(env: NodeJS.ProcessEnv): Promise<void> {
    const lf = listenFds(env);
    if (lf.fds.length > 0) {
      const r = await this.fdStore.adoptListenFds(lf.fds);
      this.log(`fd store: took back ${r.adopted.length} loop fd(s) from systemd${r.adopted.length ? ` (${r.adopted.map((a) => `${a.name}@${a.diskseq}`).join(', ')})` : ''}`);
      for (const x of r.refused) this.log(`fd store: refused fd ${x.fd} "${x.fdName}": ${x.reason}`, 'warning');
    }
    await this.takeOverFromKeepers();
  }

  /**
   * Under systemd: fds the keepers hold (from an `apply` or hook while no daemon ran) move to the daemon
   * and its fd store. Each is parked (and the manager has it) before the keepers are asked to let go.
   */
  private async takeOverFromKeepers(): Promise<void> {
    if (!this.fdStore.enabled) return;
    const moved = new Set<string>();
    const drops: Promise<unknown>[] = [];
    for (const k of await keeperLists(this.o.runDir)) {
      for (const h of k.held) {
        if (!h.live || !h.diskseq) continue;
        const key = `${h.backend}\0${h.diskseq}`;
        if (moved.has(key)) continue;
        let fd: number;
        try {
          // The keeper's fd pins the device: this open reaches the very same device.
          fd = openSync(`/proc/${k.pid}/fd/${h.fd}`, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
        } catch (err) {
          this.log(`keeper ${k.slot}: cannot reopen its fd for ${h.backend}: ${(err as Error).message}`, 'warning');
          continue;
        }
        try {
          const got = this.registry.adopt(fd, [h.backend]);
          if (got.diskseq !== h.diskseq) {
            this.registry.release(h.backend);
            this.log(`keeper ${k.slot}: fd for ${h.backend} is diskseq ${got.diskseq}, not ${h.diskseq}; left with the keepers`, 'warning');
            continue;
          }
          await this.fdStore.park(got.diskseq, got.fd);
        } catch (err) {
          this.log(`keeper ${k.slot}: fd for ${h.backend} not taken over: ${(err as Error).message}`, 'warning');
          if (!this.registry.heldDiskseqs().has(h.diskseq)) sysClose(fd); // refused before adopt: still ours
          continue;
        }
        moved.add(key);
        drops.push(dropFromKeepers(this.o.runDir, h.backend, h.diskseq));
      }
    }
    const rs = await Promise.allSettled(drops);
    const failed = rs.filter((r) => r.status === 'rejected').length;
    if (moved.size > 0) this.log(`keepers: took over ${moved.size} fd(s) into the fd store${failed ? ` (${failed} drops failed: the keepers still hold those too)` : ''}`);
  }

  private async startTriggers(): Promise<void> {
    this.watchConfig();

    // xenstore: a connection of its own, so its events() are only the triggers.
    await this.connectWatches();

    if (this.o.resyncMs > 0) {
      this.timers.push(
        setInterval(() => {
          this.verifyCache = true;
          this.loopCache?.invalidate();
          this.sourceCache.invalidate();
          void this.reconciler.trigger('resync').catch(() => undefined);
        }, this.o.resyncMs),
      );
    }
    process.on('SIGHUP', this.onHup);
  }

  /** What the config watcher currently watches: the dir itself, its parent (waiting for it), or nothing. */
  private configWatchMode: 'dir' | 'parent' | 'none' | undefined;

  /**
   * Config dir: any change of a *.yaml / *.yml (editors' atomic renames included). A directory that
   * does not exist (yet, or any more: `rm -rf` + `git clone`) is waited for by watching its parent.
   * Called again whenever the dir may have appeared or gone (watch events, after every pass): it
   * switches only when the mode is wrong, and a switch re-checks, so no race loses the dir.
   */
  private watchConfig(): void {
    if (this.stopping) return;
    const dir = this.o.configDir;
    const parent = dirname(dir);
    const want = existsSync(dir) ? 'dir' : existsSync(parent) ? 'parent' : 'none';
    if (want === this.configWatchMode) return;
    const was = this.configWatchMode;
    this.configWatchMode = want;
    const old = this.watcher;
    this.watcher = undefined;
    void old?.close().catch(() => undefined);
    // chokidar reports a file once it stopped changing (awaitWriteFinish): no long quiet time needed after it
    const trigger = () => void this.reconciler.trigger('config', { skipBackoff: true, debounceMs: CONFIG_DEBOUNCE_MS }).catch(() => undefined);
    if (was !== undefined) {
      this.log(want === 'dir' ? `config watch: ${dir} appeared` : `config watch: ${dir} is gone; waiting for it to come back`, want === 'dir' ? 'notice' : 'warning');
      trigger();
    }
    if (want === 'none') {
      this.log(`config watch: neither ${dir} nor ${parent} exists; only the periodic resync and SIGHUP will see it appear`, 'warning');
      return;
    }
    let w: FSWatcher;
    if (want === 'dir') {
      w = chokidarWatch(dir, {
        ignoreInitial: true,
        depth: 0,
        // An editor writing in place: wait until the file stops changing (a pass never plans from half a
        // file because of this event; writing by rename, as git and most editors do, is atomic anyway).
        awaitWriteFinish: { stabilityThreshold: 40, pollInterval: 10 },
        ignored: (p: string, st?: { isFile(): boolean }) => Boolean(st?.isFile()) && !/\.ya?ml$/.test(p),
      });
      const onCfg = (p: string) => {
        if (/\.ya?ml$/.test(p)) trigger();
        if (!existsSync(dir)) this.watchConfig();
      };
      w.on('add', onCfg).on('change', onCfg).on('unlink', onCfg).on('unlinkDir', onCfg);
    } else {
      w = chokidarWatch(parent, { ignoreInitial: true, depth: 0, ignored: (p: string) => p !== parent && p !== dir });
      w.on('addDir', () => this.watchConfig());
    }
    w.on('error', (e) => this.log(`config watch: ${(e as Error).message}`, 'warning'));
    this.watcher = w;
    // It may have changed while the watcher was being set up.
    w.on('ready', () => this.watchConfig());
  }

  private onHup = () => {
    this.log('SIGHUP: pass now');
    void this.reconciler.trigger('SIGHUP', { urgent: true }).catch(() => undefined);
  };

  /** Connects the watch connection; never throws: on failure it retries in a few seconds. */
  private async connectWatches(): Promise<boolean> {
    if (this.stopping) return false;
    let xs: XsClient | undefined;
    try {
      xs = await this.o.connect();
      this.xsWatch = xs;
      this.watchedBackends.clear();
      this.watchedFrontends.clear();
      this.initialFirings.clear();
      await this.watch(xs, '@introduceDomain', 'xvbd-domain');
      await this.watch(xs, '@releaseDomain', 'xvbd-domain');
      await this.watchBackends();
      // What changed while no watch looked (before the first connection, or while it was lost) is
      // unknown: the next pass reads everything.
      this.cache?.invalidate();
    } catch (err) {
      this.log(`xenstore watches: cannot set up (${(err as Error).message}); retrying in 5 s`, 'warning');
      if (xs && this.xsWatch === xs) this.xsWatch = undefined;
      await xs?.close().catch(() => undefined);
      this.timers.push(setTimeout(() => void this.reconnectWatches(), 5_000));
      return false;
    }
    const conn = xs;
    void (async () => {
      try {
        for await (const ev of conn.events()) {
          // xenstored fires every watch once when it is set: that says nothing changed.
          const k = `${ev.token}\0${ev.path}`;
          const n = this.initialFirings.get(k) ?? 0;
          if (n > 0) {
            if (n === 1) this.initialFirings.delete(k);
            else this.initialFirings.set(k, n - 1);
            continue;
          }
          if (ev.token === 'xvbd-domain') {
            this.cache?.mark(dirtOf(ev.path));
            void this.reconciler.trigger(ev.path === '@introduceDomain' ? 'domain introduced' : 'domain released').catch(() => undefined);
          } else if (ev.token.startsWith('xvbd-vbd-') || ev.token.startsWith('xvbd-err-')) {
            this.cache?.mark(dirtOf(ev.path));
            void this.reconciler.trigger('xenstore').catch(() => undefined);
          } else if (ev.token.startsWith('xvbd-fe-')) {
            // A frontend's change usually reaches dom0 through blkback changing the backend's state, which
            // fires its own watch; but a guest that removes its frontend dir changes nothing there (blkback
            // just unregisters), and only a pass sees that it needs a reprobe (src/plan/reprobe.ts). A guest
            // writing in a loop costs coalesced passes, each of which reads only what it dirtied.
            this.cache?.mark(dirtOf(ev.path));
            void this.reconciler.trigger('frontend').catch(() => undefined);
          } else {
            // not ours to place: the cache cannot say what it changed
            this.cache?.invalidate();
          }
        }
      } catch {
        // connection ended
      }
      if (!this.stopping && this.xsWatch === conn) {
        this.log('xenstore watches: connection lost; reconnecting in 1 s', 'warning');
        this.xsWatch = undefined;
        this.timers.push(setTimeout(() => void this.reconnectWatches(), 1_000));
      }
    })();
    return true;
  }

  /** Sets a watch, expecting (and later skipping) the initial firing xenstored sends for it. */
  private async watch(xs: XsClient, path: string, token: string): Promise<void> {
    const k = `${token}\0${path}`;
    this.initialFirings.set(k, (this.initialFirings.get(k) ?? 0) + 1);
    await xs.watch(path, token);
  }

  /** After a loss: watches again, then a pass (what happened meanwhile was not seen). */
  private async reconnectWatches(): Promise<void> {
    if (await this.connectWatches()) void this.reconciler.trigger('xenstore reconnected').catch(() => undefined);
  }

  /** Watches /local/domain/<be>/backend/vbd for every backend domain the desired state names. */
  private async watchBackends(): Promise<void> {
    const xs = this.xsWatch;
    if (!xs) return;
    const want = new Set<number>([0]);
    for (const d of this.reconciler.desired?.domains ?? []) for (const k of d.disks) want.add(k.backendDomid);
    for (const be of want) {
      if (this.watchedBackends.has(be)) continue;
      try {
        await this.watch(xs, `/local/domain/${be}/backend/vbd`, `xvbd-vbd-${be}`);
        // blkback's error nodes, for the cache (they come with a backend state change anyway)
        if (this.cache) await this.watch(xs, `/local/domain/${be}/error`, `xvbd-err-${be}`);
        this.watchedBackends.add(be);
      } catch (err) {
        this.log(`xenstore watch on backend domain ${be}: ${(err as Error).message}`, 'warning');
        // a backend domain without its watch: the cache cannot be trusted for it
        this.cache?.invalidate();
      }
    }
    await this.watchFrontends(xs);
  }

  /**
   * The frontends' states (the guest writes them): one watch per frontend domain with backends, for the
   * cache and as a trigger (a guest that recreates its frontend, src/plan/reprobe.ts). Its first firing
   * is not skipped: it stands for whatever changed before the watch was set (since the read that found
   * the frontend), and makes the next pass read those backends again.
   */
  private async watchFrontends(xs: XsClient): Promise<void> {
    for (const fe of this.cache?.frontendDomids() ?? this.seenFrontends) {
      if (this.watchedFrontends.has(fe)) continue;
      // tried once per connection: refused (a watch quota), its backends are read at every pass instead
      this.watchedFrontends.add(fe);
      try {
        await xs.watch(frontendWatchPath(fe), `xvbd-fe-${fe}`);
        this.cache?.setFrontendWatched(fe, true);
      } catch (err) {
        this.cache?.setFrontendWatched(fe, false);
        this.log(`xenstore watch on the frontends of domain ${fe}: ${(err as Error).message}; its backends are read at every pass`, 'warning');
      }
    }
  }

  /** The loop cache, or none where uevents cannot be had (then every pass lists every device). */
  private makeLoopCache(registry: LoopRegistry): LoopCache | undefined {
    try {
      this.loopUevents = new LoopUevents();
    } catch (err) {
      this.log(`loop uevents unavailable (${(err as Error).message}): every pass looks at every loop device`, 'warning');
      return undefined;
    }
    const ev = this.loopUevents;
    return new LoopCache({
      all: (mounts) => registry.listLoops({ mounts }),
      some: (names, mounts) => listLoops({ names, mounts, held: registry.heldDiskseqs() }),
      changes: () => ev.drain(),
      held: () => registry.heldDiskseqs(),
    });
  }

  /** The cache's reader, with the periodic resync's check of the cache against a full read. */
  private cachedReader(cache: XenstoreCache): XenstoreReader {
    return async (xs, backendDomids, sysfs) => {
      if (this.verifyCache && !cache.fullPending) {
        this.verifyCache = false;
        const cached = await cache.refresh(xs, backendDomids, sysfs, existsSync);
        cache.invalidate();
        const full = await cache.refresh(xs, backendDomids, sysfs, existsSync);
        const d = drift(cached, full);
        if (d) this.log(`observation cache: a full read differed from the cache (a missed event?): ${d}; the pass uses the full read`, 'warning');
        return full;
      }
      this.verifyCache = false;
      return cache.refresh(xs, backendDomids, sysfs, existsSync);
    };
  }

  /** The last EVENTS_KEPT passes and hook requests, in the order they finished (the control socket's `events`). */
  private readonly events: DaemonEvent[] = [];

  private record(e: DaemonEvent): void {
    this.events.push(e);
    if (this.events.length > EVENTS_KEPT) this.events.splice(0, this.events.length - EVENTS_KEPT);
  }

  private afterPass(p: PassOutcome): void {
    // a pass that failed midway may have changed what it could not report
    if (!p.ok) {
      this.cache?.invalidate();
      this.loopCache?.invalidate();
      this.sourceCache.invalidate();
    }
    this.record({
      at: p.startedAt,
      kind: 'pass',
      seq: p.seq,
      ok: p.ok,
      summary: p.summary,
      durationMs: p.durationMs,
      steps: p.steps.map((st) => ({ kind: st.kind, target: st.target, ...(st.label !== undefined ? { label: st.label } : {}), ok: st.ok, ...(st.error !== undefined ? { error: st.error } : {}) })),
    });
    this.metrics?.afterPass(p, { passes: p.seq, loopsHeld: this.registry.fds().length });
    void this.notifier.status(statusLine(p)).catch(() => undefined);
    this.watchConfig();
    if (p.observed) this.seenFrontends = frontendDomids(p.observed);
    void this.watchBackends().catch(() => undefined);
  }

  private async handle(req: ControlRequest, _peer: PeerCred | undefined): Promise<Record<string, unknown>> {
    if (req.op !== 'ping') await this.startedGate;
    switch (req.op) {
      case 'ping':
        return { pid: process.pid, passes: this.reconciler.queue.stats.passes, finished: this.reconciler.queue.stats.finished, config: this.o.configDir };
      case 'status': {
        const last = this.reconciler.last;
        return {
          pid: process.pid,
          stats: this.reconciler.queue.stats,
          failures: this.reconciler.queue.failures,
          configValid: last?.configOk ?? null,
          last: last ? outcomeJson(last) : null,
          held: this.registry.fds().map((f) => ({ name: f.name, diskseq: f.diskseq, users: f.users })),
          parked: this.fdStore.parkedDiskseqs,
          // bytes (process.memoryUsage()): the RSS and what of it is V8's heap
          memory: process.memoryUsage(),
          cache: this.cache ? { xenstore: this.cache.last, loops: this.loopCache?.last ?? null, sources: this.sourceCache.last } : null,
        };
      }
      case 'reconcile': {
        if (typeof req.config === 'string' && req.config !== this.o.configDir) {
          throw new ControlError(`the daemon reconciles ${this.o.configDir}, not ${req.config.slice(0, 200)} (use --local to run that config here)`);
        }
        if (typeof req.host === 'string' && req.host.toLowerCase() !== (this.o.host ?? defaultHostName()).toLowerCase()) {
          throw new ControlError(`the daemon reconciles host ${this.o.host ?? defaultHostName()}, not ${req.host.slice(0, 200)} (use --local to run that host's config here)`);
        }
        const o = await this.reconciler.trigger(`control (${String(req.reason ?? 'request').slice(0, 40)})`, { urgent: true });
        return { pass: outcomeJson(o) };
      }
      case 'events': {
        // read-only: the last passes and hook requests, oldest first (at most `n`)
        const n = req.n === undefined ? EVENTS_KEPT : req.n;
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new ControlError(`events: n must be a positive integer, got ${JSON.stringify(n)?.slice(0, 40)}`);
        return { kept: EVENTS_KEPT, events: this.events.slice(-Math.min(n, EVENTS_KEPT)) };
      }
      case 'serve':
        return this.recorded('hook-serve', req, () => this.serve(req));
      case 'release':
        return this.recorded('hook-release', req, () => this.release(req));
      default:
        throw new ControlError(`unknown op "${req.op}" (ping, status, events, reconcile, serve, release)`);
    }
  }

  /** Runs a hook request and records it as an event (its answer or its error). */
  private async recorded(kind: 'hook-serve' | 'hook-release', req: ControlRequest, fn: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>> {
    const at = new Date().toISOString();
    const backend = typeof req.backend === 'string' ? req.backend.slice(0, 200) : String(req.backend);
    try {
      const r = await fn();
      const detail = kind === 'hook-serve' ? `physical-device ${String(r.physicalDevice)}` : r.released ? `released ${String(r.device)}` : 'nothing held';
      this.record({ at, kind, backend, ok: true, summary: detail });
      return r;
    } catch (err) {
      this.record({ at, kind, backend, ok: false, summary: (err as Error).message.split('\n')[0]!.slice(0, 300) });
      throw err;
    }
  }

  /**
   * The hook asks: serve this backend now. Not a pass: a batch of the hook requests in flight (src/hook/
   * hook-serve.ts) observes those backends afresh, plans, and runs only their serve steps through this
   * engine's executor (its holder, its devices, the apply lock), between passes. The answer comes once
   * physical-device is written and the device held, or says why not (hotplug-error written).
   */
  private async serve(req: ControlRequest): Promise<Record<string, unknown>> {
    let t;
    try {
      t = targetOf(req.backend);
    } catch (err) {
      throw new ControlError((err as Error).message);
    }
    const a = await this.hookServer.serve(t);
    if (!a.ok) throw new ControlError(a.error);
    return { served: true, backend: t.path, physicalDevice: a.physicalDevice, detail: a.detail };
  }

  private readonly hookServer = new HookServer({
    client: () => this.engine.client(),
    desired: async () => {
      const r = await this.engine.loadDesired();
      return r.desired ? { desired: r.desired } : { error: `the xvbd configuration in ${this.o.configDir} is invalid (${r.errorCount} error(s)): ${(r.errorText ?? '').split('\n')[0]}` };
    },
    loops: () => {
      const mounts = mountedDevices();
      return { loops: this.registry.listLoops({ mounts }), mountedDevs: mounts.devs };
    },
    execute: async (plan, desired) => {
      const r = await this.engine.execute(plan, desired);
      // what was served goes to systemd's fd store before the hooks hear about it
      await this.fdStore.sync().catch((e: Error) => this.log(`fd store: ${e.message}`, 'err'));
      return r.steps;
    },
    exclusive: (fn) => this.reconciler.exclusive(fn),
    log: (l) => this.log(`hook: ${l}`),
  });

  /** The hook's `remove`: the backend is going away; let go of its fd now. */
  private async release(req: ControlRequest): Promise<Record<string, unknown>> {
    const path = backendArg(req);
    return this.reconciler.exclusive(async () => {
      // libxl runs the hook's remove before it removes the dirs: the giver's word (src/plan/letgo.ts)
      if (letGo({ of: 'giver-drop' }).keep) return { released: false, closed: false, device: null };
      const r = this.registry.release(path);
      await this.fdStore.sync().catch(() => undefined);
      // without systemd's fd store the keepers hold our devices too (see the engine's holder): they let go now
      const dropped = await dropFromKeepers(this.o.runDir, path).catch((e: Error) => {
        this.log(`hook release ${path}: keepers: ${e.message}`, 'warning');
        return 0;
      });
      return { released: r !== undefined || dropped > 0, closed: r?.closed ?? false, device: r?.handle.name ?? null };
    });
  }

  /**
   * Stops: STOPPING=1, no new pass, the running one finishes; triggers and the control socket close.
   * Nothing is detached: held fds go to the keeper (and stay parked in systemd's store) and are closed here.
   */
  stop(reason = 'stop'): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop(reason);
    return this.stopping;
  }

  private async doStop(reason: string): Promise<void> {
    this.log(`stopping (${reason}); backends stay served`, 'notice');
    await this.notifier.stopping(`stopping (${reason})`).catch(() => undefined);
    process.off('SIGHUP', this.onHup);
    for (const t of this.timers) clearTimeout(t);
    await this.watcher?.close().catch(() => undefined);
    await this.reconciler.stop();
    await this.control?.close().catch(() => undefined);
    const xsw = this.xsWatch;
    this.xsWatch = undefined;
    await xsw?.close().catch(() => undefined);
    if (this.o.handoffOnStop !== false) await this.handOff();
    await this.engine.close();
    this.loopUevents?.close();
    this.sourceCache.close();
    this.registry.closeAll();
    this.notifier.close();
  }

  /**
   * Gives every held fd (one per backend using it) to both keepers, which hold it until the backend is
   * gone. Without an fd store they hold everything already (each commit waited for them): the adopts
   * find each device held and add nothing.
   */
  private async handOff(): Promise<void> {
    const fds = this.registry.fds().filter((f) => f.users.length > 0);
    if (fds.length === 0) return;
    const holder = new KeeperHolder(this.o.runDir, { keepOwn: true });
    try {
      const handles = new Map(this.registry.handles().map((h) => [h.diskseq, h]));
      const adopts = fds.flatMap((f) => {
        const h = handles.get(f.diskseq)!;
        return f.users.map((backend) =>
          holder.hold({ key: backend, kind: h.kind, major: h.major, minor: h.minor, devPath: h.devPath, diskseq: f.diskseq, fd: f.fd, shared: true }, backend),
        );
      });
      const rs = await Promise.allSettled(adopts);
      const failed = rs.filter((r) => r.status === 'rejected');
      this.log(`handed ${adopts.length - failed.length} fd(s) to the keepers` + (failed.length ? `; ${failed.length} failed (${String((failed[0] as PromiseRejectedResult).reason?.message)}): the fd store${this.notifier.enabled ? '' : ' (none: not under systemd)'} keeps what it has` : ''));
    } finally {
      holder.close();
    }
  }
}

function backendArg(req: ControlRequest): string {
  const raw = req.backend;
  if (typeof raw !== 'string' || raw.length > 256) throw new ControlError('"backend" must be a backend path');
  const id = parseBackendArg(raw);
  if (!id) throw new ControlError(`"${raw.slice(0, 80)}" is not a vbd backend path (backend/vbd/<domid>/<devid>)`);
  return backendPath(id);
}

export function statusLine(p: PassOutcome): string {
  if (p.error) return `pass ${p.seq} failed: ${p.error}`.slice(0, 200);
  const cfg = p.configOk ? '' : ' (config invalid: last good state)';
  const failed = p.steps.filter((s) => !s.ok).length;
  return `${p.synced}/${p.disks} disks synced, ${p.findings} findings${failed ? `, ${failed} steps failed` : ''}${cfg}; pass ${p.seq}`;
}

/** The quiet time after a config file change (ms), when --debounce is longer: a burst of files (a git pull) in one pass. */
export const CONFIG_DEBOUNCE_MS = 25;

/** How many events (passes, hook requests) the daemon keeps for the control socket's `events`. */
export const EVENTS_KEPT = 100;

/** One entry of the control socket's `events`: a pass, or a hook request (serve / release). */
export type DaemonEvent =
  | {
      at: string;
      kind: 'pass';
      seq: number;
      ok: boolean;
      summary: string;
      durationMs: number;
      steps: { kind: string; target: string; label?: string; ok: boolean; error?: string }[];
    }
  | { at: string; kind: 'hook-serve' | 'hook-release'; backend: string; ok: boolean; summary: string };

export function outcomeJson(o: PassOutcome): Record<string, unknown> {
  const { plan, observed, ...rest } = o;
  void observed;
  return { ...rest, steps: rest.steps.map(({ action, ...st }) => (void action, st)), planActions: plan?.actions.length ?? 0 };
}
