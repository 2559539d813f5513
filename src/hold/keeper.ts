// The keeper: a small detached process that holds loop-device fds for backends. Every run dir has two,
// slots a and b, that each hold every fd: givers hand each fd to both before their transaction commits,
// and each keeper restarts its twin when it dies and hands it everything it holds, so a kill -9 of any
// one process (a giver, a keeper, the daemon) never leaves a served device without a holder.
//
// Why: blkback drops its reference to the device whenever the frontend disconnects (and reopens it on
// reconnect). A loop device with autoclear is freed at its last close, so somebody in dom0 must keep an fd
// open for as long as the backend exists. A one-shot `xvbd apply` or the libxl hook exits; before it does,
// it hands each fd to the keeper (docs/fd-holding.md).
//
// How an fd moves without SCM_RIGHTS: the giver keeps its fd open and asks the keeper (line-delimited
// JSON on $XVBD_RUN_DIR/keeper.sock, a 0700 root-only dir) to `adopt` {pid, fd}; the keeper opens
// /proc/<pid>/fd/<fd> itself (a new open of the very same device inode: the giver's fd pins the device,
// so it cannot be freed or reused in between), checks it is a block device with the expected diskseq,
// and answers. Only then may the giver close its fd.
//
// When it lets go: each held fd belongs to one backend dir (path + diskseq). The keeper watches the path;
// while `<backend>/diskseq` equals the fd's diskseq the entry is live. When the dir goes away (detach,
// `xl block-detach`, domain destroy) or is rewritten for another device, the fd is closed: the device
// autoclears once blkback lets go too. An entry that never became live (the giver died before its
// transaction committed) is dropped after a grace period. With nothing held, the keeper exits.
import { chmodSync, closeSync, fstatSync, mkdirSync, open as fsOpen, openSync, readFileSync, rmSync, statSync, constants as fsc } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { XsClient } from '../xenstore/api.js';
import { DISKSEQ_NODE, isDecimalU64, parseBackendPath, parseU64 } from '../xen/vbd.js';
import { defaultPaths } from '../host/env.js';
import { ensureKeeper, keeperLockPath, keeperSocketPath, twinOf, type KeeperConnection } from './keeper-client.js';
import { serveJsonLines } from '../ipc/jsonlines.js';
import { devMajor, devMinor } from '../linux/devnum.js';
import { LOCK_EX, raiseNofileLimit, sysTryFlock } from '../linux/ffi.js';
import type { KeeperSlot } from '../plan/holding.js';
import { letGo, type BackendSeen } from '../plan/letgo.js';
import type { AdoptRequest, HeldEntry, HeldInfo, KeeperReply, KeeperRequest } from './keeper-protocol.js';


/** Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined if the process is gone. */
export function processStart(pid: number): string | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/**
 * After the giver of a pending entry died, its xenstore transaction can no longer commit once xenstored
 * has read what was left in its socket: wait this long, look at xenstore once more, then let go.
 */
export const GIVER_GONE_SETTLE_MS = 1000;

export const DEFAULT_GRACE_MS = 60_000;

/** How long a giver's drop keeps the twin's hand-over from bringing the same entry back. */
const TOMBSTONE_MS = 60_000;

/** The device's diskseq from sysfs, or undefined when the kernel gives none. */
export function sysfsDiskseq(major: number, minor: number): string | undefined {
  try {
    return parseU64(readFileSync(`/sys/dev/block/${major}:${minor}/diskseq`, 'utf8').trim());
  } catch {
    return undefined;
  }
}


export interface KeeperOptions {
  runDir: string;
  connectXs: () => Promise<XsClient>;
  /** Exit this long after the last fd was released (ms). */
  idleExitMs?: number;
  /**
   * Let go of everything and exit when xenstore has been unreachable this long (ms). Default: never
   * (on a real host xenstored comes back and the backends still need their devices). For throw-away
   * environments: the simulator of a test or of the demo that was killed.
   */
  xsLostExitMs?: number;
  log?: (line: string) => void;
}

