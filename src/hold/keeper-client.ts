// Talking to the keepers (src/hold/keeper.ts): connect, start one detached when none runs, hand fds
// over. A run dir has two keepers, slots a and b, each holding every fd (docs/fd-holding.md).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KEEPER_SLOTS, keeperHolderName, type KeeperSlot } from '../plan/holding.js';
import { ConnectionLostError, JsonLinesClient } from '../ipc/jsonlines.js';
import { defaultPaths } from '../host/env.js';
import { DEFAULT_RUN_DIR } from '../host/instance.js';
import type { HeldInfo, KeeperReply, KeeperRequest } from './keeper-protocol.js';

export interface KeeperConnection {
  /** One request; a keeper that does not answer within timeoutMs (default 60 s) fails the connection. */
  request(req: KeeperRequest, timeoutMs?: number): Promise<KeeperReply & { ok: true }>;
  /** Resolves once the connection has ended (the keeper exited or died). */
  ended(): Promise<Error>;
  close(): void;
}

export class KeeperError extends Error {
  constructor(
    message: string,
    /** Set when the request was lost with its connection (the keeper died, exited, or hung), not refused. */
    readonly connectionLost = false,
  ) {
    super(message);
    this.name = 'KeeperError';
  }
}

const REQUEST_TIMEOUT_MS = 60_000;
/** How long an observation waits for a keeper's list. */
const LIST_TIMEOUT_MS = 10_000;
/** After how long ensureKeeper starts a keeper again while none answers (then twice as long each time). */
const RESPAWN_MS = 2_000;

export function keeperSocketPath(runDir: string, slot: KeeperSlot): string {
  return join(runDir, `keeper-${slot}.sock`);
}

/** The flock a keeper holds for its whole life: one keeper per slot, and a dead one never blocks. */
export function keeperLockPath(runDir: string, slot: KeeperSlot): string {
  return join(runDir, `keeper-${slot}.lock`);
}

export function keeperLogPath(runDir: string): string {
  return join(runDir, 'keeper.log');
}

export function twinOf(slot: KeeperSlot): KeeperSlot {
  return slot === 'a' ? 'b' : 'a';
}

/**
 * A keeper that looks for xenstored elsewhere than this process does (started with another
 * XENSTORED_PATH): it cannot see the backends it would hold, so it would never let go of them (or let go
 * at once, on another live xenstore). Givers refuse it rather than hand it fds; status shows it.
 */
export class KeeperMismatchError extends KeeperError {
  constructor(
    readonly slot: KeeperSlot,
    readonly pid: number,
    readonly keeperXenstore: string[],
  ) {
    super(
      `keeper ${slot} (pid ${pid}) looks for xenstore at ${keeperXenstore.join(', ')}, this xvbd at ${defaultPaths().join(', ')} ` +
        `(XENSTORED_PATH differs): it cannot see the backends it would hold, so no fd is handed to it; ` +
        `once it holds nothing that matters (xvbd status lists the keepers), stop it (kill ${pid}) and run again with one XENSTORED_PATH`,
    );
    this.name = 'KeeperMismatchError';
  }
}

/** Whether a keeper's xenstore paths (its ping or list reply) differ from this process's. */
export function xenstoreMismatch(keeperXenstore: string[] | undefined): boolean {
  return keeperXenstore !== undefined && keeperXenstore.join('\0') !== defaultPaths().join('\0');
}

/** Connects to a running keeper; rejects (ENOENT / ECONNREFUSED) when none listens. */
export async function connectKeeper(runDir: string, slot: KeeperSlot): Promise<KeeperConnection> {
  const c = await JsonLinesClient.connect<KeeperRequest, KeeperReply>(keeperSocketPath(runDir, slot), `keeper ${slot}`);
  return {
    async request(req, timeoutMs = REQUEST_TIMEOUT_MS) {
      let rep: KeeperReply;
      try {
        // a keeper that accepted but does not answer must not hang its giver for ever
        rep = await c.request(req, timeoutMs);
      } catch (err) {
        throw new KeeperError((err as Error).message, err instanceof ConnectionLostError);
      }
      if (!rep.ok) throw new KeeperError(`keeper ${slot}: ${rep.error}`);
      return rep;
    },
    ended: () => c.ended(),
    close: () => c.close(),
  };
}

