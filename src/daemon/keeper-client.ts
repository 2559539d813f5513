// Talking to the keeper (src/daemon/keeper.ts): connect, start it detached when none runs, hand fds over.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonLinesClient } from './jsonlines.js';
import type { KeeperReply, KeeperRequest } from './keeper.js';

export interface KeeperConnection {
  request(req: KeeperRequest): Promise<KeeperReply & { ok: true }>;
  close(): void;
}

export class KeeperError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeeperError';
  }
}

const REQUEST_TIMEOUT_MS = 60_000;

export function keeperSocketPath(runDir: string): string {
  return join(runDir, 'keeper.sock');
}

/** Connects to a running keeper; rejects (ENOENT / ECONNREFUSED) when none listens. */
export async function connectKeeper(runDir: string): Promise<KeeperConnection> {
  const c = await JsonLinesClient.connect<KeeperRequest, KeeperReply>(keeperSocketPath(runDir), 'the keeper');
  return {
    async request(req) {
      let rep: KeeperReply;
      try {
        // a keeper that accepted but does not answer must not hang its giver for ever
        rep = await c.request(req, REQUEST_TIMEOUT_MS);
      } catch (err) {
        throw new KeeperError((err as Error).message);
      }
      if (!rep.ok) throw new KeeperError(`keeper: ${rep.error}`);
      return rep;
    },
    close: () => c.close(),
  };
}

const cliMain = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/**
 * Returns a connection to the keeper of runDir, starting one (detached, in its own session, logging to
 * runDir/keeper.log) when none listens. Callers hold the apply lock, which serialises starts.
 */
export async function ensureKeeper(runDir: string, opts: { timeoutMs?: number } = {}): Promise<KeeperConnection> {
  try {
    return await connectKeeper(runDir);
  } catch {
    // none: start one
  }
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const logFd = openSync(join(runDir, 'keeper.log'), 'a', 0o600);
  try {
    const child = spawn(process.execPath, [cliMain, 'keeper'], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      cwd: '/',
      env: { ...process.env, XVBD_RUN_DIR: runDir },
    });
    child.unref();
  } finally {
    closeSync(logFd);
  }
  // a node start can take long on a loaded or emulated host (dom0 under TCG: seconds)
  const envMs = Number(process.env.XVBD_KEEPER_START_TIMEOUT_MS);
  const deadline = Date.now() + (opts.timeoutMs ?? (Number.isFinite(envMs) && envMs > 0 ? envMs : 30_000));
  let delay = 20;
  for (;;) {
    try {
      return await connectKeeper(runDir);
    } catch (err) {
      if (Date.now() > deadline) {
        throw new KeeperError(`the keeper did not start (${(err as Error).message}); see ${join(runDir, 'keeper.log')}`);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 200);
    }
  }
}
