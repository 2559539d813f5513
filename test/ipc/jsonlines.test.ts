// The JSON-lines protocol both local sockets speak (src/ipc/jsonlines.ts): replies in request order
// whatever order the handler finishes in, a bad line answered in its place, an overlong line ending the
// connection, a peer that goes away failing what is in flight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectionLostError, JsonLinesClient, serveJsonLines } from '../../src/ipc/jsonlines.js';
import { connectKeeper, KeeperError } from '../../src/hold/keeper-client.js';

type Req = { op: string; wait?: number };

async function withServer(opts: Parameters<typeof serveJsonLines>[2], f: (path: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-jsonl-'));
  const path = join(dir, 's.sock');
  const conns = new Set<import('node:net').Socket>();
  const server: Server = createServer((sock) => {
    conns.add(sock);
    serveJsonLines(
      sock,
      async (line) => {
        let req: Req;
        try {
          req = JSON.parse(line) as Req;
        } catch {
          return { ok: false, error: 'bad JSON' };
        }
        await new Promise((r) => setTimeout(r, req.wait ?? 0));
        return { ok: true, op: req.op };
      },
      opts,
    );
  });
  await new Promise<void>((r) => server.listen(path, r));
  try {
    await f(path);
  } finally {
    for (const s of conns) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
}

test('replies come in request order: a slow request first, a bad line between, concurrent or one at a time', async (t) => {
  for (const sequential of [false, true]) {
    await withServer({ maxLine: 1024, sequential }, async (path) => {
      const c = await JsonLinesClient.connect<Req, { ok: boolean; op?: string; error?: string }>(path, 'the test server');
      t.after(() => c.close());
      const slow = c.request({ op: 'slow', wait: 50 });
      // a line that is not JSON, written raw between two requests
      (c as unknown as { sock: { write(s: string): void } }).sock.write('{not json\n');
      const bad = c.request({ op: 'placeholder' }); // paired with the bad line's reply
      const fast = c.request({ op: 'fast' });
      assert.deepEqual(await slow, { ok: true, op: 'slow' });
      assert.deepEqual(await bad, { ok: false, error: 'bad JSON' });
      assert.deepEqual(await fast, { ok: true, op: 'placeholder' });
      c.close();
    });
  }
});

test('an overlong line: the tooLong reply, then the end of the connection; in-flight requests fail clearly', async (t) => {
  await withServer({ maxLine: 64, tooLong: { ok: false, error: 'too long' } }, async (path) => {
    const c = await JsonLinesClient.connect<Req, { ok: boolean; error?: string }>(path, 'the test server');
    t.after(() => c.close());
    const r = await c.request({ op: 'x'.repeat(200) });
    assert.deepEqual(r, { ok: false, error: 'too long' });
    await assert.rejects(c.request({ op: 'after' }), /the test server closed the connection/);
    c.close();
  });
  await withServer({ maxLine: 64 }, async (path) => {
    const c = await JsonLinesClient.connect<Req, { ok: boolean }>(path, 'the test server');
    t.after(() => c.close());
    await assert.rejects(c.request({ op: 'x'.repeat(200) }), /the test server closed the connection/);
    c.close();
  });
});

test('a lost connection is typed (ConnectionLostError, and KeeperError.connectionLost), not told by its text', async (t) => {
  await withServer({ maxLine: 64 }, async (path) => {
    const c = await JsonLinesClient.connect<Req, { ok: boolean }>(path, 'the test server');
    t.after(() => c.close());
    await assert.rejects(c.request({ op: 'x'.repeat(200) }), (e) => e instanceof ConnectionLostError && e.loss === 'closed');
    c.close();
  });
  await withServer({ maxLine: 1024 }, async (path) => {
    const c = await JsonLinesClient.connect<Req, { ok: boolean }>(path, 'the test server');
    t.after(() => c.close());
    await assert.rejects(c.request({ op: 'slow', wait: 5000 }, 20), (e) => e instanceof ConnectionLostError && e.loss === 'no-answer' && /did not answer "slow"/.test(e.message));
    c.close();
  });
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-jsonl-'));
  try {
    // a keeper that accepts, then dies before it answers
    const server = createServer((sock) => sock.once('data', () => sock.destroy()));
    await new Promise<void>((r) => server.listen(join(dir, 'keeper-a.sock'), r));
    try {
      const k = await connectKeeper(dir, 'a');
      await assert.rejects(k.request({ op: 'ping' }), (e) => e instanceof KeeperError && e.connectionLost && /keeper a closed the connection/.test(e.message));
      k.close();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
