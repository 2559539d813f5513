// Per-disk back-off (src/daemon/backoff.ts): the pure rules, then the Reconciler with an in-memory
// engine: one disk that keeps failing never delays another's step, a failed step is retried by itself
// once its back-off ends, a terminal failure only when the config changes or an operator asks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POLICY, type DesiredState } from '../../src/model/desired.js';
import type { ObservedState } from '../../src/model/observed.js';
import type { Action, Plan } from '../../src/model/plan.js';
import { actionKey, afterSteps, dueActions, forgetUnplanned, nextDue, type Backoff } from '../../src/daemon/backoff.js';
import { Reconciler, type ConfigLoad, type Engine, type ExecuteResult, type PassOutcome } from '../../src/daemon/reconciler.js';

const be = (fe: number, devid: number) => ({ path: `/local/domain/0/backend/vbd/${fe}/${devid}`, backendDomid: 0, frontendDomid: fe, devid });
const reprobe = (fe: number, devid: number): Action => ({ kind: 'reprobe', domain: `d${fe}`, domid: fe, backend: be(fe, devid), physicalDevice: '7:0', backendState: 4, frontend: true, reason: 'test' });
const offline = (fe: number, devid: number): Action => ({ kind: 'offline', backend: be(fe, devid), physicalDevice: '7:0', close: false, reason: 'test' });
const freeLoop: Action = { kind: 'free-loop', loop: { name: 'loop9', diskseq: '99', backing: { dev: '1', ino: '2' } }, reason: 'unused' };
const delay = (n: number) => 100 * 2 ** (n - 1);

test('keys: a vbd by its frontend domid and devid, a loop device by name and diskseq', () => {
  assert.equal(actionKey(reprobe(5, 51712)), 'vbd 5/51712');
  assert.equal(actionKey(offline(5, 51712)), 'vbd 5/51712');
  assert.equal(actionKey(freeLoop), 'loop loop9 99');
});

test('afterSteps: a failure backs its key off (doubling), a success clears it, a terminal one waits for good', () => {
  const a = reprobe(5, 1);
  const b = reprobe(6, 1);
  let m = afterSteps(new Map(), [{ action: a, ok: false, error: 'E1' }, { action: b, ok: true }], 1000, delay);
  assert.deepEqual(m.get('vbd 5/1'), { failures: 1, until: 1100, error: 'E1', terminal: false });
  assert.equal(m.has('vbd 6/1'), false);
  m = afterSteps(m, [{ action: a, ok: false, error: 'E2' }], 2000, delay);
  assert.deepEqual(m.get('vbd 5/1'), { failures: 2, until: 2200, error: 'E2', terminal: false });
  assert.equal(nextDue(m), 2200);
  m = afterSteps(m, [{ action: b, ok: false, error: 'not ours', terminal: true }], 2000, delay);
  assert.equal(m.get('vbd 6/1')!.until, Infinity);
  assert.equal(nextDue(m), 2200, 'a terminal failure is never due by time');
  m = afterSteps(m, [{ action: a, ok: true }], 3000, delay);
  assert.equal(m.has('vbd 5/1'), false);
  assert.equal(nextDue(m), undefined);
  assert.deepEqual([...afterSteps(m, [{ ok: false }], 0, delay)], [...m], 'a step without its action is not keyed');
});

test('dueActions and forgetUnplanned', () => {
  const a = reprobe(5, 1);
  const b = reprobe(6, 1);
  const m = new Map<string, Backoff>([['vbd 5/1', { failures: 1, until: 500, error: 'E', terminal: false }], ['vbd 7/1', { failures: 1, until: 500, error: 'E', terminal: false }]]);
  assert.deepEqual(dueActions([a, b], m, 400), { due: [b], held: [{ action: a, backoff: m.get('vbd 5/1')! }] });
  assert.deepEqual(dueActions([a, b], m, 500).due, [a, b], 'due again when its time comes');
  assert.deepEqual([...forgetUnplanned(m, [a, b]).keys()], ['vbd 5/1'], 'a key the plan no longer asks for goes');
});

const desired: DesiredState = { domains: [], policy: DEFAULT_POLICY };
const observed: ObservedState = { takenAt: 0, domains: [], backends: [], loops: [], sources: {} };

