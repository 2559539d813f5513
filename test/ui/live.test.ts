// The live TUI end to end: the simulator (real wire protocol) with the example guests, a copy of
// examples/host, real loop devices, the keeper; LiveApp in a fake terminal. What it shows must
// follow xenstore watch events and config-dir changes by itself (no periodic refresh here), and
// `a` + `y` must really apply. Cleanup leaves no loop device and no process behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createElement as h } from 'react';
import { LiveApp } from '../../src/ui/LiveApp.js';
import { XenSource } from '../../src/ui/xen-source.js';
import { makeApply } from '../../src/ui/apply.js';
import { startBench } from '../apply/helpers.js';
import type { LiveSource } from '../../src/ui/source.js';
import { renderTerm } from './harness.js';

function rowOf(frame: string, needle: string): string {
  return frame.split('\n').find((l) => l.includes(needle)) ?? '';
}

test('live: plan shown, apply from the keyboard, watches and config changes update the screen', { timeout: 90_000 }, async () => {
  const bench = await startBench({ withBlockDevice: false });
  const configDir = bench.host.configDir;
  // Never prune here: other tests' xvbd loop devices share this host, and prune frees every unused
  // loop device of xvbd's, not only this test's.
  assert.match(readFileSync(join(configDir, 'policy.yaml'), 'utf8'), /^prune: false$/m);
  const source = new XenSource({
    configDir,
    socket: bench.sim.socketPath,
    xenBackendSysfs: bench.sim.sysfsDir,
    apply: makeApply(configDir),
  });
  const term = renderTerm(h(LiveApp, { source, options: { periodMs: 0, debounceMs: 30, minIntervalMs: 50 } }), 170, 70);
  try {
    // 1. The first observation: every disk of the running guests is to attach.
    let f = await term.waitFor(/Pending plan \(\d+\)/, 15_000);
    const n = Number(/Pending plan \((\d+)\)/.exec(f)![1]);
    assert.ok(n >= 6, `expected the example disks to attach, got ${n}:\n${f}`);
    assert.match(f, /\+ attach web1\/xvda <- \S+debian-12-template\.img \(ro, new loop device\)/);
    assert.match(f, new RegExp(`xenstore ${bench.sim.socketPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    assert.equal(bench.loops().size, 0, 'observing made no loop device');
    // the header says whether a daemon answers on the control socket (none in this test's run dir)
    assert.match(f, /^(daemon not running \(xvbd reconcile --watch\)|daemon pid \d+)/m);

    // 2. a, y: the apply runs (the real executor, the keeper holds the fds); the screen shows its log.
    await term.press('a');
    await term.waitFor(/Apply \d+ actions now\? \(y\/n\)/);
    await term.press('y');
    f = await term.waitFor(/Apply complete: \d+ done, 0 failed\./, 30_000);
    f = await term.waitFor('Pending plan (0)', 10_000);
    // One loop device for the read-only template, shared by web1, web2 and build.
    const tmpl = rowOf(f, 'debian-12-template.img');
    const m = /(loop\d+)\s+\d+\s+(\d+)/.exec(tmpl);
    assert.ok(m, tmpl);
    assert.equal(Number(m[2]), 3, `shared by 3: ${tmpl}`);
    assert.ok(bench.loops().size >= 4, 'loop devices exist for real');

    // 3. A guest connects its disk: the backend and frontend go to 4; the row turns healthy by itself.
    const before = rowOf(f, 'web1-private.img');
    assert.match(before, /progressing/, before);
    await bench.sim.frontend(1, 51728).connect();
    f = await term.waitFor(/web1-private\.img.*healthy\s+loop\d+\s+\d+\s+1\s+4 Conn\s+4 Conn/, 10_000);

    // 4. The guest breaks its ring: blkback's error shows as degraded with the reason.
    await bench.sim.frontend(2, 51728).connectWithoutRing();
    f = await term.waitFor(/↳ degraded: .*event-channel/, 10_000);
    assert.match(rowOf(f, 'web2-private.img'), /degraded/);
    assert.match(f, /✖ backend-error \[web2\/xvdb\]/);

    // 5. The config changes (chokidar): web2 goes. Without prune its backends are drift, not actions.
    const web = join(configDir, 'web.yaml');
    const text = readFileSync(web, 'utf8');
    const i = text.indexOf('name: web2');
    const start = text.lastIndexOf('---', i);
    assert.ok(start > 0, 'web.yaml has a second document for web2');
    writeFileSync(web, text.slice(0, start));
    f = await term.waitFor(/! unexpected-backend \[web2\/xvda\]/, 15_000);
    assert.match(f, /! unexpected-backend \[web2\/xvdb\]/);
    assert.match(f, /Pending plan \(0\)/);
    assert.match(rowOf(f, 'web2-scratch.img'), /out-of-sync/);
    // a says the plan is empty and points at p; p lists what apply --prune would detach (n: not here)
    f = await term.press('a');
    assert.match(f, /Nothing to apply: the plan is empty\. With prune: \d+ actions? \(p shows them\)\./);
    await term.press('p');
    f = await term.waitFor(/Apply with prune: \d+ actions? now\? \(y\/n\)/);
    assert.match(f, /Apply with prune \((\d+) to detach, 0 to replace/);
    assert.ok(Number(/\((\d+) to detach/.exec(f)![1]) >= 2, f);
    assert.match(f, /- detach web2 devid 51712 /);
    assert.match(f, /- detach web2 devid 51728 /);
    f = await term.press('n');
    assert.match(f, /Apply cancelled\./);

    // 6. An invalid file: the last good config stays on screen with a warning; fixing it clears it.
    writeFileSync(join(configDir, 'zz-bad.yaml'), 'apiVersion: xvbd/v1\nkind: Domain\nname: bad\ndisks: 7\n');
    f = await term.waitFor('config invalid, showing the last good one', 15_000);
    assert.match(f, /zz-bad\.yaml:4:\d+:/);
    assert.match(f, /web1-private\.img/);
    unlinkSync(join(configDir, 'zz-bad.yaml'));
    await term.waitFor((s: string) => !s.includes('config invalid') && s.includes('unexpected-backend'), 15_000);
  } finally {
    await term.close();
    await source.close();
    await bench.cleanup();
  }
});

test('live: no xenstore -> the error is shown, r retries, the UI stays responsive', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-tui-'));
  const source = new XenSource({ configDir: join(dir, 'config'), socket: join(dir, 'none.sock') });
  mkdirSync(join(dir, 'config'));
  writeFileSync(join(dir, 'config', 'a.yaml'), 'apiVersion: xvbd/v1\nkind: Domain\nname: a\ndisks: []\n');
  let loads = 0;
  const counting: LiveSource = {
    host: source.host,
    socket: source.socket,
    configDir: source.configDir,
    load: () => {
      loads++;
      return source.load();
    },
    subscribe: (cb) => source.subscribe(cb),
    close: () => source.close(),
  };
  const term = renderTerm(h(LiveApp, { source: counting, options: { periodMs: 0 } }), 120, 30);
  try {
    const f = await term.waitFor(/observe failed: .*none\.sock/, 10_000);
    assert.match(f, /r refresh/);
    const n = loads;
    await term.press('r', 500);
    assert.equal(loads, n + 1);
    const exited = term.instance.waitUntilExit();
    await term.press('q');
    await exited;
  } finally {
    await term.close();
    await source.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