/** The holding logic, independent of the socket (tests drive it directly). */
export class Keeper {
  readonly held = new Map<string, HeldEntry[]>();
  private xs: XsClient | undefined;
  private connecting: Promise<void> | undefined;
  private checks = new Set<string>();
  /** Backend paths watched on the current connection -> the node watched for it (see watchNode). */
  private watched = new Map<string, string>();
  private timers = new Map<string, NodeJS.Timeout>();
  private closed = false;
  private giverTimer: NodeJS.Timeout | undefined;
  /** When the xenstore connection was lost (undefined while connected). */
  xsLostAt: number | undefined;
  /** Whether a xenstore connection is up now. */
  get xsConnected(): boolean {
    return this.xs !== undefined;
  }
  onEmpty: () => void = () => {};
  onNonEmpty: () => void = () => {};

  constructor(
    private readonly connectXs: () => Promise<XsClient>,
    private readonly log: (line: string) => void = () => {},
  ) {}

  get size(): number {
    let n = 0;
    for (const l of this.held.values()) n += l.length;
    return n;
  }

  entries(): HeldEntry[] {
    return [...this.held.values()].flat();
  }

  list(): HeldInfo[] {
    const out: HeldInfo[] = [];
    for (const l of this.held.values()) {
      for (const e of l) out.push({ backend: e.backend, diskseq: e.diskseq, fd: e.fd, major: e.major, minor: e.minor, live: e.live });
    }
    return out;
  }

  /** Pending entries whose giver died: look again, and let go once the giver's transaction cannot commit. */
  private pollGivers(): void {
    const now = Date.now();
    for (const [backend, list] of this.held) {
      for (const e of list) {
        if (e.live) continue;
        const start = processStart(e.giverPid);
        const alive = start !== undefined && (e.giverStart === undefined || start === e.giverStart);
        if (alive) continue;
        e.giverGoneAt ??= now;
        if (now - e.giverGoneAt >= GIVER_GONE_SETTLE_MS) void this.check(backend);
      }
    }
  }

  private ensureGiverPoll(): void {
    if (this.giverTimer) return;
    this.giverTimer = setInterval(() => {
      const pending = [...this.held.values()].some((l) => l.some((e) => !e.live));
      if (!pending) {
        clearInterval(this.giverTimer);
        this.giverTimer = undefined;
        return;
      }
      this.pollGivers();
    }, 250);
  }