/** Plans the same actions every pass; each step fails while its key is in `failing`. */
class Engine2 implements Engine {
  actions: Action[] = [];
  failing = new Map<string, { terminal: boolean }>();
  ran: string[][] = [];
  config: ConfigLoad = { desired, errorCount: 0 };
  async loadDesired(): Promise<ConfigLoad> {
    return this.config;
  }
  async observe(): Promise<ObservedState> {
    return observed;
  }
  plan(): Plan {
    return { actions: this.actions, findings: [], disks: [] };
  }
  async execute(plan: Plan): Promise<ExecuteResult> {
    this.ran.push(plan.actions.map(actionKey));
    const steps = plan.actions.map((a) => {
      const f = this.failing.get(actionKey(a));
      return { kind: a.kind, target: actionKey(a), ok: f === undefined, action: a, ...(f ? { error: 'EIO', ...(f.terminal ? { terminal: true } : {}) } : {}) };
    });
    return { ok: steps.every((s) => s.ok), steps };
  }
}

/** The queue's and the retry's timers are unref'd (the daemon's sockets keep it alive): so does this. */
function keepAlive(): () => void {
  const t = setInterval(() => undefined, 1000);
  return () => clearInterval(t);
}

/** The next pass whose reasons include `reason`. */
function nextPass(r: Reconciler, reason: string): Promise<PassOutcome> {
  return new Promise((resolve) => {
    const off = r.onPass((o) => {
      if (!o.reasons.includes(reason)) return;
      off();
      resolve(o);
    });
  });
}

test('a disk that keeps failing holds back only itself, and the host does not back off', async () => {
  const e = new Engine2();
  e.actions = [reprobe(5, 1), reprobe(6, 1)];
  e.failing.set('vbd 5/1', { terminal: false });
  // a back-off no pass of this test outlives
  const r = new Reconciler(e, { log: () => undefined, debounceMs: 0, backoffBaseMs: 600_000, backoffMaxMs: 600_000 });
  const done = keepAlive();
  try {
    const o1 = await r.trigger('start');
    assert.deepEqual(e.ran.at(-1), ['vbd 5/1', 'vbd 6/1']);
    assert.equal(o1.ok, false);
    assert.equal(r.queue.failures, 0, 'the host does not back off');
    e.actions = [reprobe(5, 1), reprobe(7, 1)];
    const o2 = await r.trigger('xenstore');
    assert.deepEqual(e.ran.at(-1), ['vbd 7/1'], 'the other disk runs at once; the failing one is held back');
    assert.deepEqual(o2.held?.map((h) => h.failures), [1]);
    assert.match(o2.summary, /1 held back: reprobe d5 devid 1 \(test\) \(failed 1x: EIO\)/);
  } finally {
    await r.stop();
    done();
  }
});

test('a failed step is retried by itself once its back-off ends', async () => {
  const e = new Engine2();
  e.actions = [reprobe(5, 1)];
  e.failing.set('vbd 5/1', { terminal: false });
  const r = new Reconciler(e, { log: () => undefined, debounceMs: 0, backoffBaseMs: 20, backoffMaxMs: 20 });
  const done = keepAlive();
  try {
    const retried = nextPass(r, 'retry after a failed step');
    await r.trigger('start');
    e.failing.clear();
    // the retry comes whenever its time comes (a state waited for, not a time)
    for (let o = await retried; !o.ok; o = await nextPass(r, 'retry after a failed step'));
    assert.deepEqual(e.ran.at(-1), ['vbd 5/1']);
  } finally {
    await r.stop();
    done();
  }
});

test('a terminal failure is not retried by time; a config change or an operator runs it again; offline is never held', async () => {
  const e = new Engine2();
  e.actions = [offline(4, 1), reprobe(5, 1)];
  e.failing.set('vbd 5/1', { terminal: true });
  e.failing.set('vbd 4/1', { terminal: true });
  const r = new Reconciler(e, { log: () => undefined, debounceMs: 0, backoffBaseMs: 1, backoffMaxMs: 1 });
  const done = keepAlive();
  try {
    await r.trigger('start');
    const o2 = await r.trigger('xenstore');
    assert.deepEqual(e.ran.at(-1), ['vbd 4/1'], 'offline runs every pass; the terminal reprobe waits');
    assert.equal(o2.held?.[0]?.terminal, true);
    assert.match(o2.summary, /not retried until the config changes or an operator asks/);
    await r.trigger('config');
    assert.deepEqual(e.ran.at(-1), ['vbd 4/1', 'vbd 5/1'], 'a config change runs it again');
    await r.trigger('xenstore');
    assert.deepEqual(e.ran.at(-1), ['vbd 4/1']);
    await r.trigger('SIGHUP', { urgent: true });
    assert.deepEqual(e.ran.at(-1), ['vbd 4/1', 'vbd 5/1'], 'so does an operator');
    assert.equal(e.ran.filter((x) => x.includes('vbd 5/1')).length, 3, 'never by time');
  } finally {
    await r.stop();
    done();
  }
});
