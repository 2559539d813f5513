// `npm run bench -- daemon [--json] [--domains D] [--disks N] [--passes P] [--edits E] [--no-alt] [--no-cache]
// [--systemd]`: the daemon (`xvbd reconcile --watch`, a real process; without systemd, as a new user starts
// it: both keepers hold the fds; --systemd: under the tests' fake systemd, the fd store holds them)
// against the simulator with real loop devices, D domains x N disks, in one run:
//  - first converge: daemon start until its first pass has attached every disk;
//  - no-op passes (asked over the control socket, as `xvbd reconcile` does): p50/p95 of the pass itself
//    and of the round trip;
//  - edit to converged: a disk added to one domain's YAML (an atomic rename, as git does) until its backend
//    has physical-device, p50/p95 over E edits;
//  - the daemon's RSS after the first pass and after P no-op passes.
// The alternative, in the same run: the same daemon with its observation cache off
// (XVBD_OBSERVE_CACHE=0: a full observation every pass), fewer passes and edits (each costs a full pass).
// Frees every loop device it made (the harness removes the backends, the holders let go, autoclear).
// --systemd at 10,000 disks needs more than 20,000 fds in this process (the simulated blkback and the fake
// systemd's store each hold one per disk): run that size without --systemd (the keepers hold them).
import { mkdirSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cliMain, DaemonProc, Host } from '../test/daemon/harness.js';
import { vdevToDevid } from '../src/config/index.js';

interface Figures {
  disks: number;
  domains: number;
  cache: boolean;
  first_converge_ms: number;
  first_pass_ms: number;
  noop_pass_p50_ms: number;
  noop_pass_p95_ms: number;
  noop_roundtrip_p50_ms: number;
  edit_converged_p50_ms: number;
  edit_converged_p95_ms: number;
  edits: number;
  passes: number;
  rss_mb: number;
  rss_mb_after_1000_passes: number;
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!;
}

const r1 = (x: number) => Math.round(x * 10) / 10;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

/** vdev names xvda.. xvdz, then xvdaa.. (the disk index i of a domain). */
function vdev(i: number): string {
  const a = 'abcdefghijklmnopqrstuvwxyz';
  return i < 26 ? `xvd${a[i]}` : `xvd${a[Math.floor(i / 26) - 1]}${a[i % 26]}`;
}

function domainYaml(h: Host, name: string, disks: number): string {
  const lines = ['apiVersion: xvbd/v1', 'kind: Domain', `name: ${name}`, 'disks:'];
  for (let k = 0; k < disks; k++) lines.push(`  - vdev: ${vdev(k)}`, `    file: ${join(h.imgDir, `${name}-${k}.img`)}`, '    mode: rw');
  return lines.join('\n') + '\n';
}

function writeDomain(h: Host, name: string, disks: number): void {
  for (let k = 0; k < disks; k++) {
    const p = join(h.imgDir, `${name}-${k}.img`);
    writeFileSync(p, '', { flag: 'a' });
    truncateSync(p, 1 << 20);
  }
  const tmp = join(h.cfgDir, `.${name}.yaml.tmp`);
  writeFileSync(tmp, domainYaml(h, name, disks));
  renameSync(tmp, join(h.cfgDir, `${name}.yaml`));
}