  /** Opens /proc/<pid>/fd/<fd>, verifies it, and holds it for `backend`. */
  async adopt(req: AdoptRequest): Promise<void> {
    if (!Number.isInteger(req.pid) || req.pid <= 0 || !Number.isInteger(req.fd) || req.fd < 0) {
      throw new Error('adopt: bad pid or fd');
    }
    if (typeof req.backend !== 'string' || !parseBackendPath(req.backend)) {
      throw new Error(`adopt: not a vbd backend path: ${JSON.stringify(req.backend)}`);
    }
    if (req.diskseq !== undefined && (typeof req.diskseq !== 'string' || !isDecimalU64(req.diskseq))) {
      throw new Error('adopt: bad diskseq');
    }
    if (req.twin) {
      if (this.droppedRecently(req.backend, req.diskseq)) throw new Error(`adopt: ${req.backend} was dropped by its giver`);
    } else {
      // a giver handing it over again (the hook's add after a remove): that is its word now
      this.droppedByGiver.delete(`${req.backend}\0${req.diskseq ?? ''}`);
      this.droppedByGiver.delete(`${req.backend}\0`);
    }
    // opened off the event loop: an open of a block device can wait in the kernel (disk open_mutex)
    // and the keeper must keep answering the others meanwhile
    const t0 = Date.now();
    // (a raw fd from fs.open, not a FileHandle: a FileHandle would close it when garbage-collected)
    const fd = await new Promise<number>((res, rej) =>
      fsOpen(`/proc/${req.pid}/fd/${req.fd}`, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY, (err, n) => (err ? rej(err) : res(n))),
    );
    const openMs = Date.now() - t0;
    if (openMs > 1000) this.log(`adopt ${req.backend}: opening the giver's fd took ${openMs} ms`);
    try {
      const st = fstatSync(fd, { bigint: true });
      if (!st.isBlockDevice()) throw new Error(`adopt: /proc/${req.pid}/fd/${req.fd} is not a block device`);
      const major = devMajor(st.rdev);
      const minor = devMinor(st.rdev);
      const seq = sysfsDiskseq(major, minor);
      if (req.diskseq !== undefined && seq !== req.diskseq) {
        throw new Error(`adopt: device ${major}:${minor} has diskseq ${seq ?? 'none'}, not ${req.diskseq}`);
      }
      // (again: the giver's drop may have come while the open was under way)
      if (req.twin && this.droppedRecently(req.backend, req.diskseq)) throw new Error(`adopt: ${req.backend} was dropped by its giver`);
      const grace = Math.min(Math.max(req.graceMs ?? DEFAULT_GRACE_MS, 0), 3_600_000);
      const list = this.held.get(req.backend) ?? [];
      // The same device for the same backend again (the twin handing over what a giver gave us both):
      // one fd is enough.
      const same = list.find((x) => x.diskseq === req.diskseq && x.major === major && x.minor === minor);
      if (same) {
        closeSync(fd);
        if (req.twin?.live) same.live = true;
        return;
      }
      const twin = req.twin;
      const e: HeldEntry = {
        backend: req.backend,
        diskseq: req.diskseq,
        fd,
        major,
        minor,
        live: twin?.live ?? false,
        deadline: Date.now() + grace,
        // a pending entry from the twin still waits for its first giver's transaction
        giverPid: twin ? twin.giverPid : req.pid,
        giverStart: twin ? twin.giverStart : processStart(req.pid),
      };
      const wasEmpty = this.size === 0;
      list.push(e);
      this.held.set(req.backend, list);
      if (wasEmpty) this.onNonEmpty();
      this.log(`adopt ${req.backend} ${major}:${minor} diskseq ${seq ?? '-'} from ${twin ? 'the twin' : 'pid'} ${req.pid}`);
      this.armTimer(req.backend, grace);
      this.ensureGiverPoll();
      // We hold the fd from here on: answer now. The watch goes up in the background; its initial firing
      // makes the first check, so a backend committed meanwhile is seen live, never missed.
      void this.ensureWatch(req.backend)
        .then(() => this.check(req.backend))
        .catch((err: unknown) => this.log(`watch ${req.backend}: ${(err as Error).message}`));
    } catch (err) {
      // not held: close what we opened
      if (![...this.held.values()].some((l) => l.some((x) => x.fd === fd))) closeSync(fd);
      throw err;
    }
  }

  /**
   * Backends (and diskseq, '' for all) a giver asked us to let go of, and when: the twin's hand-over may
   * still be on its way with an entry it took before the same drop reached it, and must not bring it back.
   */
  private readonly droppedByGiver = new Map<string, number>();

  /** A giver's `drop`: released here, and not taken back from the twin for TOMBSTONE_MS. */
  dropByGiver(backend: string, diskseq?: string): number {
    const now = Date.now();
    for (const [k, t] of this.droppedByGiver) if (now - t > TOMBSTONE_MS) this.droppedByGiver.delete(k);
    this.droppedByGiver.set(`${backend}\0${diskseq ?? ''}`, now);
    return this.drop(backend, diskseq, letGo({ of: 'giver-drop' }).reason);
  }

  private droppedRecently(backend: string, diskseq: string | undefined): boolean {
    const now = Date.now();
    return [`${backend}\0${diskseq ?? ''}`, `${backend}\0`].some((k) => {
      const t = this.droppedByGiver.get(k);
      return t !== undefined && now - t <= TOMBSTONE_MS;
    });
  }

