// The Reconciler's policy with an in-memory engine (the I/O is tested end to end elsewhere): last good
// desired state, nothing observed without one, errors logged once, failures recorded and backed off,
// execute only when there is something to do, passes exclusive with other work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POLICY, type DesiredState } from '../../src/model/desired.js';
import type { ObservedState } from '../../src/model/observed.js';
import type { Action, Plan } from '../../src/model/plan.js';
import { Reconciler, summarize, type ConfigLoad, type Engine, type ExecuteResult } from '../../src/daemon/reconciler.js';

const desiredA: DesiredState = { domains: [], policy: DEFAULT_POLICY };
const desiredB: DesiredState = { domains: [], policy: { ...DEFAULT_POLICY, prune: true } };
const observed: ObservedState = { takenAt: 0, domains: [], backends: [], loops: [], sources: {} };
const freeLoop: Action = { kind: 'free-loop', loop: { name: 'loop9', diskseq: '99', backing: { dev: '1', ino: '2' } }, reason: 'unused' };

class FakeEngine implements Engine {
  configs: ConfigLoad[] = [];
  plans: Plan[] = [];
  observeError: Error | undefined;
  stepOk = true;
  calls: string[] = [];
  plannedWith: DesiredState[] = [];
  async loadDesired(): Promise<ConfigLoad> {
    this.calls.push('load');
    return this.configs.length > 1 ? this.configs.shift()! : this.configs[0]!;
  }
  async observe(): Promise<ObservedState> {
    this.calls.push('observe');
    if (this.observeError) throw this.observeError;
    return observed;
  }
  plan(desired: DesiredState): Plan {
    this.calls.push('plan');
    this.plannedWith.push(desired);
    return this.plans.length > 1 ? this.plans.shift()! : (this.plans[0] ?? { actions: [], findings: [], disks: [] });
  }
  async execute(plan: Plan): Promise<ExecuteResult> {
    this.calls.push('execute');
    return {
      ok: this.stepOk,
      steps: plan.actions.map((a) => ({ kind: a.kind, target: 'loop9', label: 'free /dev/loop9', ok: this.stepOk, ...(this.stepOk ? {} : { error: 'EBUSY' }) })),
    };
  }
}

function make(engine: Engine) {
  const log: string[] = [];
  const r = new Reconciler(engine, { log: (l) => log.push(l), debounceMs: 0, backoffBaseMs: 10, backoffMaxMs: 20 });
  return { r, log };
}

test('without any good desired state nothing is observed or done', async () => {
  const e = new FakeEngine();
  e.configs = [{ errorCount: 2, errorText: 'a.yaml:1:1: bad' }];
  const { r, log } = make(e);
  const o = await r.trigger('start', { urgent: true });
  assert.deepEqual(e.calls, ['load']);
  assert.deepEqual([o.skipped, o.configOk, o.ok, o.configErrors], [true, false, true, 2]);
  assert.match(o.summary, /^pass 1 \(start\); config invalid, nothing done; [\d.]+ ms$/);
  assert.match(log[0]!, /config: 2 error\(s\); no good desired state yet: doing nothing\na\.yaml:1:1: bad/);
  await r.stop();
});

test('a bad config keeps the last good desired state; errors are logged once per distinct text', async () => {
  const e = new FakeEngine();
  e.configs = [
    { desired: desiredA, errorCount: 0 },
    { errorCount: 1, errorText: 'x' },
    { errorCount: 1, errorText: 'x' },
    { errorCount: 1, errorText: 'y' },
    { desired: desiredB, errorCount: 0 },
  ];
  const { r, log } = make(e);
  const outs = [];
  for (let i = 0; i < 5; i++) outs.push(await r.trigger(`t${i}`, { urgent: true }));
  assert.deepEqual(e.plannedWith, [desiredA, desiredA, desiredA, desiredA, desiredB]);
  assert.deepEqual(outs.map((o) => o.usedLastGood), [false, true, true, true, false]);
  assert.deepEqual(outs.map((o) => o.ok), [true, true, true, true, true], 'a bad config alone is no failure: no backoff');
  const cfgLines = log.filter((l) => l.startsWith('config:'));
  assert.equal(cfgLines.length, 3, cfgLines.join('\n'));
  assert.match(cfgLines[0]!, /keeping the last good desired state\nx/);
  assert.match(cfgLines[1]!, /keeping the last good desired state\ny/);
  assert.equal(cfgLines[2], 'config: valid again');
  assert.match(outs[1]!.summary, /config invalid, using the last good desired state; nothing to do/);
  await r.stop();
});

test('execute runs only when there are actions; a failed step fails the pass, without backing off the host', async () => {
  const e = new FakeEngine();
  e.configs = [{ desired: desiredA, errorCount: 0 }];
  e.plans = [{ actions: [], findings: [], disks: [] }, { actions: [freeLoop], findings: [], disks: [] }];
  const { r } = make(e);
  const o1 = await r.trigger('a', { urgent: true });
  assert.deepEqual(e.calls, ['load', 'observe', 'plan']);
  assert.match(o1.summary, /nothing to do; 0\/0 disks synced; no findings/);
  e.stepOk = false;
  const o2 = await r.trigger('b', { urgent: true });
  assert.equal(e.calls.at(-1), 'execute');
  assert.equal(o2.ok, false);
  assert.equal(o2.error, undefined);
  assert.match(o2.summary, /0\/1 done, 1 failed: -free \/dev\/loop9 FAILED \(EBUSY\)/);
  assert.equal(r.queue.failures, 0, 'a failed step backs off its own disk (test/daemon/backoff.test.ts), not the host');
  e.stepOk = true;
  const o3 = await r.trigger('c', { urgent: true });
  assert.equal(o3.ok, true);
  assert.match(o3.summary, /1\/1 done: -free \/dev\/loop9 ok/);
  assert.equal(r.queue.failures, 0);
  await r.stop();
});

