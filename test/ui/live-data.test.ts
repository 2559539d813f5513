// useLiveData (the data hook) through LiveApp with a scripted LiveSource: what the hook does with loads, triggers,
// failures and applies (the real source is covered by live.test.ts against the simulator).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createElement as h } from 'react';
import { LiveApp } from '../../src/ui/LiveApp.js';
import type { ApplyOutcome, LiveSource, Observation } from '../../src/ui/source.js';
import type { Plan } from '../../src/model/plan.js';
import { cleanHost, host } from './fixtures.js';
import { renderTerm } from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class ScriptedSource implements LiveSource {
  host = 'h';
  socket = '/s';
  configDir = '/c';
  loads = 0;
  stopped = 0;
  failNext: string | undefined;
  loadMs = 5;
  current = host();
  trigger: (why: string) => void = () => undefined;
  applied: Plan[] = [];
  appliedOpts: unknown[] = [];
  prunePlan: Plan | undefined;
  applyGate: Promise<void> = Promise.resolve();
  async load(): Promise<Observation> {
    this.loads++;
    await sleep(this.loadMs);
    if (this.failNext !== undefined) {
      const m = this.failNext;
      this.failNext = undefined;
      throw new Error(m);
    }
    return { ...this.current, ...(this.prunePlan ? { prunePlan: this.prunePlan } : {}), observedAt: Date.UTC(2026, 0, 1, 12, 0, this.loads), observeMs: 5 };
  }
  subscribe(cb: (why: string) => void) {
    this.trigger = cb;
    return async () => {
      this.stopped++;
    };
  }
  async apply(plan: Plan, _d: unknown, onLine: (l: string) => void, opts?: { prune?: boolean }): Promise<ApplyOutcome> {
    this.applied.push(plan);
    this.appliedOpts.push(opts);
    onLine('[1] attach db xvdc … \u001b[2Jdone');
    await this.applyGate;
    this.current = cleanHost();
    return { ok: true, summary: 'Apply complete: 3 done, 0 failed.' };
  }
  async close() {}
}

test('loads on mount; a burst of change events is one more load; failures keep the last data', async () => {
  const src = new ScriptedSource();
  const term = renderTerm(h(LiveApp, { source: src, options: { periodMs: 0, debounceMs: 20, minIntervalMs: 0 } }), 120, 50);
  try {
    await term.waitFor('observed 12:00:01');
    assert.equal(src.loads, 1);
    for (let i = 0; i < 50; i++) src.trigger('xenstore');
    await term.waitFor('observed 12:00:02');
    await sleep(100);
    assert.equal(src.loads, 2, 'coalesced');
    src.failNext = 'xenstored went away \u001b[31m';
    src.trigger('x');
    const f = await term.waitFor('observe failed');
    assert.match(f, /observe failed: xenstored went away \?\[31m \(showing the previous observation\)/);
    assert.match(f, /observed 12:00:02/);
    assert.match(f, /db\.img/);
    src.trigger('x');
    await term.waitFor((s) => !s.includes('observe failed') && s.includes('observed 12:00:04'));
  } finally {
    await term.close();
  }
  assert.equal(src.stopped, 1, 'unmount stops the subscription');
});

test('periodic refresh, and none after unmount', async () => {
  const src = new ScriptedSource();
  const term = renderTerm(h(LiveApp, { source: src, options: { periodMs: 60, debounceMs: 0, minIntervalMs: 0 } }), 120, 50);
  await term.waitFor('observed 12:00:03', 15_000);
  await term.close();
  const n = src.loads;
  await sleep(200);
  assert.equal(src.loads, n);
});

test('apply: the plan on screen is handed over, progress shown (sanitized), then a fresh load', async () => {
  const src = new ScriptedSource();
  let open!: () => void;
  src.applyGate = new Promise((r) => (open = r));
  const term = renderTerm(h(LiveApp, { source: src, options: { periodMs: 0, debounceMs: 0, minIntervalMs: 0 } }), 120, 50);
  try {
    await term.waitFor('Pending plan (3)');
    await term.press('a');
    await term.press('y');
    let f = await term.waitFor('applying…');
    assert.match(f, /\[1\] attach db xvdc … \?\[2Jdone/);
    f = await term.press('q');
    assert.match(f, /An apply is running/);
    assert.equal(src.applied.length, 1);
    assert.deepEqual(src.applied[0], host().plan);
    const before = src.loads;
    open();
    f = await term.waitFor('Apply complete: 3 done, 0 failed.');
    f = await term.waitFor('Pending plan (0)');
    assert.ok(src.loads > before, 'reloaded after the apply');
    assert.doesNotMatch(f, /applying…/);
  } finally {
    await term.close();
  }
});

test('p, y: the source applies the plan with prune it loaded, with prune; a, y: the plain plan, without', async () => {
  const src = new ScriptedSource();
  const full = host();
  src.prunePlan = full.plan;
  src.current = { ...full, plan: { ...full.plan, actions: full.plan.actions.filter((a) => a.kind === 'attach') } };
  const term = renderTerm(h(LiveApp, { source: src, options: { periodMs: 0, debounceMs: 20, minIntervalMs: 0 } }), 120, 50);
  try {
    await term.waitFor('Pending plan (1)');
    await term.press('p');
    await term.waitFor('Apply with prune: 3 actions now? (y/n)');
    await term.press('y');
    await term.waitFor('Apply complete: 3 done, 0 failed.');
    assert.equal(src.applied.length, 1);
    assert.equal(src.applied[0], src.prunePlan, 'the plan with prune that was shown');
    assert.deepEqual(src.appliedOpts, [{ prune: true }]);
    assert.match(term.stdout.last(), /Applying with prune 3 actions planned at/);
  } finally {
    await term.close();
  }
});