const cliMain = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** Where an installed xvbd-keeper@.service may be (the package's, an admin's copy). */
const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];

/**
 * How a missing keeper is started: `systemd` (`systemctl start xvbd-keeper@<slot>.service`: the keepers
 * are units of their own, visible to systemctl, never detached children of whoever needed them) or
 * `spawn` (a detached process logging to keeper.log). $XVBD_KEEPERS says which; unset, systemd when it
 * runs (/run/systemd/system), the unit is installed and the run dir is the unit's (/run/xvbd).
 */
export function keeperLaunchMode(runDir: string, env: NodeJS.ProcessEnv = process.env): 'systemd' | 'spawn' {
  const v = env.XVBD_KEEPERS;
  if (v === 'systemd' || v === 'spawn') return v;
  if (v !== undefined && v !== '') throw new KeeperError(`XVBD_KEEPERS must be "systemd" or "spawn", not ${JSON.stringify(v)}`);
  if (runDir !== DEFAULT_RUN_DIR || !existsSync('/run/systemd/system')) return 'spawn';
  return UNIT_DIRS.some((d) => existsSync(join(d, 'xvbd-keeper@.service'))) ? 'systemd' : 'spawn';
}

export function keeperUnit(slot: KeeperSlot): string {
  return `xvbd-keeper@${slot}.service`;
}

/** Starts the keeper of `slot`: its unit (systemd), or detached (its own session, logging to keeper.log); no wait. */
export function spawnKeeper(runDir: string, slot: KeeperSlot): void {
  if (keeperLaunchMode(runDir) === 'systemd') {
    // --no-block: the daemon may ask while its own unit stops (a job waited for could deadlock)
    const child = spawn('systemctl', ['start', '--no-block', keeperUnit(slot)], { stdio: 'ignore', cwd: '/' });
    child.on('error', () => undefined); // no systemctl: ensureKeeper's time-out says where to look
    child.unref();
    return;
  }
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const log = keeperLogPath(runDir);
  let logFd: number;
  try {
    logFd = openSync(log, 'a', 0o600);
  } catch (err) {
    throw new KeeperError(`cannot open ${log} for the keeper's log: ${(err as Error).message}`);
  }
  try {
    // the notify socket is the daemon's: a keeper is no service of its own
    const { NOTIFY_SOCKET: _n, LISTEN_FDS: _f, LISTEN_PID: _p, LISTEN_FDNAMES: _m, ...env } = process.env;
    const child = spawn(process.execPath, [cliMain, 'keeper', '--slot', slot], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      cwd: '/',
      env: { ...env, XVBD_RUN_DIR: runDir },
    });
    child.unref();
  } finally {
    closeSync(logFd);
  }
}

/**
 * Returns a connection to the keeper of runDir's `slot`, starting one when none listens. Starts may race
 * (two givers, or a keeper restarting its twin): the keeper's own flock lets one win, and the others'
 * connects find it.
 */
export async function ensureKeeper(runDir: string, slot: KeeperSlot, opts: { timeoutMs?: number } = {}): Promise<KeeperConnection> {
  const c = await connectOrStart(runDir, slot, opts);
  let rep;
  try {
    rep = await c.request({ op: 'ping' }, LIST_TIMEOUT_MS);
  } catch (err) {
    c.close();
    throw err;
  }
  if (xenstoreMismatch(rep.xenstore)) {
    c.close();
    throw new KeeperMismatchError(slot, rep.pid, rep.xenstore!);
  }
  return c;
}

