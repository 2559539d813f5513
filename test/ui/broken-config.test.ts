// The TUI's source with no valid config (invalid from the start, or the directory missing): the
// observed host all the same (xvbd's backends as rows, the findings that need no desired state, no
// actions), with the config's trouble as the header's warning; the screen shows both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createElement as h } from 'react';
import { startSimulator } from '../../src/sim/index.js';
import { connect } from '../../src/xenstore/client.js';
import { LiveApp } from '../../src/ui/LiveApp.js';
import { XenSource } from '../../src/ui/xen-source.js';
import { renderTerm } from './harness.js';

test('tui source: an invalid or missing config still shows the observed host, the trouble on top', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-tui-broken-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: [{ name: 'web', domid: 3 }] });
  const xs = await connect({ path: sim.socketPath });
  const sources: XenSource[] = [];
  try {
    // a backend of xvbd's whose loop device is gone: a broken disk, whatever the config says
    const be = '/local/domain/0/backend/vbd/3/51712';
    await xs.write('/local/domain/3/device/vbd/51712/backend', be);
    await xs.write('/local/domain/3/device/vbd/51712/state', '4');
    for (const [k, v] of Object.entries({ frontend: '/local/domain/3/device/vbd/51712', 'frontend-id': '3', online: '1', state: '4', params: join(dir, 'web.img'), mode: 'w', 'physical-device': '7:fffff', diskseq: '999999999', xvbd: '1', 'xvbd-inode': '1:2' })) {
      await xs.write(`${be}/${k}`, v);
    }
    const cfg = join(dir, 'config');
    mkdirSync(cfg);
    writeFileSync(join(cfg, 'web.yaml'), 'apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks: 7\n');
    for (const [configDir, warning] of [
      [cfg, /^showing the observed host only: config .*config is invalid: .*web\.yaml:4:8: `disks` must be a list/],
      [join(dir, 'missing'), /^showing the observed host only: config directory .*missing is missing$/],
    ] as const) {
      const s = new XenSource({ configDir, socket: sim.socketPath, xenBackendSysfs: sim.sysfsDir });
      sources.push(s);
      const o = await s.load();
      assert.match(o.warning ?? '', warning);
      assert.deepEqual(o.plan.actions, [], 'nothing is planned without a desired state');
      assert.deepEqual(o.plan.disks.map((d) => `${d.domain} ${d.vdev} ${d.sync}`), ['web xvda unknown']);
      assert.deepEqual(o.plan.findings.map((f) => `${f.kind} ${f.severity}`), ['loop-reused error']);
    }
    const term = renderTerm(h(LiveApp, { source: sources[0]!, options: { periodMs: 0 } }), 160, 30);
    try {
      const f = await term.waitFor((s: string) => s.includes('showing the observed host only') && s.includes('loop-reused'), 15_000);
      assert.match(f, /web\s+xvda/);
    } finally {
      await term.close();
    }
  } finally {
    await Promise.all(sources.map((s) => s.close()));
    await xs.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