async function waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > until) throw new Error(`bench daemon: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function measure(o: { systemd: boolean; nodeOptions: string[]; domains: number; disks: number; passes: number; edits: number; cache: boolean; log: (s: string) => void }): Promise<Figures> {
  const doms = Array.from({ length: o.domains }, (_, i) => ({ name: `bench${i + 1}`, domid: i + 1 }));
  const h = await Host.start(doms);
  try {
    h.policy({ prune: false });
    mkdirSync(h.imgDir, { recursive: true });
    for (const d of doms) writeDomain(h, d.name, o.disks);
    const total = o.domains * o.disks;
    const env = o.cache ? {} : { XVBD_OBSERVE_CACHE: '0' };
    const t0 = performance.now();
    const args = [...o.nodeOptions, cliMain, 'reconcile', '--watch', '--config', h.cfgDir, '--resync', '0'];
    const child = o.systemd
      ? h.sd.spawnService(process.execPath, args, { ...h.env, ...env })
      : spawn(process.execPath, args, { env: { ...h.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = new DaemonProc(child, join(h.runDir, 'control.sock'));
    h.daemons.push(proc);
    const lastDevid = vdevToDevid(vdev(o.disks - 1));
    // converged: every disk's backend has its device (the last of each domain is written last by a batch)
    await waitUntil(() => doms.every((d) => h.sim.read(`${h.backendPath(d.domid, lastDevid)}/physical-device`) !== undefined), 600_000, 'the first converge');
    const firstConverge = performance.now() - t0;
    o.log(`  converged after ${Math.round(firstConverge)} ms`);
    // ping, not status: at 10,000 disks status (every held device) is longer than a control reply may be
    await h.waitFor('the first pass', async () => Number((await h.request('ping')).finished ?? 0) >= 1, 600_000);
    const firstLine = proc.passes().find((l) => / pass 1 \(/.test(l)) ?? '';
    const firstPass = Number(/; ([\d.]+) ms$/.exec(firstLine)?.[1] ?? NaN);
    // the passes its own writes triggered
    await new Promise((r) => setTimeout(r, 1500));
    const pid = proc.child.pid!;
    const rssFirst = rssMb(pid);
    o.log(`  first converge ${Math.round(firstConverge)} ms (pass 1: ${Math.round(firstPass)} ms), RSS ${rssFirst} MB`);

    const passMs: number[] = [];
    const rtMs: number[] = [];
    for (let i = 0; i < o.passes; i++) {
      const a = performance.now();
      const r = await h.request('reconcile', { reason: 'bench' });
      rtMs.push(performance.now() - a);
      const p = r.pass as { durationMs: number; actions: number };
      if (p.actions !== 0) throw new Error(`bench daemon: a no-op pass planned ${p.actions} actions`);
      passMs.push(p.durationMs);
    }
    const rssAfter = rssMb(pid);
    const mem = ((await h.request('status').catch(() => ({}) as Record<string, unknown>)).memory ?? {}) as { heapUsed?: number; heapTotal?: number };
    const heapMb = (x: number | undefined) => (x === undefined ? '?' : String(Math.round(x / 104857.6) / 10));
    o.log(`  ${o.passes} no-op passes: p50 ${r1(pct(passMs, 0.5))} ms, p95 ${r1(pct(passMs, 0.95))} ms; RSS ${rssAfter} MB (V8 heap ${heapMb(mem.heapUsed)} used of ${heapMb(mem.heapTotal)} MB)`);

    const editMs: number[] = [];
    for (let i = 0; i < o.edits; i++) {
      const d = doms[i % doms.length]!;
      const n = o.disks + 1 + Math.floor(i / doms.length);
      const path = `${h.backendPath(d.domid, vdevToDevid(vdev(n - 1)))}/physical-device`;
      for (let k = n - 1; k < n; k++) {
        const p = join(h.imgDir, `${d.name}-${k}.img`);
        writeFileSync(p, '', { flag: 'a' });
        truncateSync(p, 1 << 20);
      }
      const tmp = join(h.cfgDir, `.${d.name}.yaml.tmp`);
      writeFileSync(tmp, domainYaml(h, d.name, n));
      const a = performance.now();
      renameSync(tmp, join(h.cfgDir, `${d.name}.yaml`));
      await waitUntil(() => h.sim.read(path) !== undefined, 60_000, `edit ${i + 1}`);
      editMs.push(performance.now() - a);
      // the pass its own attach triggers, before the next edit
      await new Promise((r) => setTimeout(r, 250));
    }
    o.log(`  ${o.edits} edits: p50 ${r1(pct(editMs, 0.5))} ms, p95 ${r1(pct(editMs, 0.95))} ms`);
    return {
      disks: total,
      domains: o.domains,
      cache: o.cache,
      first_converge_ms: Math.round(firstConverge),
      first_pass_ms: Math.round(firstPass),
      noop_pass_p50_ms: r1(pct(passMs, 0.5)),
      noop_pass_p95_ms: r1(pct(passMs, 0.95)),
      noop_roundtrip_p50_ms: r1(pct(rtMs, 0.5)),
      edit_converged_p50_ms: r1(pct(editMs, 0.5)),
      edit_converged_p95_ms: r1(pct(editMs, 0.95)),
      edits: o.edits,
      passes: o.passes,
      rss_mb: rssFirst,
      rss_mb_after_1000_passes: rssAfter,
    };
  } finally {
    await h.cleanup();
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      domains: { type: 'string', default: '100' },
      disks: { type: 'string', default: '10' },
      passes: { type: 'string', default: '1000' },
      edits: { type: 'string', default: '50' },
      'alt-passes': { type: 'string', default: '50' },
      'alt-edits': { type: 'string', default: '20' },
      'no-alt': { type: 'boolean', default: false },
      'no-cache': { type: 'boolean', default: false },
      systemd: { type: 'boolean', default: false },
      'daemon-node-option': { type: 'string', multiple: true, default: [] },
    },
  });
  const domains = Number(a.domains);
  const disks = Number(a.disks);
  if (!(domains >= 1 && domains <= 2000 && disks >= 1 && disks <= 200)) {
    process.stderr.write('bench daemon: --domains 1..2000, --disks 1..200 (per domain)\n');
    return 2;
  }
  const log = (s: string) => {
    if (!a.json) process.stdout.write(s + '\n');
  };
  log(`daemon: ${domains} domains x ${disks} disks = ${domains * disks} disks, real loop devices, ${a.systemd ? "systemd's fd store (the tests' fake systemd)" : 'no systemd (both keepers hold)'}`);
  let main: Figures | undefined;
  if (!a['no-cache']) {
    log('xvbd (observation cache):');
    main = await measure({ systemd: a.systemd, nodeOptions: a['daemon-node-option'], domains, disks, passes: Number(a.passes), edits: Number(a.edits), cache: true, log });
  }
  let alt: Figures | undefined;
  if (!a['no-alt'] || a['no-cache']) {
    log('the alternative (XVBD_OBSERVE_CACHE=0: a full observation every pass):');
    alt = await measure({
      systemd: a.systemd,
      nodeOptions: a['daemon-node-option'],
      domains,
      disks,
      passes: a['no-cache'] ? Number(a.passes) : Number(a['alt-passes']),
      edits: a['no-cache'] ? Number(a.edits) : Number(a['alt-edits']),
      cache: false,
      log,
    });
  }
  const primary = main ?? alt!;
  const ratio = (k: keyof Figures) => (main && alt ? r1((alt[k] as number) / (main[k] as number)) : undefined);
  const out = {
    ...primary,
    ...(main && alt
      ? {
          alternative: alt,
          first_converge_ratio: ratio('first_converge_ms'),
          noop_pass_ratio: ratio('noop_pass_p50_ms'),
          edit_converged_ratio: ratio('edit_converged_p50_ms'),
        }
      : {}),
  };
  if (a.json) {
    process.stdout.write(JSON.stringify(out) + '\n');
    return 0;
  }
  const rows: [string, keyof Figures, string][] = [
    ['first converge (ms)', 'first_converge_ms', '<= 3000'],
    ['no-op pass p50 (ms)', 'noop_pass_p50_ms', '<= 30'],
    ['no-op pass p95 (ms)', 'noop_pass_p95_ms', ''],
    ['edit -> converged p50 (ms)', 'edit_converged_p50_ms', '<= 100'],
    ['edit -> converged p95 (ms)', 'edit_converged_p95_ms', '<= 250'],
    ['RSS after the first pass (MB)', 'rss_mb', '<= 120'],
    ['RSS after the passes (MB)', 'rss_mb_after_1000_passes', '<= 120, no growth'],
  ];
  log('');
  log(`${'figure'.padEnd(32)}${'xvbd'.padStart(10)}${'no cache'.padStart(10)}${'ratio'.padStart(8)}  target`);
  for (const [label, k, target] of rows) {
    const f = (x: Figures | undefined) => (x ? String(x[k]) : '-').padStart(10);
    log(`${label.padEnd(32)}${f(main)}${f(alt)}${String(ratio(k) ?? '-').padStart(8)}  ${target}`);
  }
  if (main && alt) log(`(passes: ${main.passes} vs ${alt.passes}; edits: ${main.edits} vs ${alt.edits})`);
  return 0;
}
