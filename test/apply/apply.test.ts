import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOnce } from '../../src/wire/session.js';
import { loadConfig } from '../../src/config/index.js';
import { runCli, startBench, waitUntil, DOMAINS } from './helpers.js';

// async: the simulator answers from this very process
async function xenstoreLs(env: NodeJS.ProcessEnv, path: string): Promise<string> {
  return (await promisify(execFile)('xenstore-ls', ['-p', path], { env, encoding: 'utf8' })).stdout;
}

test('apply the examples host: libxl layout and perms, one shared template loop, blkback holds, plan empty after', async () => {
  const b = await startBench();
  try {
    const desired = (await loadConfig(b.host.configDir)).desired!;
    assert.ok(desired, 'the example copy is valid');
    const nDisks = desired.domains.reduce((n, d) => n + d.disks.length, 0);
    const events: string[] = [];
    const out = await applyOnce({ configDir: b.host.configDir, onEvent: (e) => events.push(e.type) });
    assert.ok(out.result, 'executed');
    assert.deepEqual(out.result.steps.filter((s) => !s.ok).map((s) => `${s.summary}: ${s.error}`), []);
    assert.equal(out.result.steps.length, nDisks);
    assert.equal(events.filter((e) => e === 'step-done').length, nDisks);

    // libxl's nodes and permissions, seen by the real xenstore-ls
    const web1 = DOMAINS.find((d) => d.name === 'web1')!.domid;
    const be = `/local/domain/0/backend/vbd/${web1}/51712`;
    const beLs = await xenstoreLs(b.env, be);
    for (const [k, v] of [
      ['frontend', `/local/domain/${web1}/device/vbd/51712`],
      ['frontend-id', String(web1)],
      ['online', '1'],
      ['removable', '0'],
      ['bootable', '1'],
      ['dev', 'xvda'],
      ['type', 'phy'],
      ['mode', 'r'],
      ['device-type', 'disk'],
      ['discard-enable', '0'],
      ['xvbd', '1'],
      ['hotplug-status', 'connected'],
    ]) {
      assert.match(beLs, new RegExp(`^${k} = "${v!.replace(/[/.]/g, '\\$&')}"[ .]*\\(n0,r${web1}\\)$`, 'm'), `${k} in\n${beLs}`);
    }
    assert.match(beLs, /^physical-device = "7:[0-9a-f]+"/m);
    assert.match(beLs, /^diskseq = "[1-9][0-9]*"/m);
    assert.match(beLs, /^xvbd-inode = "[0-9]+:[0-9]+"/m);
    const feLs = await xenstoreLs(b.env, `/local/domain/${web1}/device/vbd/51712`);
    for (const [k, v] of [['backend', be], ['backend-id', '0'], ['virtual-device', '51712'], ['device-type', 'disk']]) {
      assert.match(feLs, new RegExp(`^${k} = "${v!.replace(/[/.]/g, '\\$&')}"[ .]*\\(n${web1},r0\\)$`, 'm'), `${k} in\n${feLs}`);
    }
    assert.deepEqual(b.sim.getPerms(be), [{ domid: 0, perm: 'n' }, { domid: web1, perm: 'r' }]);
    assert.deepEqual(b.sim.getPerms(`/local/domain/${web1}/device/vbd/51712`), [{ domid: web1, perm: 'n' }, { domid: 0, perm: 'r' }]);
    assert.equal(b.sim.read(`/libxl/${web1}/device/vbd/51712/backend`), be);
    assert.equal(b.sim.read(`/libxl/${web1}/device/vbd/51712/params`), b.sim.read(`${be}/params`));

    // one loop device for the template, whatever the number of guests using it
    const template = b.host.files.find((f) => f.endsWith('debian-12-template.img'))!;
    const loops = b.loops();
    assert.equal([...loops.values()].filter((f) => f === template).length, 1, JSON.stringify([...loops]));
    const users = desired.domains.flatMap((d) => d.disks.filter((k) => k.source === template).map((k) => ({ d, k })));
    assert.equal(users.length, 3);
    const pdevs = new Set(
      users.map(({ d, k }) => b.sim.read(`/local/domain/0/backend/vbd/${DOMAINS.find((x) => x.name === d.name)!.domid}/${k.devid}/physical-device`)),
    );
    assert.equal(pdevs.size, 1, 'the three backends name the same device');

    // the simulated blkback holds every device; frontends connect
    await b.sim.settle();
    const held = b.sim.backends();
    assert.equal(held.length, nDisks);
    assert.ok(held.every((h) => h.held !== undefined), JSON.stringify(held));
    for (const h of held) assert.equal(await b.sim.frontend(h.domid, h.devid).connect(), 4);
    assert.equal(b.sim.read(`${be}/state`), '4');

    // converged: the plan is empty
    const again = await applyOnce({ configDir: b.host.configDir, dryRun: true });
    assert.deepEqual(again.plan.actions, []);

  } finally {
    await b.cleanup();
  }
});

