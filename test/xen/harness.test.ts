// Self-tests of the Xen suite's harness, without a VM (not part of `npm test`, which skips test/xen):
//   node --test --test-concurrency=1 dist/test/xen/harness.test.js
// The differential machinery must be deterministic (the same server twice gives the same recording) and
// must report a difference precisely; scenario selection must honour --only and opt-in.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startSimulator } from '../../src/sim/index.js';
import { Tap } from './framework.js';
import { diffSnaps, formatSnapDiffs, playSequence, sequences, type StepSnap } from './lib/blkseq.js';
import { diffRecords, formatDiffs, play, type NormMsg, type StepRecord } from './lib/xsdiff.js';
import { programs } from './lib/xsprograms.js';
import { loadScenarios, splitOnly } from './scenarios.js';

async function withSim<T>(fn: (socketPath: string, sysfsDir: string, settle: () => Promise<void>) => Promise<T>, autoConnect = false): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-xen-harness-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), autoConnect });
  try {
    return await fn(sim.socketPath, sim.sysfsDir, () => sim.settle());
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('xs programs: two fresh simulators give identical recordings (barriers make them deterministic)', async () => {
  const rec = async () => withSim(async (sock) => {
    const out: Record<string, StepRecord[]> = {};
    for (const p of programs()) out[p.name] = await play(p, sock);
    return out;
  });
  const a = await rec();
  const b = await rec();
  for (const p of programs()) {
    assert.equal(a[p.name]!.length, p.steps.length, p.name);
    assert.deepEqual(diffRecords(a[p.name]!, b[p.name]!), [], p.name);
  }
  // the watch program does record events, and the initial firing right after the WATCH reply
  const w = a.watches!.find((s) => s.step.startsWith('W: WATCH') && s.step.includes('tok1'))!;
  assert.deepEqual(
    w.msgs.map((m) => (m as NormMsg).type),
    ['WATCH', 'WATCH_EVENT'],
  );
});

test('xs programs: a differing reply is reported with the step and both replies', async () => {
  const real = await withSim((sock) => play(programs()[0]!, sock));
  const sim = structuredClone(real);
  const i = sim.findIndex((s) => s.msgs.some((m) => (m as NormMsg).type === 'ERROR'));
  (sim[i]!.msgs[0] as NormMsg).payload = 'EACCES\0';
  const d = diffRecords(real, sim);
  assert.equal(d.length, 1);
  assert.equal(d[0]!.index, i);
  const text = formatDiffs(d);
  assert.match(text, new RegExp(`^step ${i + 1}: `));
  assert.match(text, /real xenstored: A ERROR "E[A-Z]+\\0"/);
  assert.match(text, /simulator: {6}A ERROR "EACCES\\0"/);
  // a missing step counts too
  assert.equal(diffRecords(real, real.slice(0, -1)).length, 1);
});

test('blkback sequences: the simulator twice gives the same snapshots; a changed field is named', async () => {
  const seq = sequences().find((s) => s.name === 'frontend first, whole life')!;
  const run = () => withSim((sock, sysfs, settle) => playSequence({ socketPath: sock, sysfsDir: sysfs, settle, pollMs: 50, tmpDir: tmpdir() }, seq));
  const a: StepSnap[] = await run();
  const b: StepSnap[] = await run();
  assert.equal(a.length, seq.steps.length);
  assert.deepEqual(diffSnaps(a, b), []);
  // the snapshots see what happens: probe -> 2, held after physical-device, released after removal
  assert.equal(a[1]!.snap.backend?.state, '2');
  assert.equal(a[2]!.snap.sysfs.physical_device, '<loop major:minor>');
  assert.equal(a[6]!.snap.backend, null);
  assert.equal(a[6]!.snap.loop.bound, false);
  const c = structuredClone(a);
  c[4]!.snap.error = null;
  const d = diffSnaps(a, c);
  assert.equal(d.length, 1);
  assert.match(formatSnapDiffs(d), /step 5: frontend state 3.*\n {4}error node: real "22 reading .*event-channel", simulator "\(absent\)"/);
});

test('scenario selection: --only, unknown names, opt-in scenarios', async () => {
  const all = (await loadScenarios()).map((s) => s.name);
  assert.ok(all.includes('lab') && all.includes('xs-diff') && all.includes('blkback'));
  assert.equal(all[0], 'lab', 'lab runs first');
  assert.ok(!all.includes('hotplug-script'), 'opt-in scenario left out of a full run');
  assert.ok((await loadScenarios([], true)).some((s) => s.name === 'hotplug-script'));
  assert.deepEqual((await loadScenarios(['hotplug-script'])).map((s) => s.name), ['hotplug-script']);
  assert.deepEqual(splitOnly(['a,b', ' c ', '']), ['a', 'b', 'c']);
  await assert.rejects(loadScenarios(['no-such-scenario']), /unknown scenario\(s\): no-such-scenario/);
});

test('TAP output: numbering, failures with their message, skips, summary', () => {
  const lines: string[] = [];
  const tap = new Tap((l) => lines.push(l));
  tap.header();
  tap.add({ scenario: 's', phase: 'xen', name: 'a # b', status: 'pass', ms: 3 });
  tap.add({ scenario: 's', phase: 'host', name: 'c', status: 'fail', ms: 4, detail: 'line1\nline2' });
  tap.add({ scenario: 's', phase: 'host', name: 'd', status: 'skip', ms: 0, detail: 'why' });
  tap.plan();
  assert.deepEqual(lines, [
    'TAP version 13',
    'ok 1 - s [xen] a \\# b # time=3ms',
    'not ok 2 - s [host] c # time=4ms',
    '  ---',
    '  message: |-',
    '    line1',
    '    line2',
    '  ...',
    'ok 3 - s [host] d # SKIP why',
    '1..3',
  ]);
  assert.deepEqual(tap.summary(), { pass: 1, fail: 1, skip: 1 });
});
