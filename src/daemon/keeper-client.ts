// Talking to the keeper (src/daemon/keeper.ts): connect, start it detached when none runs, hand fds over.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
export function connectKeeper(runDir: string): Promise<KeeperConnection> {
  return new Promise((resolve, reject) => {
    const sock: Socket = netConnect(keeperSocketPath(runDir));
    let buf = '';
    const waiting: { res: (r: KeeperReply & { ok: true }) => void; rej: (e: Error) => void }[] = [];
    let failed: Error | undefined;
    const failAll = (err: Error) => {
      failed = err;
      for (const w of waiting.splice(0)) w.rej(err);
    };
    sock.setEncoding('utf8');
    sock.once('error', (err) => {
      reject(err);
      failAll(new KeeperError(`keeper connection failed: ${err.message}`));
    });
    sock.on('close', () => failAll(new KeeperError('keeper closed the connection')));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const w = waiting.shift();
        if (!w) continue;
        let rep: KeeperReply;
        try {
          rep = JSON.parse(line) as KeeperReply;
        } catch {
          w.rej(new KeeperError('keeper sent bad JSON'));
          continue;
        }
        if (rep.ok) w.res(rep);
        else w.rej(new KeeperError(`keeper: ${rep.error}`));
      }
    });
    sock.once('connect', () => {
      resolve({
        request(req) {
          if (failed) return Promise.reject(failed);
          return new Promise((res, rej) => {
            // a keeper that accepted but does not answer must not hang its giver for ever
            const t = setTimeout(() => {
              const err = new KeeperError(`the keeper did not answer "${req.op}" within ${REQUEST_TIMEOUT_MS} ms`);
              failAll(err);
              sock.destroy();
            }, REQUEST_TIMEOUT_MS);
            t.unref();
            waiting.push({
              res: (r) => {
                clearTimeout(t);
                res(r);
              },
              rej: (e) => {
                clearTimeout(t);
                rej(e);
              },
            });
            sock.write(JSON.stringify(req) + '\n');
          });
        },
        close() {
          sock.end();
        },
      });
    });
  });
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
