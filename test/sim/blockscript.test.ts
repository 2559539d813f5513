// The real Xen block hotplug script (/etc/xen/scripts/block, unmodified) against the
// simulator: it reads the backend dir, waits for blkback's InitWait (state 2), sets up the
// loop device itself and writes node / physical-device / physical-device-path /
// hotplug-status; the simulated blkback then really holds that loop device.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/xenstore/client.js';
import type { XsClient } from '../../src/xenstore/api.js';
import { simEnv, tool, waitFor, type SimEnv } from './helpers.js';

const SCRIPT = '/etc/xen/scripts/block';
let E: SimEnv;
let c: XsClient;
before(async () => {
  E = await simEnv({ domains: [{ name: 'bs-1', domid: 1 }, { name: 'bs-2', domid: 2 }] });
  c = await connect({ path: E.sim.socketPath });
});
after(async () => {
  await c?.close();
  await E?.close();
});

function loopsOf(file: string): string[] {
  const out = execFileSync('losetup', ['-j', file], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map((l) => l.split(':')[0]!);
}

/** Detaches whatever loop device is bound to our own file (never others'). */
function freeLoops(file: string): void {
  for (const dev of loopsOf(file)) spawnSync('losetup', ['-d', dev]);
}

async function backend(d: number, n: number, file: string, mode: string, type = 'file'): Promise<string> {
  const be = `/local/domain/0/backend/vbd/${d}/${n}`;
  const fe = `/local/domain/${d}/device/vbd/${n}`;
  await c.transaction(async (tx) => {
    await tx.write(`${fe}/state`, '1');
    await tx.write(`${fe}/backend`, be);
    await tx.write(`${fe}/backend-id`, '0');
    for (const [k, v] of [['frontend', fe], ['frontend-id', String(d)], ['online', '1'], ['state', '1'], ['params', file], ['mode', mode], ['type', type], ['device-type', 'disk']])
      await tx.write(`${be}/${k}`, v!);
  });
  await E.sim.settle();
  return be;
}

/**
 * Runs the script. Its `losetup -f` then `losetup DEV FILE` is racy when other tests bind or
 * claim loop devices at the same time ("losetup ... failed", EBUSY in xen-hotplug.log): that one
 * failure is retried with a growing pause, as an admin would.
 */
async function runBlock(command: string, d: number, n: number) {
  const be = `/local/domain/0/backend/vbd/${d}/${n}`;
  for (let attempt = 1; ; attempt++) {
    // the environment libxl gives hotplug scripts (libxl_linux.c get_hotplug_env)
    const env = { ...E.env, XENBUS_TYPE: 'vbd', XENBUS_PATH: `backend/vbd/${d}/${n}`, XENBUS_BASE_PATH: 'backend' };
    const r = await tool(env, 'bash', [SCRIPT, command]);
    const err = (await c.read(`${be}/hotplug-error`)) ?? '';
    if (r.code === 0 || attempt >= 10 || !/^losetup .* failed$/.test(err)) return r;
    await c.rm(`${be}/hotplug-error`);
    await c.rm(`${be}/hotplug-status`);
    await new Promise((res) => setTimeout(res, 100 * attempt));
  }
}

test('block add sets up the loop device, blkback holds it, removal frees it', { skip: !existsSync(SCRIPT) && 'no /etc/xen/scripts/block' }, async () => {
  const file = join(E.dir, 'disk-a.img');
  writeFileSync(file, '');
  execFileSync('truncate', ['-s', '8M', file]);
  try {
    const be = await backend(1, 51712, file, 'w');
    assert.equal(await c.read(`${be}/state`), '2', 'blkback probed: the script requires InitWait');
    const t0 = process.hrtime.bigint();
    const r = await runBlock('add', 1, 51712);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.equal(r.code, 0, `block add failed: ${await c.read(`${be}/hotplug-error`)}`);
    await E.sim.settle();
    const node = await c.readStrict(`${be}/node`);
    assert.match(node, /^\/dev\/loop\d+$/);
    assert.deepEqual(loopsOf(file), [node], 'the loop device is bound to our file');
    const mm = execFileSync('stat', ['-c', '%t:%T', node], { encoding: 'utf8' }).trim();
    assert.equal(await c.read(`${be}/physical-device`), mm);
    assert.equal(await c.read(`${be}/physical-device-path`), node);
    assert.equal(await c.read(`${be}/hotplug-status`), 'connected');
    assert.equal(readFileSync(join(E.sim.sysfsDir, 'vbd-1-51712', 'physical_device'), 'utf8').trim(), mm, 'blkback holds it');
    const name = node.replace('/dev/', '');
    assert.equal(readFileSync(`/sys/block/${name}/loop/autoclear`, 'utf8').trim(), '0', 'the script does no autoclear');
    assert.equal(spawnSync('losetup', ['-d', node]).status, 0);
    assert.deepEqual(loopsOf(file), [node], 'held by blkback: only autoclear set');
    await c.rm(be);
    await E.sim.settle();
    assert.ok(await waitFor(() => loopsOf(file).length === 0), 'freed once the backend dir is gone');
    process.stderr.write(`# block add (file-backed) against the simulator: ${ms.toFixed(0)} ms\n`);
  } finally {
    await c.rm('/local/domain/0/backend/vbd/1');
    await E.sim.settle();
    freeLoops(file);
  }
});

test('block remove detaches the loop device the script made; read-only mode makes a read-only loop', { skip: !existsSync(SCRIPT) && 'no /etc/xen/scripts/block' }, async () => {
  const file = join(E.dir, 'disk-b.img');
  writeFileSync(file, '');
  execFileSync('truncate', ['-s', '8M', file]);
  try {
    const be = await backend(1, 51728, file, 'r');
    const r = await runBlock('add', 1, 51728);
    assert.equal(r.code, 0, r.stderr);
    const node = await c.readStrict(`${be}/node`);
    const name = node.replace('/dev/', '');
    assert.equal(readFileSync(`/sys/block/${name}/ro`, 'utf8').trim(), '1', 'losetup -r');
    await E.sim.settle();
    assert.equal(E.sim.backends().find((b) => b.devid === 51728)?.mode, 'r');
    // as libxl: the backend goes away first (blkback lets go), then the script's remove
    await c.rm(be);
    await E.sim.settle();
    await c.write(`${be}/node`, node);
    await c.write(`${be}/params`, file);
    await c.write(`${be}/mode`, 'r');
    const rr = await runBlock('remove', 1, 51728);
    assert.equal(rr.code, 0, rr.stderr);
    assert.ok(await waitFor(() => loopsOf(file).length === 0), 'detached by block remove');
  } finally {
    await c.rm('/local/domain/0/backend/vbd/1');
    await E.sim.settle();
    freeLoops(file);
  }
});

test('phy: the script refuses a device another guest has writable (it lists and reads the other backends)', { skip: !existsSync(SCRIPT) && 'no /etc/xen/scripts/block' }, async () => {
  const file = join(E.dir, 'disk-c.img');
  writeFileSync(file, '');
  execFileSync('truncate', ['-s', '8M', file]);
  const dev = execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8' }).trim();
  try {
    const be1 = await backend(1, 51744, dev, 'w', 'phy');
    const r1 = await runBlock('add', 1, 51744);
    assert.equal(r1.code, 0, (await c.read(`${be1}/hotplug-error`)) ?? '');
    const mm = execFileSync('stat', ['-c', '%t:%T', dev], { encoding: 'utf8' }).trim();
    assert.equal(await c.read(`${be1}/physical-device`), mm);
    assert.equal(await c.read(`${be1}/hotplug-status`), 'connected');
    const be2 = await backend(2, 51744, dev, 'w', 'phy');
    const r2 = await runBlock('add', 2, 51744);
    assert.notEqual(r2.code, 0, 'refused');
    assert.equal(await c.read(`${be2}/hotplug-status`), 'busy');
    assert.match((await c.read(`${be2}/hotplug-error`)) ?? '', /is mounted in a guest domain/);
    assert.equal(await c.read(`${be2}/physical-device`), undefined);
    // the same guest may have it twice
    const be3 = await backend(1, 51760, dev, 'w', 'phy');
    assert.equal((await runBlock('add', 1, 51760)).code, 0, (await c.read(`${be3}/hotplug-error`)) ?? '');
  } finally {
    await c.rm('/local/domain/0/backend/vbd/1');
    await c.rm('/local/domain/0/backend/vbd/2');
    await E.sim.settle();
    freeLoops(file);
  }
});
