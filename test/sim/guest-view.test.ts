// Simulator.asDomain: what a guest's own xenbus connection may do, with the permissions xvbd's layout
// gives a vbd (backend n0,r<fe>; frontend n<fe>,r0). The Xen suite's [guest-perms] compares the same
// operations with a real domU's answers; this is the simulator's side alone, as a table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../src/xenstore/client.js';
import { startSimulator } from '../../src/sim/index.js';
import { backendPerms, frontendPerms, vbdPaths } from '../../src/xenstore/layout.js';

test('a guest reads its backend, cannot change it, writes its frontend, cannot see another guest\'s', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-guestview-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), domains: [{ name: 'a', domid: 3 }, { name: 'b', domid: 4 }] });
  const xs = await connect({ path: sim.socketPath });
  try {
    for (const fe of [3, 4]) {
      const id = { backendDomid: 0, frontendDomid: fe, devid: 51728 };
      const p = vbdPaths(id);
      for (const [k, v] of [['params', '/img'], ['physical-device', '7:0'], ['mode', 'r']] as const) await xs.write(`${p.backend}/${k}`, v);
      await xs.setPerms(p.backend, backendPerms(id));
      for (const k of ['params', 'physical-device', 'mode']) await xs.setPerms(`${p.backend}/${k}`, backendPerms(id));
      await xs.write(`${p.frontend}/state`, '4');
      await xs.setPerms(p.frontend, frontendPerms(id));
      await xs.setPerms(`${p.frontend}/state`, frontendPerms(id));
    }
    const g = sim.asDomain(3);
    const answer = (fn: () => unknown): string => {
      try {
        fn();
        return 'ok';
      } catch (e) {
        return (e as { errno?: string }).errno ?? String(e);
      }
    };
    const own = '/local/domain/0/backend/vbd/3/51728';
    const other = '/local/domain/0/backend/vbd/4/51728';
    const cases: [string, () => unknown, string][] = [
      ['read own backend params', () => g.read(`${own}/params`), 'ok'],
      ['list own backend', () => g.directory(own), 'ok'],
      ['write own backend params', () => g.write(`${own}/params`, '/etc/shadow'), 'EACCES'],
      ['write own backend physical-device', () => g.write(`${own}/physical-device`, '7:1'), 'EACCES'],
      ['rm own backend mode', () => g.rm(`${own}/mode`), 'EACCES'],
      ['write own frontend node', () => g.write('/local/domain/3/device/vbd/51728/x', '1'), 'ok'],
      ['relative path = own domain', () => g.read('device/vbd/51728/x'), 'ok'],
      ['rm own frontend node', () => g.rm('/local/domain/3/device/vbd/51728/x'), 'ok'],
      ['read other frontend', () => g.read('/local/domain/4/device/vbd/51728/state'), 'EACCES'],
      ['write other frontend', () => g.write('/local/domain/4/device/vbd/51728/state', '1'), 'EACCES'],
      ['read other backend', () => g.read(`${other}/params`), 'EACCES'],
      ['list other backend', () => g.directory(other), 'EACCES'],
      ['a missing node under a readable dir', () => g.read(`${own}/nope`), 'ENOENT'],
      ['a missing node under an unreadable dir', () => g.read(`${other}/nope`), 'EACCES'],
    ];
    const got = cases.map(([name, fn]) => `${name}: ${answer(fn)}`);
    assert.deepEqual(got, cases.map(([name, , want]) => `${name}: ${want}`));
    assert.equal(await xs.read(`${own}/params`), '/img', 'nothing the guest was refused changed');
  } finally {
    await xs.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
