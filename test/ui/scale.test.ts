// The live TUI at 1,000 backends across 100 domains: how long from a xenstore change to the screen
// showing it. The simulator runs as its own process (`xvbd sim`), as xenstored would. The backends
// live under a driver domain (30000) that the simulated blkback does not serve, so no device is
// opened and no loop device is made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createElement as h } from 'react';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../../src/xenstore/client.js';
import { LiveApp } from '../../src/ui/LiveApp.js';
import { WorkerSource } from '../../src/ui/worker-source.js';
import { renderTerm } from './harness.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const BE = 30000;
const DOMAINS = 100;
const PER = 10;

test('1,000 backends: first screen, and a xenstore change on screen within a bounded time', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-tui-scale-'));
  const img = join(dir, 'img');
  const cfg = join(dir, 'config');
  mkdirSync(img);
  mkdirSync(cfg);
  const sim = { socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs') };
  const doms = Array.from({ length: DOMAINS }, (_, d) => ['--domain', `vm${String(d).padStart(3, '0')}=${d + 1}`]).flat();
  const child = spawn(process.execPath, [MAIN, 'sim', '--socket', sim.socketPath, '--sysfs', sim.sysfsDir, ...doms], { stdio: 'ignore' });
  const until = Date.now() + 15_000;
  while (!existsSync(sim.socketPath)) {
    if (Date.now() > until || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error('the simulator did not start');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const xs = await connect({ path: sim.socketPath });
  let source: WorkerSource | undefined;
  let term: ReturnType<typeof renderTerm> | undefined;
  try {
    const yaml: string[] = [`apiVersion: xvbd/v1\nkind: Policy\ndefaults:\n  backendDomain: ${BE}\n`];
    for (let d = 0; d < DOMAINS; d++) {
      const domid = d + 1;
      const name = `vm${String(d).padStart(3, '0')}`;
      const disks: string[] = [];
      await xs.transaction(async (tx) => {
        const w: Promise<void>[] = [];
        for (let i = 0; i < PER; i++) {
          const n = d * PER + i;
          const devid = 51712 + i * 16;
          const vdev = `xvd${String.fromCharCode(97 + i)}`;
          const src = join(img, `${name}-${vdev}.img`);
          writeFileSync(src, '');
          const st = statSync(src);
          disks.push(`  - vdev: ${vdev}\n    file: ${src}\n`);
          const fe = `/local/domain/${domid}/device/vbd/${devid}`;
          const be = `/local/domain/${BE}/backend/vbd/${domid}/${devid}`;
          const nodes: [string, string][] = [
            [`${fe}/backend`, be], [`${fe}/backend-id`, String(BE)], [`${fe}/state`, '4'], [`${fe}/virtual-device`, String(devid)],
            [`${be}/frontend`, fe], [`${be}/frontend-id`, String(domid)], [`${be}/online`, '1'], [`${be}/state`, '4'],
            [`${be}/params`, src], [`${be}/mode`, 'w'], [`${be}/type`, 'phy'], [`${be}/physical-device`, `7:${(0x400 + n).toString(16)}`],
            [`${be}/physical-device-path`, `/dev/loop${4096 + n}`], [`${be}/diskseq`, String(900000 + n)], [`${be}/xvbd`, '1'],
            [`${be}/xvbd-inode`, `${st.dev}:${st.ino}`], [`${be}/hotplug-status`, 'connected'],
          ];
          for (const [k, v] of nodes) w.push(tx.write(k, v));
        }
        await Promise.all(w);
      });
      yaml.push(`---\napiVersion: xvbd/v1\nkind: Domain\nname: ${name}\ndisks:\n${disks.join('')}`);
    }
    writeFileSync(join(cfg, 'host.yaml'), yaml.join(''));

    // As the command runs it: observations in a worker thread.
    source = new WorkerSource({ configDir: cfg, socket: sim.socketPath, xenBackendSysfs: sim.sysfsDir });
    const t0 = performance.now();
    term = renderTerm(h(LiveApp, { source, options: { periodMs: 0, debounceMs: 50, minIntervalMs: 100 } }), 160, 50);
    const first = await term.waitFor(/disks 1000:/, 60_000);
    const firstMs = performance.now() - t0;
    assert.match(first, /domains 100\/100 running/);
    const observeMs = Number(/observed \d\d:\d\d:\d\d \((\d+) ms\)/.exec(first)?.[1]);
    // Let the initial firings of the 1,000 frontend watches settle.
    await new Promise((r) => setTimeout(r, 1500));

    const lat: number[] = [];
    for (let i = 0; i < 5; i++) {
      const tag = `bench-${i}-${Date.now()}`;
      const t = performance.now();
      await xs.write(`/local/domain/${BE}/error/backend/vbd/51/51712/error`, `22 ${tag}`);
      await term.waitFor(tag, 20_000);
      lat.push(performance.now() - t);
    }
    // Keys while observations run back to back (a change every 100 ms): the UI thread stays free.
    const klat: number[] = [];
    const churn = setInterval(() => void xs.write(`/local/domain/${BE}/error/backend/vbd/52/51712/error`, `x ${Date.now()}`).catch(() => undefined), 100);
    try {
      for (let i = 0; i < 10; i++) {
        const before = term.stdout.last().split('\n').findIndex((l) => l.startsWith('>'));
        const t = performance.now();
        term.stdin.write(i % 2 ? 'k' : 'j');
        await term.waitFor((f) => f.split('\n').findIndex((l) => l.startsWith('>')) !== before, 10_000);
        klat.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 137));
      }
    } finally {
      clearInterval(churn);
    }
    klat.sort((a, b) => a - b);
    lat.sort((a, b) => a - b);
    const med = lat[2]!;
    process.stdout.write(
      `# tui at 1,000 backends: first screen ${firstMs.toFixed(0)} ms (observe+plan ${observeMs} ms); xenstore change -> screen median ${med.toFixed(0)} ms, max ${lat[4]!.toFixed(0)} ms; key -> screen under refresh churn median ${klat[5]!.toFixed(0)} ms, max ${klat[9]!.toFixed(0)} ms\n`,
    );
    // Figures only: every change and key above had to reach the screen (waitFor), how fast is not asserted.
    const f = term.stdout.last();
    assert.match(f, /✖ backend-error \[vm050\/xvda\]/);
  } finally {
    await term?.close();
    await source?.close();
    await xs.close().catch(() => undefined);
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
});
