// Invariants 3 and 4 of docs/fd-holding.md end to end, on the simulator with real loop devices, after
// the one failure no single crash causes: both keepers killed at once. Devices blkback still holds are
// taken back (hold); one that was freed meanwhile has its backend taken offline before anything is
// allocated, then served again with a fresh device; one whose number another tool took meanwhile has
// its backend closed, so the guest never reads the other file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keeperLists } from '../../src/hold/keeper-client.js';
import { runCli, startBench, waitUntil, type Bench } from './helpers.js';

function boundSeq(name: string): string | undefined {
  try {
    readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8');
    return readFileSync(`/sys/block/${name}/diskseq`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Kills both keepers of the bench at once (the double failure) and waits until they are gone. */
async function killKeepers(b: Bench): Promise<void> {
  const ks = await keeperLists(b.runDir);
  assert.equal(ks.length, 2);
  for (const k of ks) process.kill(k.pid, 'SIGKILL');
  await waitUntil('both keepers gone', async () => (await keeperLists(b.runDir)).length === 0);
}

/** A guest removes its frontend's state: blkback lets go; with no holder left the device is freed. */
async function guestLetsGo(b: Bench, domid: number, devid: number): Promise<string> {
  const be = `/local/domain/0/backend/vbd/${domid}/${devid}`;
  const name = b.sim.read(`${be}/physical-device-path`)!.replace('/dev/', '');
  await b.xs.rm(`/local/domain/${domid}/device/vbd/${devid}/state`);
  await b.sim.settle();
  await waitUntil(`${name} to be freed without a holder`, () => boundSeq(name) === undefined);
  return name;
}

test('both keepers killed: plan says loop-unheld and hold; a freed device\'s backend goes offline, then is served again; apply converges', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    assert.equal((await runCli(['apply', '--auto-approve'], b.env)).code, 0);
    await b.sim.settle();
    await killKeepers(b);
    const web1xvdb = '/local/domain/0/backend/vbd/1/51728';
    const oldSeq = b.sim.read(`${web1xvdb}/diskseq`)!;
    await guestLetsGo(b, 1, 51728);

    const plan = await runCli(['plan', '--json'], b.env);
    const p = JSON.parse(plan.out) as { actions: { kind: string; backend?: { path: string }; close?: boolean }[]; findings: { kind: string }[] };
    assert.deepEqual(p.actions.slice(0, 9).map((a) => a.kind).sort(), [...Array(8).fill('hold'), 'offline'].sort(), 'offline and holds come first');
    const off = p.actions.find((a) => a.kind === 'offline')!;
    assert.equal(off.backend!.path, web1xvdb);
    assert.equal(off.close, false, 'gone, not re-bound: no need to close');
    assert.ok(p.actions.some((a) => a.kind === 'serve' && a.backend?.path === web1xvdb), 'then served again');
    assert.equal(p.findings.filter((f) => f.kind === 'loop-unheld').length, 8);

    const r = await runCli(['apply', '--auto-approve'], b.env);
    assert.equal(r.code, 0, r.out);
    const newSeq = b.sim.read(`${web1xvdb}/diskseq`)!;
    assert.notEqual(newSeq, oldSeq);
    assert.equal(boundSeq(b.sim.read(`${web1xvdb}/physical-device-path`)!.replace('/dev/', '')), newSeq, 'a fresh device, recorded');
    await waitUntil('both keepers to hold all 9 again', async () => {
      const ks = await keeperLists(b.runDir);
      return ks.length === 2 && ks.every((k) => k.held.length === 9);
    });
    const again = await runCli(['plan', '--detailed-exitcode'], b.env);
    assert.equal(again.code, 0, again.out);
  } finally {
    await b.cleanup();
  }
});

test('both keepers killed and the freed number taken by another tool: the backend is closed before anything is allocated', async () => {
  const b = await startBench({ withBlockDevice: false });
  // outside the allowed roots: the observation looks at it all the same, since a backend names its number
  const other = join(b.dir, 'somebody-else.img');
  writeFileSync(other, 'another guest\'s data');
  truncateSync(other, 4 << 20);
  let foreign: string | undefined;
  try {
    assert.equal((await runCli(['apply', '--auto-approve'], b.env)).code, 0);
    await b.sim.settle();
    await killKeepers(b);
    const web2xvdb = '/local/domain/0/backend/vbd/2/51728';
    const name = await guestLetsGo(b, 2, 51728);
    // another tool binds the freed number (as a `losetup -f` would when it is the lowest free one)
    execFileSync('losetup', [`/dev/${name}`, other]);
    foreign = `/dev/${name}`;

    const r = await runCli(['apply', '--auto-approve'], b.env);
    assert.match(r.out, /close\s+web2 xvdb/);
    const be = (n: string) => b.sim.read(`${web2xvdb}/${n}`);
    assert.equal(be('physical-device'), undefined, 'blkback is never told that number again');
    assert.equal(be('hotplug-status'), 'error');
    assert.match(be('hotplug-error')!, /taken offline: .* is now \/dev\/loop\d+ with diskseq \d+/);
    assert.equal(be('online'), '0');
    assert.equal(readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim(), other, 'the other tool\'s device was not touched');
    const status = await runCli(['status'], b.env);
    assert.match(status.out, /web2\s+2\s+xvdb.*out-of-sync\s+degraded/);
  } finally {
    if (foreign) execFileSync('losetup', ['-d', foreign]);
    await b.cleanup();
  }
});
