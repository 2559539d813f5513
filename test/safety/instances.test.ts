// Instances cannot touch each other: the instance is derived from the run dir (XVBD_INSTANCE overrides),
// carried in every loop device's marker, and frees are limited to the instance's own allowedRoots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_RUN_DIR, instanceOf, runDirInstance } from '../../src/host/instance.js';
import { LoopRegistry, parseMarker } from '../../src/linux/index.js';
import { getStatus } from '../../src/linux/loopdev.js';
import type { Plan } from '../../src/model/plan.js';
import { runCli, startBench, type Bench } from '../apply/helpers.js';

test('instanceOf: derived from the run dir, stable, distinct per run dir; XVBD_INSTANCE overrides; none for /run/xvbd', () => {
  const a = instanceOf({ XVBD_RUN_DIR: '/tmp/one/run' });
  assert.match(a!, /^r[0-9a-f]{9}$/);
  assert.equal(instanceOf({ XVBD_RUN_DIR: '/tmp/one/run' }), a, 'the same at every start');
  assert.equal(instanceOf({ XVBD_RUN_DIR: '/tmp/one/run/' }), a, 'the path, not its spelling with a trailing slash');
  assert.notEqual(instanceOf({ XVBD_RUN_DIR: '/tmp/two/run' }), a);
  assert.equal(instanceOf({ XVBD_RUN_DIR: '/tmp/one/run', XVBD_INSTANCE: 'blue' }), 'blue');
  assert.equal(instanceOf({ XVBD_RUN_DIR: '/tmp/one/run', XVBD_INSTANCE: '' }), a, 'empty means unset');
  assert.equal(instanceOf({}), undefined, 'the host\'s one xvbd keeps its untagged markers');
  assert.equal(instanceOf({ XVBD_RUN_DIR: DEFAULT_RUN_DIR }), undefined);
  assert.equal(runDirInstance(DEFAULT_RUN_DIR), undefined);
  assert.throws(() => instanceOf({ XVBD_INSTANCE: 'Bad Name' }), /XVBD_INSTANCE/);
});

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

function policyYaml(roots: string[]): string {
  return ['apiVersion: xvbd/v1', 'kind: Policy', 'prune: false', ...(roots.length ? ['allowedRoots:', ...roots.map((r) => `  - ${r}`)] : []), 'serve: both', ''].join('\n');
}

function freesIn(p: Plan): string[] {
  return p.actions.flatMap((a) => (a.kind === 'free-loop' ? [a.loop.name] : []));
}

async function planOf(b: Bench): Promise<Plan> {
  const r = await runCli(['plan', '--prune', '--json'], b.env);
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out) as Plan;
}

test('two run dirs with prune: each frees only its own unused loop devices; with no allowedRoots neither frees', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'xvbd-instances-'));
  const savedTmp = process.env.TMPDIR;
  const savedRun = process.env.XVBD_RUN_DIR;
  const benches: Bench[] = [];
  const regs: LoopRegistry[] = [];
  try {
    // both benches under one parent, so that one allowedRoots covers the images of both
    process.env.TMPDIR = parent;
    benches.push(await startBench({ withBlockDevice: false }), await startBench({ withBlockDevice: false }));
    restore('TMPDIR', savedTmp);
    const strays: string[] = [];
    for (const b of benches) {
      writeFileSync(join(b.host.configDir, 'policy.yaml'), policyYaml([parent]));
      // an unused device of this instance (as after a crash between loop setup and the transaction)
      process.env.XVBD_RUN_DIR = b.runDir;
      const img = join(b.host.imagesDir, 'stray.img');
      writeFileSync(img, '');
      truncateSync(img, 8 << 20);
      const reg = new LoopRegistry();
      regs.push(reg);
      const h = await reg.acquire({ key: 'stray', source: img, readOnly: false });
      strays.push(h.name);
      const fd = openSync(`/dev/${h.name}`, 'r');
      try {
        assert.equal(parseMarker(getStatus(fd).fileName)?.instance, instanceOf({ XVBD_RUN_DIR: b.runDir }), 'the marker names the run dir\'s instance');
      } finally {
        closeSync(fd);
      }
    }
    assert.notEqual(instanceOf({ XVBD_RUN_DIR: benches[0]!.runDir }), instanceOf({ XVBD_RUN_DIR: benches[1]!.runDir }));

    for (const [i, b] of benches.entries()) {
      const p = await planOf(b);
      assert.deepEqual(freesIn(p), [strays[i]], `bench ${i} frees its own stray only`);
    }
    // the case: no allowedRoots at all: nothing is provably this instance's to free
    for (const b of benches) writeFileSync(join(b.host.configDir, 'policy.yaml'), policyYaml([]));
    for (const [i, b] of benches.entries()) {
      const p = await planOf(b);
      assert.deepEqual(freesIn(p), []);
      const f = p.findings.find((x) => x.kind === 'loop-leaked' && x.loops?.some((l) => l.name === strays[i]));
      assert.ok(f && /allowedRoots/.test(f.fix), JSON.stringify(p.findings));
      assert.ok(!p.findings.some((x) => x.loops?.some((l) => l.name === strays[1 - i])), 'the other instance\'s device is not even reported');
    }
    // and carried out: the second instance's apply --prune frees its own, never the first's
    for (const b of benches) writeFileSync(join(b.host.configDir, 'policy.yaml'), policyYaml([parent]));
    const r = await runCli(['apply', '--auto-approve', '--prune'], benches[1]!.env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`free /dev/${strays[1]} `));
    assert.doesNotMatch(r.out, new RegExp(`free /dev/${strays[0]} `));
    assert.deepEqual(freesIn(await planOf(benches[0]!)), [strays[0]], 'the first instance still has its device, as it was');
  } finally {
    restore('TMPDIR', savedTmp);
    for (const reg of regs) reg.closeAll();
    for (const b of benches) await b.cleanup();
    restore('XVBD_RUN_DIR', savedRun);
    rmSync(parent, { recursive: true, force: true });
  }
});