test('a pass-level error is recorded (no throw), the next pass starts fresh', async () => {
  const e = new FakeEngine();
  e.configs = [{ desired: desiredA, errorCount: 0 }];
  e.observeError = new Error('cannot connect to xenstore');
  const { r, log } = make(e);
  const o = await r.trigger('a', { urgent: true });
  assert.equal(o.ok, false);
  assert.equal(o.error, 'cannot connect to xenstore');
  assert.match(o.summary, /^pass 1 \(a\); FAILED: cannot connect to xenstore; [\d.]+ ms$/);
  assert.equal(log.at(-1), o.summary);
  assert.equal(r.queue.failures, 1, 'a pass that failed as a whole backs off the host');
  assert.ok(r.queue.backoffUntil > 0);
  e.observeError = undefined;
  assert.equal((await r.trigger('b', { urgent: true })).ok, true);
  assert.equal(r.history.length, 2);
  await r.stop();
});

test('exclusive work and passes never overlap', async () => {
  const e = new FakeEngine();
  e.configs = [{ desired: desiredA, errorCount: 0 }];
  const { r } = make(e);
  const order: string[] = [];
  const slow = r.exclusive(async () => {
    order.push('release start');
    await new Promise((res) => setTimeout(res, 50));
    order.push('release end');
  });
  const p = r.trigger('a', { urgent: true }).then(() => order.push('pass done'));
  await Promise.all([slow, p]);
  assert.deepEqual(order, ['release start', 'release end', 'pass done']);
  await r.stop();
});

test('summarize names the reasons, the trigger count and the findings by kind', () => {
  const base = {
    seq: 3, reasons: ['config', 'xenstore'], triggers: 9, startedAt: '', durationMs: 12.5, ok: true, configOk: true, configErrors: 0,
    usedLastGood: false, skipped: false, actions: 0, steps: [], findings: 3, errorFindings: [], findingKinds: { 'loop-leaked': 2, 'rw-shared': 1 },
    disks: 4, synced: 3, released: [],
  };
  assert.equal(
    summarize({ ...base, summary: '' }),
    'pass 3 (config, xenstore; 9 triggers); nothing to do; 3/4 disks synced; 3 finding(s): loop-leaked x2, rw-shared; 12.5 ms',
  );
});

test('describeChanges: what differs from the previous pass, in a few words', async () => {
  const { describeChanges } = await import('../../src/daemon/reconciler.js');
  const disk = (vdev: string, devid: number) => ({
    vdev, devid, source: `/img/${vdev}`, sourceKind: 'file' as const, mode: 'rw' as const,
    options: { directIo: false, discard: false }, backendDomid: 0, at: { file: 'a.yaml', line: 1, column: 1 },
  });
  const dz = (n: number, line = 1): DesiredState => ({
    policy: DEFAULT_POLICY,
    domains: [{ name: 'web1', at: { file: 'a.yaml', line, column: 1 }, disks: Array.from({ length: n }, (_, i) => disk(`xvd${'abc'[i]}`, 51712 + 16 * i)) }],
  });
  const be = (fe: number, devid: number, state = 4) => ({
    backendDomid: 0, frontendDomid: fe, devid, path: `/local/domain/0/backend/vbd/${fe}/${devid}`, ours: true, kernelHeld: true, state,
  });
  const ob = (domains: [number, string][], backends: ReturnType<typeof be>[], loops: string[] = []): ObservedState => ({
    takenAt: 0, domains: domains.map(([domid, name]) => ({ domid, name })), backends, sources: {},
    loops: loops.map((diskseq) => ({ diskseq }) as unknown as ObservedState['loops'][number]),
  });
  const base = ob([[0, 'Domain-0'], [5, 'web1']], [be(5, 51712)], ['7']);
  const cases: [string, DesiredState | undefined, DesiredState, ObservedState | undefined, ObservedState, string | undefined][] = [
    ['first pass', undefined, dz(1), undefined, base, undefined],
    ['nothing', dz(1), dz(1), base, base, undefined],
    ['positions only (a comment added)', dz(1), dz(1, 7), base, base, undefined],
    ['a disk added to the config', dz(1), dz(2), base, base, 'config 1 -> 2 disks'],
    ['a domain appears with a backend', dz(1), dz(1), base, ob([[0, 'Domain-0'], [5, 'web1'], [9, 'late']], [be(5, 51712), be(9, 51712, 1)], ['7']), '+domain late(9), +backend 9/51712'],
    ['a domain goes', dz(1), dz(1), base, ob([[0, 'Domain-0']], [], []), '-domain web1(5), -backend 5/51712, loop devices +0/-1'],
    ['a state change and a new loop device', dz(1), dz(1), base, ob([[0, 'Domain-0'], [5, 'web1']], [be(5, 51712, 5)], ['7', '8']), '1 backend(s) changed state, loop devices +1/-0'],
  ];
  for (const [name, pd, d, po, o, want] of cases) assert.equal(describeChanges(pd, d, po, o), want, name);
});
