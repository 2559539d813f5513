// The Keeper's rules, driven in-process against the simulator with real loop devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keeper } from '../../src/hold/keeper.js';
import { sweepRegistry } from '../../src/hold/fdstore.js';
import { LoopRegistry } from '../../src/linux/index.js';
import { startSimulator } from '../../src/sim/index.js';
import { connect } from '../../src/xenstore/client.js';
import type { XsClient } from '../../src/xenstore/api.js';
import { loopsUnder, waitUntil } from '../apply/helpers.js';

interface Bench {
  dir: string;
  xs: XsClient;
  reg: LoopRegistry;
  keeper: Keeper;
}

/** A keeper in this process against a fresh simulator; everything freed afterwards. */
async function withKeeper(f: (b: Bench) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-keeper-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: [{ name: 'k', domid: 1 }] });
  const xs = await connect({ path: sim.socketPath });
  const reg = new LoopRegistry();
  const keeper = new Keeper(() => connect({ path: sim.socketPath }));
  try {
    await f({ dir, xs, reg, keeper });
  } finally {
    keeper.releaseAll();
    await keeper.close();
    reg.closeAll();
    await xs.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('keeper rules: adopt checks, grace for a backend that never appears, release when the diskseq changes or the dir goes', () =>
  withKeeper(async ({ dir, xs, reg, keeper }) => {
    const files = [0, 1, 2].map((i) => {
      const f = join(dir, `k${i}.img`);
      writeFileSync(f, '');
      truncateSync(f, 4 << 20);
      return f;
    });
    const h = await Promise.all(files.map((f, i) => reg.acquire({ key: `k${i}`, source: f, readOnly: false })));
    const be = (i: number) => `/local/domain/0/backend/vbd/1/${51712 + 16 * i}`;

    // refusals: bad path, wrong diskseq, not a block device
    await assert.rejects(keeper.adopt({ pid: process.pid, fd: h[0]!.fd, backend: '/local/domain/0/backend/vif/1/0' }), /not a vbd backend path/);
    await assert.rejects(keeper.adopt({ pid: process.pid, fd: h[0]!.fd, backend: be(0), diskseq: '1' }), /has diskseq \d+, not 1/);
    const plain = openSync(files[0]!, 'r');
    await assert.rejects(keeper.adopt({ pid: process.pid, fd: plain, backend: be(0) }), /not a block device/);
    closeSync(plain);
    assert.equal(keeper.size, 0);

    // 0: never appears -> dropped after its grace; 1: appears, then rewritten for another device; 2: appears, then removed
    await keeper.adopt({ pid: process.pid, fd: h[0]!.fd, backend: be(0), diskseq: h[0]!.diskseq, graceMs: 300 });
    await keeper.adopt({ pid: process.pid, fd: h[1]!.fd, backend: be(1), diskseq: h[1]!.diskseq });
    await keeper.adopt({ pid: process.pid, fd: h[2]!.fd, backend: be(2), diskseq: h[2]!.diskseq });
    assert.equal(keeper.size, 3);
    await xs.write(`${be(1)}/diskseq`, h[1]!.diskseq);
    await xs.write(`${be(2)}/diskseq`, h[2]!.diskseq);
    await waitUntil('1 and 2 live', () => keeper.list().filter((e) => e.live).length === 2);
    await waitUntil('0 dropped after its grace', () => !keeper.list().some((e) => e.backend === be(0)), 3000);
    // our own fds go: only the keeper's keep the devices bound
    for (let i = 0; i < 3; i++) reg.release(`k${i}`);
    await waitUntil(`${h[0]!.name} freed (nobody holds it)`, () => !loopsUnder(dir).has(h[0]!.name));
    assert.ok(loopsUnder(dir).has(h[1]!.name) && loopsUnder(dir).has(h[2]!.name), 'the keeper holds 1 and 2');
    await xs.write(`${be(1)}/diskseq`, '999999999');
    await waitUntil('1 dropped: its backend names another device', () => !keeper.list().some((e) => e.backend === be(1)));
    await xs.rm(be(2));
    await waitUntil('2 dropped: its backend is gone', () => keeper.size === 0);
    await waitUntil('every device freed', () => loopsUnder(dir).size === 0);
  }));

test('keeper: a giver\'s drop is not undone by the twin\'s hand-over still on its way; the twin\'s entries keep their state; no double fds', () =>
  withKeeper(async ({ dir, xs, reg, keeper }) => {
    const f = join(dir, 't.img');
    writeFileSync(f, '');
    truncateSync(f, 4 << 20);
    const h = await reg.acquire({ key: 't', source: f, readOnly: false });
    const be = '/local/domain/0/backend/vbd/1/51712';
    await xs.write(`${be}/diskseq`, h.diskseq);
    const twin = { live: true, giverPid: 999_999 };
    // the twin hands over an entry the giver gave both: one fd for it, not two
    await keeper.adopt({ pid: process.pid, fd: h.fd, backend: be, diskseq: h.diskseq });
    await keeper.adopt({ pid: process.pid, fd: h.fd, backend: be, diskseq: h.diskseq, twin });
    assert.equal(keeper.size, 1);
    // the giver drops it; the twin's hand-over taken before that drop reached the twin arrives late
    assert.equal(keeper.dropByGiver(be, h.diskseq), 1);
    await assert.rejects(keeper.adopt({ pid: process.pid, fd: h.fd, backend: be, diskseq: h.diskseq, twin }), /was dropped by its giver/);
    assert.equal(keeper.size, 0);
    // the giver itself may give it again (libxl runs the hook's add after a remove)
    await keeper.adopt({ pid: process.pid, fd: h.fd, backend: be, diskseq: h.diskseq });
    assert.equal(keeper.size, 1);
    // an entry from the twin is live at once when the twin saw it live, with the first giver's pid
    keeper.releaseAll();
    await keeper.adopt({ pid: process.pid, fd: h.fd, backend: be, diskseq: h.diskseq, twin });
    assert.deepEqual(keeper.entries().map((e) => [e.live, e.giverPid]), [[true, 999_999]]);
  }));

test('keeper and daemon agree: a live backend whose diskseq node is gone (dir still there) keeps its fd; the dir going releases it', () =>
  withKeeper(async ({ dir, xs, reg, keeper }) => {
    const f = join(dir, 'd.img');
    writeFileSync(f, '');
    truncateSync(f, 4 << 20);
    const h = await reg.acquire({ key: 'd', source: f, readOnly: false });
    const be = '/local/domain/0/backend/vbd/1/51712';
    await xs.write(`${be}/physical-device`, '7:0');
    await xs.write(`${be}/diskseq`, h.diskseq);
    await keeper.adopt({ pid: process.pid, fd: h.fd, backend: be, diskseq: h.diskseq });
    await waitUntil('live', () => keeper.list().some((e) => e.live));
    reg.release('d'); // only the keeper holds it now
    await xs.rm(`${be}/diskseq`);
    await keeper.check(be); // (resolves once the keeper has looked at the backend again)
    assert.equal(keeper.size, 1, 'in doubt, the keeper keeps it (as the daemon\'s sweep does)');
    assert.ok(loopsUnder(dir).has(h.name));
    // the daemon's sweep, on the same facts: a registry user whose backend records no diskseq stays
    const reg2 = new LoopRegistry();
    const f2 = join(dir, 'e.img');
    writeFileSync(f2, '');
    truncateSync(f2, 4 << 20);
    try {
      const h2 = await reg2.acquire({ key: be, source: f2, readOnly: false });
      const observed = { takenAt: 0, domains: [], loops: [], sources: {}, backends: [{ backendDomid: 0, frontendDomid: 1, devid: 51712, path: be, physicalDevice: '7:0', ours: true, kernelHeld: false }] };
      const r = sweepRegistry(reg2, observed);
      assert.deepEqual([r.released, r.closed], [[], []]);
      assert.deepEqual(reg2.fds().map((x) => [x.diskseq, x.users]), [[h2.diskseq, [be]]]);
      const r2 = sweepRegistry(reg2, { ...observed, backends: [] });
      assert.equal(r2.closed.length, 1, 'the backend gone: released and closed');
    } finally {
      reg2.closeAll();
    }
    await xs.rm(be);
    await waitUntil('dropped: its backend is gone', () => keeper.size === 0);
    await waitUntil('the device freed', () => !loopsUnder(dir).has(h.name));
  }));