async function connectOrStart(runDir: string, slot: KeeperSlot, opts: { timeoutMs?: number }): Promise<KeeperConnection> {
  try {
    return await connectKeeper(runDir, slot);
  } catch {
    // none: start one
  }
  spawnKeeper(runDir, slot);
  // a node start can take long on a loaded or emulated host (dom0 under TCG: seconds)
  const envMs = Number(process.env.XVBD_KEEPER_START_TIMEOUT_MS);
  const deadline = Date.now() + (opts.timeoutMs ?? (Number.isFinite(envMs) && envMs > 0 ? envMs : 30_000));
  let delay = 20;
  let respawnMs = RESPAWN_MS;
  let nextSpawn = Date.now() + respawnMs;
  for (;;) {
    try {
      return await connectKeeper(runDir, slot);
    } catch (err) {
      const now = Date.now();
      if (now > deadline) {
        const where = keeperLaunchMode(runDir) === 'systemd' ? `systemctl status ${keeperUnit(slot)}` : keeperLogPath(runDir);
        throw new KeeperError(`keeper ${slot} did not start (${(err as Error).message}); see ${where}`);
      }
      // The one we started may have found the slot still locked by a keeper on its way out (socket
      // already gone): start another now and then (less and less often: a slow host starts node slowly);
      // a surplus one sees the lock and exits at once.
      if (now >= nextSpawn) {
        spawnKeeper(runDir, slot);
        respawnMs *= 2;
        nextSpawn = now + respawnMs;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 200);
    }
  }
}

export interface KeeperListing {
  slot: KeeperSlot;
  pid: number;
  held: HeldInfo[];
  /** Where the keeper looks for xenstored, and whether it is connected (older keepers: absent). */
  xenstore?: string[];
  xsConnected?: boolean;
}

/** What each running keeper of runDir holds (keepers that do not answer are left out). */
export async function keeperLists(runDir: string): Promise<KeeperListing[]> {
  const out = await Promise.all(
    KEEPER_SLOTS.map(async (slot) => {
      const c = await connectKeeper(runDir, slot).catch(() => undefined);
      if (!c) return undefined;
      try {
        // asked at every observation: a keeper too busy to list (it answers in order) does not stall a pass
        const rep = await c.request({ op: 'list' }, LIST_TIMEOUT_MS);
        return {
          slot,
          pid: rep.pid,
          held: rep.held ?? [],
          ...(rep.xenstore !== undefined ? { xenstore: rep.xenstore } : {}),
          ...(rep.xsConnected !== undefined ? { xsConnected: rep.xsConnected } : {}),
        };
      } catch {
        return undefined;
      } finally {
        c.close();
      }
    }),
  );
  return out.filter((x) => x !== undefined);
}

/** diskseq -> the keepers holding it (`keeper-a`, `keeper-b`), for LoopObs.keptBy. */
export async function keeperHoldings(runDir: string): Promise<Map<string, string[]>> {
  const m = new Map<string, string[]>();
  for (const k of await keeperLists(runDir)) {
    for (const h of k.held) {
      if (h.diskseq === undefined) continue;
      const l = m.get(h.diskseq) ?? [];
      if (!l.includes(keeperHolderName(k.slot))) l.push(keeperHolderName(k.slot));
      m.set(h.diskseq, l);
    }
  }
  return m;
}

/** Asks every running keeper to let go of a backend's fds (the hook's remove, a failed transaction). */
export async function dropFromKeepers(runDir: string, backend: string, diskseq?: string): Promise<number> {
  const rs: number[] = await Promise.all(
    KEEPER_SLOTS.map(async (slot) => {
      const c = await connectKeeper(runDir, slot).catch(() => undefined);
      if (!c) return 0;
      try {
        await c.request({ op: 'drop', backend, ...(diskseq !== undefined ? { diskseq } : {}) });
        return 1;
      } finally {
        c.close();
      }
    }),
  );
  return rs.reduce((a, b) => a + b, 0);
}