test('a disk removed from the YAML: a finding without prune, a detach with it; its loop device is freed', async () => {
  // without the db domain: its stand-in block device is itself a loop device, which the planner
  // identifies by its backing file (reported; on a real host the source is an LVM volume)
  const b = await startBench({ withBlockDevice: false });
  try {
    const first = await applyOnce({ configDir: b.host.configDir });
    assert.ok(first.result?.ok, JSON.stringify(first.result?.steps.filter((s) => !s.ok)));
    // a disk removed from the YAML: a detach only with prune; with it, the backend goes and its loop device is freed
    const web2 = DOMAINS.find((d) => d.name === 'web2')!.domid;
    const webFile = join(b.host.configDir, 'web.yaml');
    const text = readFileSync(webFile, 'utf8');
    const web2Doc = text.indexOf('name: web2');
    const scratch = text.indexOf('- vdev: xvdc', web2Doc);
    assert.ok(web2Doc > 0 && scratch > web2Doc, 'web2 has an xvdc in the example');
    const next = text.indexOf('\n  - vdev:', scratch + 1);
    const end = text.indexOf('\n---', scratch);
    const cut = [next, end].filter((i) => i > 0);
    const stop = cut.length ? Math.min(...cut) : text.length;
    writeFileSync(webFile, text.slice(0, scratch) + text.slice(stop + 1));
    const scratchBe = `/local/domain/0/backend/vbd/${web2}/51744`;
    const scratchDev = b.sim.read(`${scratchBe}/physical-device-path`)!;
    const noPrune = await applyOnce({ configDir: b.host.configDir, dryRun: true });
    assert.deepEqual(noPrune.plan.actions, []);
    assert.ok(noPrune.plan.findings.some((f) => f.kind === 'unexpected-backend' && f.backend?.path === scratchBe), JSON.stringify(noPrune.plan.findings));
    const withPrune = await applyOnce({ configDir: b.host.configDir, dryRun: true, prune: true });
    assert.deepEqual(withPrune.plan.actions.map((a) => a.kind), ['detach'], JSON.stringify(withPrune.plan.actions.map((a) => [a.kind, 'reason' in a ? a.reason : ''])));
    // the guest is connected: the detach closes the backend and waits (watch) for the frontend to close
    await b.sim.settle();
    assert.equal(await b.sim.frontend(web2, 51744).connect(), 4);
    const r = await runCli(['apply', '--auto-approve', '--prune', '--config', b.host.configDir], b.env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /detach web2 devid 51744/);
    assert.match(r.out, /done in \d+ ms: removed\n/, 'the frontend closed within the timeout');
    assert.equal(b.sim.read(scratchBe), undefined);
    assert.equal(b.sim.read(`/local/domain/${web2}/device/vbd/51744`), undefined);
    assert.equal(b.sim.read(`/libxl/${web2}/device/vbd/51744`), undefined);
    await waitUntil(`${scratchDev} to be freed`, () => ![...b.loops().keys()].includes(scratchDev.replace('/dev/', '')));
    const final = await applyOnce({ configDir: b.host.configDir, dryRun: true, prune: true });
    assert.deepEqual(final.plan.actions, []);
  } finally {
    await b.cleanup();
  }
});