  /** Releases the entries of a backend (all, or the one with that diskseq). */
  drop(backend: string, diskseq?: string, why = 'dropped'): number {
    const list = this.held.get(backend);
    if (!list) return 0;
    const keep: HeldEntry[] = [];
    let n = 0;
    for (const e of list) {
      if (diskseq === undefined || e.diskseq === diskseq) {
        try {
          closeSync(e.fd);
        } catch {
          // already closed
        }
        n++;
        this.log(`release ${backend} ${e.major}:${e.minor} diskseq ${e.diskseq ?? '-'}: ${why}`);
      } else {
        keep.push(e);
      }
    }
    if (keep.length > 0) this.held.set(backend, keep);
    else {
      this.held.delete(backend);
      const t = this.timers.get(backend);
      if (t) clearTimeout(t);
      this.timers.delete(backend);
      const node = this.watched.get(backend);
      if (this.xs && node !== undefined) {
        this.watched.delete(backend);
        this.xs.unwatch(node, backend).catch(() => {});
      }
    }
    if (n > 0 && this.size === 0) this.onEmpty();
    return n;
  }

  private armTimer(backend: string, ms: number): void {
    const old = this.timers.get(backend);
    if (old) clearTimeout(old);
    const t = setTimeout(() => {
      this.timers.delete(backend);
      void this.check(backend);
    }, ms + 10);
    t.unref?.();
    this.timers.set(backend, t);
  }

  private async connect(): Promise<void> {
    if (this.xs || this.closed) return;
    if (!this.connecting) {
      this.connecting = (async () => {
        let delay = 100;
        for (;;) {
          try {
            const xs = await this.connectXs();
            this.xs = xs;
            this.xsLostAt = undefined;
            this.watched.clear();
            void this.pump(xs);
            for (const b of this.held.keys()) {
              const node = this.watchNode(b);
              this.watched.set(b, node);
              await xs.watch(node, b);
            }
            return;
          } catch (err) {
            if (this.closed) return;
            this.xsLostAt ??= Date.now();
            this.log(`xenstore connect failed (${(err as Error).message}); retrying`);
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 2, 5000);
          }
        }
      })().finally(() => {
        this.connecting = undefined;
      });
    }
    await this.connecting;
  }

  private async ensureWatch(backend: string): Promise<void> {
    await this.connect();
    // connect() watches every path held when it connects; one added since needs its own watch
    if (!this.xs || !this.held.has(backend)) return;
    const want = this.watchNode(backend);
    const have = this.watched.get(backend);
    if (have === want) return;
    // (an entry without a diskseq joined entries with one: from the diskseq node to the whole dir)
    this.watched.set(backend, want);
    await this.xs.watch(want, backend);
    if (have !== undefined) await this.xs.unwatch(have, backend).catch(() => {});
  }

  /**
   * What to watch for a backend: its `diskseq` node when every entry has a diskseq (the node is written
   * when the backend is committed or rewritten for another device, and xenstored fires a watch on each
   * descendant of a removed dir, so the dir going away fires it too), else the whole dir. Watching the
   * dir would fire once per node of every commit under it (libxl's layout, blkback's probe): dozens of
   * events per attach that the keeper only coalesces.
   */
  private watchNode(backend: string): string {
    const list = this.held.get(backend) ?? [];
    return list.length > 0 && list.every((e) => e.diskseq !== undefined) ? `${backend}/diskseq` : backend;
  }

  private async pump(xs: XsClient): Promise<void> {
    try {
      for await (const ev of xs.events()) {
        if (this.held.has(ev.token)) void this.check(ev.token);
      }
    } catch {
      // connection lost
    }
    if (this.xs === xs) this.xs = undefined;
    this.xsLostAt ??= Date.now();
    if (!this.closed && this.size > 0) {
      this.log('xenstore connection lost; holding everything and reconnecting');
      await this.connect();
      for (const b of [...this.held.keys()]) void this.check(b);
    }
  }

  /** Re-reads the backend dir and releases what it no longer describes. Coalesced per backend. */
  async check(backend: string): Promise<void> {
    if (this.checks.has(backend)) return;
    this.checks.add(backend);
    try {
      // a commit fires one event per node written: let the burst pass, then look once
      await new Promise((r) => setTimeout(r, 5));
      this.checks.delete(backend);
      const list = this.held.get(backend);
      if (!list || !this.xs) return;
      let seen: BackendSeen;
      try {
        // one round trip (a diskseq read with the dir gone is simply absent)
        const [dir, node] = await Promise.all([this.xs.read(backend), this.xs.read(`${backend}/${DISKSEQ_NODE}`)]);
        seen = dir === undefined ? { seen: 'gone' } : { seen: 'present', diskseq: node };
      } catch {
        return; // connection trouble: hold, the reconnect rechecks
      }
      const now = Date.now();
      for (const e of [...list]) {
        if (!e.live && seen.seen === 'present' && (e.diskseq === undefined || seen.diskseq === e.diskseq)) {
          this.log(`live ${backend} diskseq ${e.diskseq ?? '-'}`);
          e.live = true;
        }
        const v = letGo({
          of: 'held-fd',
          ...(e.diskseq !== undefined ? { diskseq: e.diskseq } : {}),
          live: e.live,
          backend: seen,
          pending: { expired: now >= e.deadline, giverGone: e.giverGoneAt !== undefined && now - e.giverGoneAt >= GIVER_GONE_SETTLE_MS },
        });
        if (!v.keep) this.drop(backend, e.diskseq, e.live ? v.reason : `${v.reason} (giver pid ${e.giverPid})`);
      }
    } finally {
      this.checks.delete(backend);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.giverTimer) clearInterval(this.giverTimer);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    const xs = this.xs;
    this.xs = undefined;
    if (xs) await xs.close().catch(() => {});
  }

  /** Closes every held fd (tests only: a real keeper never lets go of a live backend's fd on its own). */
  releaseAll(): void {
    for (const b of [...this.held.keys()]) this.drop(b, undefined, 'keeper shutdown');
  }
}

