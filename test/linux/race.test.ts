// Race: hundreds of attaches while other allocators churn loop devices on the same machine
// (two `losetup -f`/`losetup -d` loops and a second xvbd process). Every device we get must back exactly
// the inode we asked for and carry our marker; nothing of ours may leak; nothing of theirs is touched.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { LoopRegistry } from '../../src/linux/registry.js';
import { getDiskseq, getStatus, isBound, markerMatches } from '../../src/linux/loopdev.js';
import { Scratch, losetupDetach } from './helpers.js';

const scratch = new Scratch('race');
after(() => scratch.finish());

const linuxIndex = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/linux/index.js');

interface Churn {
  child: ChildProcess;
  ok: number;
  fail: string[];
  exited: Promise<unknown>;
}

function churn(cmd: string, args: string[]): Churn {
  // Its own process group, so that stopping it also stops a losetup it is in the middle of.
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const c: Churn = { child, ok: 0, fail: [], exited: new Promise((r) => child.once('exit', r)) };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      if (l === 'OK') c.ok++;
      else if (l.length > 0) c.fail.push(l);
    }
  });
  child.stderr!.on('data', (d: Buffer) => c.fail.push(`stderr: ${d.toString().trim()}`));
  return c;
}

/**
 * After our last close the device is freed at once unless someone else has it open at that instant
 * (the other xvbd's host scan, udev): then at their close. Allow that moment, not more.
 */
