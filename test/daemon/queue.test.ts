// The coalescing trigger queue: bursts become one pass, one pass at a time, a trigger during a pass
// gives exactly one more pass, backoff after failures (capped), urgent triggers skip debounce and backoff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TriggerQueue, type PassInfo } from '../../src/daemon/queue.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a burst of triggers becomes one pass covering all of them', async () => {
  const passes: PassInfo[] = [];
  const q = new TriggerQueue(async (info) => {
    passes.push(info);
    return info.seq;
  }, undefined, { debounceMs: 30, maxDelayMs: 1000 });
  const ps: Promise<number>[] = [];
  for (let i = 0; i < 50; i++) ps.push(q.trigger(i % 2 ? 'config' : 'xenstore'));
  const results = await Promise.all(ps);
  assert.equal(passes.length, 1);
  assert.deepEqual(passes[0], { seq: 1, reasons: ['xenstore', 'config'], triggers: 50 });
  assert.ok(results.every((r) => r === 1));
  await q.stop();
});

test('a steady stream still gets a pass after maxDelayMs', async () => {
  let n = 0;
  const q = new TriggerQueue(async () => ++n, undefined, { debounceMs: 40, maxDelayMs: 100 });
  const t0 = Date.now();
  const first = q.trigger('x');
  while (Date.now() - t0 < 300) {
    void q.trigger('x');
    await sleep(10);
  }
  assert.equal(await first, 1);
  assert.ok(n >= 2, `passes during a 300 ms stream with maxDelay 100: ${n}`);
  await q.stop();
});

test('one pass at a time; triggers during a pass make exactly one more', async () => {
  let running = 0;
  let maxRunning = 0;
  const seen: PassInfo[] = [];
  const q = new TriggerQueue(async (info) => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    seen.push(info);
    await sleep(60);
    running--;
    return info.seq;
  }, undefined, { debounceMs: 5 });
  const a = q.trigger('a');
  await sleep(20); // pass 1 runs now
  const b = [q.trigger('b'), q.trigger('c'), q.trigger('b')];
  assert.equal(await a, 1);
  assert.deepEqual(await Promise.all(b), [2, 2, 2]);
  await q.idle();
  assert.equal(maxRunning, 1);
  assert.deepEqual(seen.map((s) => s.reasons), [['a'], ['b', 'c']]);
  await q.stop();
});

test('backoff grows exponentially and is capped, with bounded jitter', () => {
  const q = new TriggerQueue(async () => 0, undefined, { backoffBaseMs: 100, backoffMaxMs: 1000, random: () => 0.5 });
  const cases: [number, number][] = [
    [0, 0],
    [1, 100],
    [2, 200],
    [3, 400],
    [4, 800],
    [5, 1000],
    [40, 1000],
  ];
  for (const [f, want] of cases) assert.equal(q.backoffMs(f), want, `failures=${f}`);
  const lo = new TriggerQueue(async () => 0, undefined, { backoffBaseMs: 100, backoffMaxMs: 1000, random: () => 0 });
  const hi = new TriggerQueue(async () => 0, undefined, { backoffBaseMs: 100, backoffMaxMs: 1000, random: () => 0.999 });
  assert.equal(lo.backoffMs(2), 160);
  assert.equal(hi.backoffMs(2), 240);
  assert.equal(hi.backoffMs(10), 1000, 'jitter never exceeds the cap');
});

test('failed passes delay the next one; urgent triggers do not wait; success resets', async () => {
  const starts: number[] = [];
  let fail = true;
  const q = new TriggerQueue(
    async () => {
      starts.push(Date.now());
      if (fail) throw new Error('boom');
      return 'ok';
    },
    undefined,
    { debounceMs: 1, backoffBaseMs: 150, backoffMaxMs: 1000, random: () => 0.5 },
  );
  await assert.rejects(q.trigger('a'), /boom/);
  assert.equal(q.failures, 1);
  const t1 = Date.now();
  await assert.rejects(q.trigger('b'), /boom/);
  assert.ok(Date.now() - t1 >= 140, `second pass waited the backoff (${Date.now() - t1} ms)`);
  assert.equal(q.failures, 2);
  const t2 = Date.now();
  fail = false;
  assert.equal(await q.trigger('operator', { urgent: true }), 'ok');
  assert.ok(Date.now() - t2 < 100, `urgent pass skipped the 300 ms backoff (${Date.now() - t2} ms)`);
  assert.equal(q.failures, 0);
  // 3 triggers of ours + the 2 retries the queue queued by itself after each failure (merged into ours).
  assert.deepEqual(q.stats, { triggers: 5, passes: 3, finished: 3, failed: 2 });
  await q.stop();
});

test('a result judged failed counts as a failure too', async () => {
  const q = new TriggerQueue(async () => ({ ok: false }), (r) => !r.ok, { debounceMs: 1, backoffBaseMs: 50 });
  await q.trigger('x');
  assert.equal(q.failures, 1);
  assert.ok(q.backoffUntil > Date.now() - 5);
  await q.stop();
});

test('stop rejects pending triggers and waits for the running pass', async () => {
  let finished = false;
  const q = new TriggerQueue(async () => {
    await sleep(50);
    finished = true;
    return 1;
  }, undefined, { debounceMs: 1 });
  const a = q.trigger('a');
  await sleep(10);
  const b = q.trigger('b');
  await q.stop();
  assert.equal(finished, true);
  assert.equal(await a, 1);
  await assert.rejects(b, /stopped/);
  await assert.rejects(q.trigger('c'), /stopped/);
});

test('a failed pass is retried by itself after the backoff, until it succeeds', async () => {
  const starts: number[] = [];
  const q = new TriggerQueue(
    async (info) => {
      starts.push(Date.now());
      if (starts.length < 4) throw new Error(`fail ${info.seq}`);
      return info.reasons;
    },
    undefined,
    { debounceMs: 1, backoffBaseMs: 40, backoffMaxMs: 100, random: () => 0.5 },
  );
  await assert.rejects(q.trigger('once'), /fail 1/);
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(starts.length, 4, 'three failures, then the retry that succeeds; then no more');
  const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
  assert.ok(gaps[0]! >= 35 && gaps[1]! >= 75 && gaps[2]! >= 95, `backoff 40, 80, 100 (capped): ${gaps.join(', ')}`);
  assert.equal(q.failures, 0);
  await q.stop();
});

test('without retryFailed a failed pass waits for the next trigger', async () => {
  let n = 0;
  const q = new TriggerQueue(async () => {
    n++;
    throw new Error('x');
  }, undefined, { debounceMs: 1, backoffBaseMs: 10, retryFailed: false });
  await assert.rejects(q.trigger('a'));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(n, 1);
  await q.stop();
});

test("a trigger's own quiet time: a config change alone does not wait for --debounce; a trigger after it does", async () => {
  const passes: PassInfo[] = [];
  // the default quiet time is far longer than this test may run: a pass that waited for it would time out
  const q = new TriggerQueue(async (info) => {
    passes.push(info);
  }, undefined, { debounceMs: 3_600_000, maxDelayMs: 7_200_000 });
  await q.trigger('config', { debounceMs: 0 });
  assert.deepEqual(passes.map((p) => p.reasons), [['config']]);
  // a trigger with the long quiet time after a short one: the pass waits for the long one
  void q.trigger('config', { debounceMs: 0 }).catch(() => undefined);
  void q.trigger('xenstore').catch(() => undefined);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(passes.length, 1, 'the xenstore trigger keeps its quiet time');
  assert.equal(q.busy, true);
  await q.stop();
});
