import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Coalescer } from '../../src/ui/coalesce.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function counter(workMs: number) {
  const starts: number[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const fn = async () => {
    starts.push(performance.now());
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    await sleep(workMs);
    concurrent--;
  };
  return { fn, starts, max: () => maxConcurrent };
}

test('a burst of triggers becomes one run', async () => {
  const c = counter(5);
  const co = new Coalescer(c.fn, { debounceMs: 30, minIntervalMs: 0 });
  for (let i = 0; i < 100; i++) co.trigger();
  await sleep(10);
  assert.equal(c.starts.length, 0, 'debounced');
  await co.idle();
  assert.equal(c.starts.length, 1);
  assert.equal(co.triggers, 100);
  co.stop();
});

test('triggers during a run cause exactly one more run after it; never two at once', async () => {
  const c = counter(40);
  const co = new Coalescer(c.fn, { debounceMs: 0, minIntervalMs: 0 });
  co.runNow();
  await sleep(10);
  for (let i = 0; i < 20; i++) co.trigger();
  co.runNow();
  await co.idle();
  assert.equal(c.starts.length, 2);
  assert.equal(c.max(), 1);
  co.stop();
});

test('runs caused by triggers are at least minIntervalMs apart', async () => {
  const c = counter(1);
  const co = new Coalescer(c.fn, { debounceMs: 0, minIntervalMs: 80 });
  co.trigger();
  await co.idle();
  co.trigger();
  await co.idle();
  co.trigger();
  await co.idle();
  assert.equal(c.starts.length, 3);
  for (let i = 1; i < c.starts.length; i++) assert.ok(c.starts[i]! - c.starts[i - 1]! >= 75, `gap ${c.starts[i]! - c.starts[i - 1]!}`);
  co.stop();
});

test('runNow skips the debounce; a failing run does not stop later ones; stop cancels', async () => {
  let n = 0;
  const co = new Coalescer(
    async () => {
      n++;
      if (n === 1) throw new Error('boom');
    },
    { debounceMs: 1000, minIntervalMs: 0 },
  );
  co.runNow();
  await co.idle();
  assert.equal(n, 1);
  co.runNow();
  await co.idle();
  assert.equal(n, 2);
  co.trigger();
  assert.ok(co.busy);
  co.stop();
  await co.idle();
  await sleep(20);
  assert.equal(n, 2);
  co.trigger();
  co.runNow();
  assert.equal(co.busy, false, 'stopped: no more runs');
});