async function unbound(name: string, diskseq: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (!isBound(name, diskseq)) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

function losetupLoop(file: string): Churn {
  // Attach and detach in a loop, as an unrelated tool would; report each round and each failure.
  const script = `while :; do
    d=$(losetup -f --show "$1" 2>&1) || { echo "ATTACH-FAIL $d"; continue; }
    losetup -d "$d" 2>&1 >/dev/null && echo OK || echo "DETACH-FAIL $d"
  done`;
  return churn('bash', ['-c', script, 'churn', file]);
}

function secondXvbd(file: string): Churn {
  const script = `
    const { LoopRegistry } = await import(${JSON.stringify(linuxIndex)});
    const { statSync } = await import('node:fs');
    const want = String(statSync(${JSON.stringify(file)}, { bigint: true }).ino);
    const reg = new LoopRegistry();
    for (;;) {
      try {
        const h = await reg.acquire({ key: 'x', source: ${JSON.stringify(file)}, readOnly: false });
        console.log(h.backing.ino === want ? 'OK' : 'BAD ' + h.name + ' ' + h.backing.ino);
        reg.release('x');
      } catch (e) { console.log('ERR ' + e.message); }
    }`;
  return churn(process.execPath, ['--input-type=module', '-e', script]);
}

for (const { legacy, N } of [{ legacy: false, N: 250 }, { legacy: true, N: 100 }]) {
test(`${N} attaches (${legacy ? 'LOOP_SET_FD path' : 'LOOP_CONFIGURE'}) against losetup churn and a second xvbd: right inode, our marker, no leaks`, { timeout: 120_000 }, async (t) => {
  const tag = legacy ? 'legacy' : 'configure';
  const ours = Array.from({ length: 10 }, (_, i) => scratch.image(`${tag}-ours-${i}.img`, 2));
  const shared = scratch.image(`${tag}-shared-ro.img`, 2);
  const theirs = [scratch.image(`${tag}-theirs-a.img`, 2), scratch.image(`${tag}-theirs-b.img`, 2)];
  const other = scratch.image(`${tag}-other-xvbd.img`, 2);
  const theirInodes = new Set(theirs.map((f) => scratch.inode(f).ino).concat(scratch.inode(other).ino));
  const churners = [losetupLoop(theirs[0]!), losetupLoop(theirs[1]!), secondXvbd(other)];
  const reg = new LoopRegistry({ allowedRoots: [scratch.dir], legacy });
  let sharedUsers = 0;
  try {
    // Let the churn get going: every adversary has done a few rounds before we start (a second node
    // process can take seconds to start on a loaded machine).
    const deadline = Date.now() + 60_000;
    while (churners.some((c) => c.ok < 3)) {
      if (Date.now() > deadline) throw new Error(`the churners did not get going: ${churners.map((c) => c.ok).join(', ')} rounds`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // At least N attaches, and more (up to 4N) until the second xvbd has really raced us: its polled lock
    // on /dev/loop-control can lose many rounds in a row to our back-to-back attaches on a busy machine.
    for (let i = 0; i < N || (churners[2]!.ok <= 20 && i < 4 * N); i++) {
      const ro = i % 5 === 4;
      const file = ro ? shared : ours[i % ours.length]!;
      const key = `be/${i}/51712`;
      const h = await reg.acquire({ key, source: file, readOnly: ro });
      const want = scratch.inode(file);
      // What the kernel says about the device, through the fd we hold.
      const st = getStatus(h.fd);
      assert.equal(String(st.device), want.dev, `${h.name}: backing dev`);
      assert.equal(String(st.inode), want.ino, `${h.name}: backing inode`);
      assert.ok(!theirInodes.has(String(st.inode)));
      assert.ok(markerMatches(st), `${h.name}: marker ${st.fileName}`);
      assert.equal(String(getDiskseq(h.fd)), h.diskseq);
      assert.equal(readFileSync(`/sys/block/${h.name}/loop/backing_file`, 'utf8').trim(), file);
      if (ro) {
        sharedUsers++;
        // Keep a few read-only users around so sharing happens under churn too.
        if (sharedUsers % 3 === 0) {
          for (const u of reg.users(h.diskseq)) reg.release(u);
          assert.equal(await unbound(h.name, h.diskseq), true, `${h.name} freed after the last read-only user`);
        }
      } else {
        assert.deepEqual(reg.release(key)?.closed, true);
        assert.equal(await unbound(h.name, h.diskseq), true, `${h.name} (diskseq ${h.diskseq}) still bound after release`);
      }
    }
  } finally {
    reg.closeAll();
    for (const c of churners) {
      try {
        process.kill(-c.child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await Promise.all(churners.map((c) => c.exited));
    // The stand-ins for "other tools" may have been stopped between their attach and detach: their
    // devices are ours to clean (made by this test, backing files in our scratch dir).
    await new Promise((r) => setTimeout(r, 100));
    for (const name of scratch.bound()) {
      let f = '';
      try {
        f = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
      } catch {
        continue;
      }
      if (theirs.includes(f)) losetupDetach(name);
    }
  }
  t.diagnostic(`registry stats: ${JSON.stringify(reg.stats)}`);
  // Every attempt that did not end in a retry attached a device: with legacy, all of them by LOOP_SET_FD.
  if (legacy) assert.ok(reg.stats.legacy >= reg.stats.attempts - Object.values(reg.stats.retries).reduce((a, b) => a + b, 0), JSON.stringify(reg.stats));
  t.diagnostic(`churn rounds: losetup ${churners[0]!.ok}+${churners[1]!.ok}, second xvbd ${churners[2]!.ok}`);
  assert.ok(churners[0]!.ok + churners[1]!.ok > 20, 'the losetup churn hardly ran: the race was not exercised');
  assert.ok(churners[2]!.ok > 20, 'the second xvbd hardly ran');
  // Nothing of theirs was touched: their detaches never failed, the other xvbd always got its own inode.
  const detachFails = churners.flatMap((c) => c.fail.filter((l) => l.startsWith('DETACH-FAIL') || l.startsWith('BAD')));
  assert.deepEqual(detachFails, []);
  const attachFails = churners.flatMap((c) => c.fail.filter((l) => !l.startsWith('DETACH-FAIL') && !l.startsWith('BAD')));
  t.diagnostic(`their attach failures (contention, retried by them): ${attachFails.length} ${attachFails.slice(0, 3).join(' | ')}`);
  // Nothing of ours leaks (the churners' last devices are theirs and may be mid-round when killed).
  const left = (await scratch.waitNoneBound()).filter((name) => {
    const f = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
    return ours.includes(f) || f === shared;
  });
  assert.deepEqual(left, []);
});
}
