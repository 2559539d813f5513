// A source with a loop device xvbd did not make (losetup): the planner reports source-in-use with the
// device and how to free it, and plans no attach that every apply would fail; once freed, it attaches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan } from '../../src/model/plan.js';
import { runCli, startBench } from '../apply/helpers.js';

function backingOf(dev: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${dev.slice('/dev/'.length)}/loop/backing_file`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function planJson(env: NodeJS.ProcessEnv): Promise<Plan> {
  const r = await runCli(['plan', '--json'], env);
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out) as Plan;
}

test('a source held by a foreign loop device: source-in-use, no attach, apply does the rest and exits 3; freed, it attaches', async () => {
  // withBlockDevice: db's `device:` disk is a losetup device too, which is desired as it is: no finding for it
  const b = await startBench({ withBlockDevice: true });
  const image = join(b.host.imagesDir, 'web1-private.img');
  let foreign: string | undefined;
  try {
    foreign = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
    const p = await planJson(b.env);
    const inUse = p.findings.filter((f) => f.kind === 'source-in-use');
    assert.deepEqual(inUse.map((f) => `${f.domain} ${f.vdev} ${f.severity}`), ['web1 xvdb error'], JSON.stringify(p.findings));
    assert.ok(inUse[0]!.message.includes(`${foreign} (rw)`), inUse[0]!.message);
    assert.ok(inUse[0]!.fix.includes(`losetup -d ${foreign}`), inUse[0]!.fix);
    const attaches = p.actions.flatMap((a) => (a.kind === 'attach' ? [`${a.domain} ${a.disk.vdev}`] : []));
    assert.ok(!attaches.includes('web1 xvdb'), 'no attach planned for it');
    assert.ok(attaches.includes('web1 xvda') && attaches.includes('db xvdb'), `the others are: ${attaches.join(', ')}`);

    const r = await runCli(['apply', '--auto-approve'], b.env);
    assert.equal(r.code, 3, `no step fails, the error finding remains: ${r.out}`);
    assert.match(r.out, /^Apply complete: (\d+) of \1 step/m);
    assert.match(r.out, /^But 1 error finding remains \(what apply cannot fix\):\n.*source-in-use/m);
    assert.equal(b.sim.read('/local/domain/0/backend/vbd/1/51728/params'), undefined, 'web1 xvdb not attached');

    // freed by its owner (this test): the next apply attaches it
    assert.equal(backingOf(foreign), image);
    execFileSync('losetup', ['-d', foreign]);
    foreign = undefined;
    const after = await planJson(b.env);
    assert.deepEqual(after.findings.filter((f) => f.kind === 'source-in-use'), []);
    assert.deepEqual(after.actions.map((a) => (a.kind === 'attach' ? `${a.domain} ${a.disk.vdev}` : a.kind)), ['web1 xvdb']);
    assert.equal((await runCli(['apply', '--auto-approve'], b.env)).code, 0);
    assert.ok(b.sim.read('/local/domain/0/backend/vbd/1/51728/physical-device'));
  } finally {
    // only the device this test made, and only while it still backs our image
    if (foreign !== undefined && backingOf(foreign) === image) execFileSync('losetup', ['-d', foreign]);
    await b.cleanup();
  }
});
