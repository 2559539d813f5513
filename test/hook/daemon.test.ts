import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backendPerms, frontendPerms, vbdPaths } from '../../src/apply/layout.js';
import { cliMain, runCli, startBench, waitUntil } from '../apply/helpers.js';

test('with the daemon listening, the hook has the daemon serve the backend and release it', async () => {
  const b = await startBench({ withBlockDevice: false });
  // hook-only policy: the daemon's own passes create nothing, only serve what the toolstack made
  const pol = join(b.host.configDir, 'policy.yaml');
  writeFileSync(pol, readFileSync(pol, 'utf8').replace(/^serve: both$/m, 'serve: hook'));
  const daemon = spawn(process.execPath, [cliMain, 'reconcile', '--watch', '--resync', '0'], { env: b.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  daemon.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  try {
    await waitUntil('the daemon control socket', () => existsSync(join(b.runDir, 'control.sock')), 15_000);
    const web1 = 1;
    const id = { backendDomid: 0, frontendDomid: web1, devid: 51728 };
    const p = vbdPaths(id);
    const priv = b.host.files.find((f) => f.endsWith('web1-private.img'))!;
    await b.xs.transaction(async (tx) => {
      await tx.mkdir(p.frontend);
      await tx.setPerms(p.frontend, frontendPerms(id));
      for (const [k, v] of Object.entries({ backend: p.backend, 'backend-id': '0', state: '1', 'virtual-device': '51728', 'device-type': 'disk' })) {
        await tx.write(`${p.frontend}/${k}`, v);
      }
      await tx.mkdir(p.backend);
      await tx.setPerms(p.backend, backendPerms(id));
      for (const [k, v] of Object.entries({ frontend: p.frontend, params: priv, script: '/usr/local/bin/xvbd-hook', 'frontend-id': '1', online: '1', state: '1', dev: 'xvdb', type: 'phy', mode: 'w', 'device-type': 'disk' })) {
        await tx.write(`${p.backend}/${k}`, v);
      }
    });
    const env = { ...b.env, XENBUS_PATH: `backend/vbd/${web1}/51728` };
    const r = await runCli(['hook', 'add'], env);
    assert.equal(r.code, 0, r.out + log);
    assert.match(r.out, /served by the daemon/);
    const dev = b.sim.read(`${p.backend}/physical-device-path`)!;
    assert.match(dev, /^\/dev\/loop\d+$/);
    assert.equal(b.sim.read(`${p.backend}/xvbd`), '1');
    assert.equal(existsSync(join(b.runDir, 'keeper.sock')), false, 'the daemon holds the fd, no keeper');
    const rm = await runCli(['hook', 'remove'], env);
    assert.equal(rm.code, 0, rm.out);
    assert.match(rm.out, /released by the daemon/);
  } finally {
    if (daemon.exitCode === null && daemon.signalCode === null) {
      const exited = new Promise((res) => daemon.once('exit', res));
      daemon.kill('SIGTERM');
      await exited;
    }
    await b.cleanup();
  }
});