export class KeeperRunningError extends Error {
  constructor(readonly slot: KeeperSlot, path: string) {
    super(`keeper ${slot} already runs (${path} is locked)`);
    this.name = 'KeeperRunningError';
  }
}

/**
 * The slot's lock, held (never closed) for the keeper's whole life: two starts racing (a giver, the twin
 * restarting it) leave exactly one keeper per slot, and the kernel drops the lock when the keeper dies.
 */
function takeSlotLock(runDir: string, slot: KeeperSlot): number {
  const path = keeperLockPath(runDir, slot);
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new Error(`cannot open the keeper lock ${path}: ${(err as Error).message}`);
  }
  if (!sysTryFlock(fd, LOCK_EX)) {
    closeSync(fd);
    throw new KeeperRunningError(slot, path);
  }
  return fd;
}

/**
 * Keeps the twin keeper running and holding everything this one holds: connects to it (starting it when
 * none runs), hands it every entry (it keeps one fd per backend and device, so what givers gave both is
 * not doubled), then waits for the connection to end (the twin died or exited idle) and starts over.
 * With nothing held it waits: a keeper holding nothing needs no twin.
 */
async function keepTwin(
  keeper: Keeper,
  runDir: string,
  slot: KeeperSlot,
  running: () => boolean,
  whenNonEmpty: () => Promise<void>,
  log: (line: string) => void,
  connected: (c: KeeperConnection | undefined) => void,
): Promise<void> {
  const twin = twinOf(slot);
  while (running()) {
    if (keeper.size === 0) {
      await whenNonEmpty();
      continue;
    }
    let c: KeeperConnection;
    try {
      c = await ensureKeeper(runDir, twin);
    } catch (err) {
      log(`twin ${twin}: ${(err as Error).message}; trying again`);
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    connected(c);
    if (!running()) {
      // this keeper stopped while the twin was being reached: a connection kept now would never end
      connected(undefined);
      c.close();
      break;
    }
    try {
      const entries = keeper.entries();
      const rs = await Promise.allSettled(
        entries.map((e) =>
          c.request({
            op: 'adopt',
            pid: process.pid,
            fd: e.fd,
            backend: e.backend,
            ...(e.diskseq !== undefined ? { diskseq: e.diskseq } : {}),
            graceMs: Math.max(0, e.deadline - Date.now()),
            twin: { live: e.live, giverPid: e.giverPid, ...(e.giverStart !== undefined ? { giverStart: e.giverStart } : {}) },
          }),
        ),
      );
      const failed = rs.filter((r) => r.status === 'rejected').length;
      log(`twin ${twin} holds ${entries.length - failed} of our ${entries.length} fds${failed ? ` (${failed} refused)` : ''}`);
      const why = await c.ended();
      if (running()) log(`twin ${twin}: ${why.message}`);
    } finally {
      connected(undefined);
      c.close();
    }
    // a twin that exited idle just as we connected: do not spin
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What a keeper request needs of the Keeper (tests pass a fake). */
export type KeeperState = Pick<Keeper, 'xsConnected' | 'list' | 'adopt' | 'dropByGiver'>;

/** Answers one request (`xsPaths`: where this keeper looks for xenstored); throws on a bad one. */
export async function answerKeeperRequest(keeper: KeeperState, xsPaths: string[], req: KeeperRequest): Promise<KeeperReply> {
  switch (req?.op) {
    case 'ping':
      return { ok: true, pid: process.pid, xenstore: xsPaths, xsConnected: keeper.xsConnected };
    case 'list':
      return { ok: true, pid: process.pid, held: keeper.list(), xenstore: xsPaths, xsConnected: keeper.xsConnected };
    case 'adopt':
      await keeper.adopt(req);
      return { ok: true, pid: process.pid };
    case 'drop':
      if (typeof req.backend !== 'string') throw new Error('drop: backend missing');
      keeper.dropByGiver(req.backend, req.diskseq);
      return { ok: true, pid: process.pid };
    default:
      throw new Error('unknown op');
  }
}

/**
 * One line of the keeper's protocol: JSON in, a reply out, an error as `{ok: false}`. `begin`/`end`
 * bracket every request that parsed (the idle exit waits for none to be pending).
 */
export async function answerKeeperLine(line: string, answer: (req: KeeperRequest) => Promise<KeeperReply>, begin: () => void, end: () => void): Promise<KeeperReply> {
  let req: KeeperRequest;
  try {
    req = JSON.parse(line) as KeeperRequest;
  } catch {
    return { ok: false, error: 'bad JSON' };
  }
  begin();
  try {
    return await answer(req);
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    end();
  }
}

/** Raises the open-files limit to the hard one (a keeper holds one fd per device); logs what it got. */
function raiseOpenFiles(log: (line: string) => void): void {
  try {
    const lim = raiseNofileLimit();
    log(`open files: up to ${lim.soft}`);
  } catch (err) {
    log(`cannot raise the open-files limit: ${(err as Error).message}`);
  }
}

/** Listens on the slot's socket, root only. The slot's lock is ours: a socket file left there is a dead keeper's. */
async function listenKeeper(sockPath: string, slot: KeeperSlot, onConn: (sock: Socket) => void, log: (line: string) => void): Promise<Server> {
  try {
    if (statSync(sockPath).isSocket()) rmSync(sockPath);
  } catch {
    // none
  }
  const server = createServer(onConn);
  await new Promise<void>((res, rej) => {
    server.once('error', (e: NodeJS.ErrnoException) => rej(new Error(`keeper ${slot}: cannot listen on ${sockPath}: ${e.message}`)));
    server.listen(sockPath, () => res());
  });
  chmodSync(sockPath, 0o600); // root only, like the run dir (0700) around it
  server.on('error', (err) => log(`server error: ${err.message}`));
  return server;
}

/** Lets go of everything and stops once xenstore has been unreachable for `lostMs` (throw-away environments). */
function exitWhenXsLost(keeper: Keeper, lostMs: number, log: (line: string) => void, stop: () => Promise<void>): void {
  const t = setInterval(() => {
    if (keeper.xsLostAt !== undefined && Date.now() - keeper.xsLostAt >= lostMs) {
      log(`xenstore unreachable for ${lostMs} ms: letting go of everything`);
      clearInterval(t);
      keeper.releaseAll();
      void stop();
    }
  }, Math.min(1000, lostMs));
  t.unref();
}

/** A wait that the next wake() ends; a wake() with nobody waiting is lost (the waiter checks its condition first). */
function wakeable(): { wait: () => Promise<void>; wake: () => void } {
  let wake: (() => void) | undefined;
  return {
    wait: () =>
      new Promise<void>((r) => {
        wake = () => {
          wake = undefined;
          r();
        };
      }),
    wake: () => wake?.(),
  };
}

/** Runs the keeper of `slot` until it holds nothing for idleExitMs. Resolves when it has stopped. */
export async function runKeeper(opts: KeeperOptions & { slot: KeeperSlot }): Promise<void> {
  const log = opts.log ?? (() => {});
  const slot = opts.slot;
  mkdirSync(opts.runDir, { recursive: true, mode: 0o700 });
  const lockFd = takeSlotLock(opts.runDir, slot);
  raiseOpenFiles(log);
  const sockPath = keeperSocketPath(opts.runDir, slot);
  const keeper = new Keeper(opts.connectXs, log);
  const xsPaths = defaultPaths();
  const idleMs = opts.idleExitMs ?? 3000;
  let idleTimer: NodeJS.Timeout | undefined;
  let server: Server | undefined;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const twinWake = wakeable();
  let twinConn: KeeperConnection | undefined;

  const stop = async () => {
    if (!server) return;
    const s = server;
    server = undefined;
    twinWake.wake();
    twinConn?.close();
    // unlink first so that new givers start a fresh keeper rather than reach a closing one
    try {
      rmSync(sockPath, { force: true });
    } catch {
      // gone
    }
    s.close();
    await keeper.close();
    log('keeper exits: nothing held');
    done();
  };
  const armIdle = () => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      if (keeper.size === 0 && pendingRequests === 0) void stop();
    }, idleMs);
  };
  keeper.onEmpty = armIdle;
  keeper.onNonEmpty = () => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = undefined;
    twinWake.wake();
  };
  let pendingRequests = 0;

  // Requests are handled concurrently and answered in the order they came (serveJsonLines).
  const onLine = (line: string) =>
    answerKeeperLine(
      line,
      (req) => answerKeeperRequest(keeper, xsPaths, req),
      () => void pendingRequests++,
      () => {
        pendingRequests--;
        if (keeper.size === 0) armIdle();
      },
    );
  server = await listenKeeper(sockPath, slot, (sock) => serveJsonLines(sock, onLine, { maxLine: 65536 }), log);
  log(`keeper ${slot} (pid ${process.pid}) listening on ${sockPath}`);
  armIdle();
  const twinDone = keepTwin(
    keeper,
    opts.runDir,
    slot,
    () => server !== undefined,
    twinWake.wait,
    log,
    (c) => (twinConn = c),
  ).catch((err: unknown) => log(`twin: ${(err as Error).message}`));
  if (opts.xsLostExitMs !== undefined) exitWhenXsLost(keeper, opts.xsLostExitMs, log, stop);
  await finished;
  keeper.releaseAll();
  twinConn?.close();
  await twinDone;
  closeSync(lockFd);
}
