// `xvbd demo`: the README's main job on a laptop, no Xen needed. A simulator with the example guests,
// a copy of examples/host pointing at sparse images in a temp dir, apply, status, simulated guests
// connecting, the shared read-only loop device; then everything it made is removed (also on Ctrl-C).
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { keeperLists } from '../hold/keeper-client.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { loadConfig } from '../config/index.js';
import { listLoops } from '../linux/index.js';
import { snapshot } from '../wire/snapshot.js';
import { renderPlan } from '../render/plan.js';
import { renderStatus } from '../render/status.js';
import { startSimulator, type Simulator } from '../sim/index.js';
import type { XsClient } from '../xenstore/api.js';
import { connect } from '../xenstore/client.js';
import { detachBackend, type StepEvent } from '../apply/execute.js';
import { selfHolder } from '../hold/holder.js';
import { prepareExampleHost, type ExampleHost } from './example-host.js';
import { wire } from '../wire/wire.js';
import { applyOnce } from '../wire/session.js';

export interface DemoOptions {
  /** Wait for Enter before cleaning up (default: when stdin is a terminal). */
  wait?: boolean;
  color?: boolean;
  out?: (s: string) => void;
}

/** A loop device as recorded: its name is only valid together with its diskseq. */
interface LoopSeen {
  name: string;
  diskseq: string;
}

/** The bound loop devices whose backing file lies under dir, with their diskseq. */
function loopsUnder(dir: string): LoopSeen[] {
  const out: LoopSeen[] = [];
  for (const n of readdirSync('/sys/block')) {
    if (!/^loop\d+$/.test(n)) continue;
    try {
      const f = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim();
      const diskseq = readFileSync(`/sys/block/${n}/diskseq`, 'utf8').trim();
      // the device may have been re-bound between the two reads: trust the pair only if it is still that file
      if (f.startsWith(dir + '/') && readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim() === f) out.push({ name: n, diskseq });
    } catch {
      // unbound
    }
  }
  return out;
}

/** The recorded device is still bound: same name, same diskseq, a backing file. */
function stillBound(l: LoopSeen): boolean {
  try {
    return readFileSync(`/sys/block/${l.name}/diskseq`, 'utf8').trim() === l.diskseq && existsSync(`/sys/block/${l.name}/loop/backing_file`);
  } catch {
    return false;
  }
}

// Long: the demo is a script, read top to bottom in the order of the walkthrough it prints.
export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  const out = opts.out ?? ((s: string) => process.stdout.write(s));
  const say = (s = '') => out(s + '\n');
  const h1 = (s: string) => say(`\n=== ${s} ${'='.repeat(Math.max(3, 72 - s.length))}`);
  const work = mkdtempSync(join(tmpdir(), 'xvbd-demo-'));
  let host: ExampleHost | undefined;
  let sim: Simulator | undefined;
  let xs: XsClient | undefined;
  const saved = { ...process.env };
  let cleaned: Promise<void> | undefined;

  const cleanup = (): Promise<void> =>
    (cleaned ??= (async () => {
      h1('Cleaning up: detach every backend, stop the simulator, remove the files');
      // What the demo made, recorded before anything goes: (name, diskseq), the stand-in block device apart.
      const made = host ? loopsUnder(host.imagesDir).filter((l) => `/dev/${l.name}` !== host!.blockDev) : [];
      try {
        if (xs && host) {
          const desired = (await loadConfig(host.configDir)).desired;
          const policy = { ...desired!.policy, detachTimeoutMs: 2000 };
          const w = wire();
          const ctx = { xs, devices: w.devices(w.registry()), policy, holder: selfHolder };
          for (const fe of await xs.directory('/local/domain/0/backend/vbd')) {
            for (const devid of await xs.directory(`/local/domain/0/backend/vbd/${fe}`)) {
              const path = `/local/domain/0/backend/vbd/${fe}/${devid}`;
              const r = await detachBackend(ctx, { path, backendDomid: 0, frontendDomid: Number(fe), devid: Number(devid) });
              say(`  - ${path}: ${r}`);
            }
          }
          await sim?.settle();
          // the keepers see the backends go through their xenstore watches: let it finish before the
          // simulator (its xenstore) goes away
          const deadline = Date.now() + 5000;
          while (Date.now() < deadline) {
            const held = (await keeperLists(join(work, 'run'))).reduce((n, k) => n + k.held.length, 0);
            if (held === 0) break;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      } catch (err) {
        say(`  cleanup: ${(err as Error).message}`);
      } finally {
        await xs?.close().catch(() => {});
        await sim?.close().catch(() => {});
        if (host) {
          // autoclear frees each device once the keepers and blkback let go
          const deadline = Date.now() + 8000;
          while (Date.now() < deadline && made.some(stillBound)) {
            await new Promise((r) => setTimeout(r, 50));
          }
          host.cleanup();
          rmSync(work, { recursive: true, force: true });
          const recorded = [...made];
          if (host.blockDev && host.blockDevDiskseq !== undefined) {
            recorded.push({ name: host.blockDev.replace(/^\/dev\//, ''), diskseq: host.blockDevDiskseq });
          }
          const left = recorded.filter(stillBound);
          if (left.length === 0) say('  no loop device left behind; temp files removed.');
          else say(`  WARNING: still bound: ${left.map((l) => `${l.name} (diskseq ${l.diskseq})`).join(', ')}`);
        }
        process.env = saved;
      }
    })());

  const onSig = () => {
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    h1('1. A host: the example config, sparse images, a simulated xenstore with the guests');
    host = prepareExampleHost({ workDir: join(work, 'host') });
    const loaded = await loadConfig(host.configDir);
    if (!loaded.desired) throw new Error('the example config copy is invalid');
    const desired = loaded.desired;
    say(`config:  ${host.configDir} (a copy of examples/host; /var/lib/xvbd/images -> ${host.imagesDir})`);
    if (host.blockDev) say(`block:   /dev/vg0/db-data (an LVM volume on a real host) -> ${host.blockDev} (made with losetup)`);
    say(`images:  ${host.files.length} sparse files`);
    const domains = desired.domains.map((d, i) => ({ name: d.name, domid: i + 1 }));
    sim = await startSimulator({ socketPath: join(work, 'xenstored.sock'), sysfsDir: join(work, 'sysfs'), domains });
    process.env.XENSTORED_PATH = sim.socketPath;
    process.env.XVBD_XEN_BACKEND_SYSFS = sim.sysfsDir;
    process.env.XVBD_RUN_DIR = join(work, 'run');
    process.env.XVBD_HOOK_SCRIPT = '';
    process.env.XVBD_KEEPER_XS_LOST_EXIT_MS = '15000'; // if the demo is killed, its keepers let go too
    // its loop devices are tagged as this demo's (notes/conventions.md): never counted, shared or freed
    // as another xvbd's on this host, nor theirs as its own
    if (!process.env.XVBD_INSTANCE) process.env.XVBD_INSTANCE = `demo-${(process.pid % 1_000_000).toString(36)}`;
    say(`xenstore: simulator on ${sim.socketPath} (try: XENSTORED_PATH=${sim.socketPath} xenstore-ls)`);
    say(`domains: ${domains.map((d) => `${d.name} (${d.domid})`).join(', ')}`);
    xs = await connect({ path: sim.socketPath });

    h1('2. xvbd apply --auto-approve');
    const onEvent = (e: StepEvent) => {
      if (e.type === 'step-done') say(`  [${e.index + 1}] ${e.summary}\n      ${e.detail ?? ''} (${e.ms.toFixed(1)} ms)`);
      if (e.type === 'step-failed') say(`  [${e.index + 1}] FAILED ${e.summary}: ${e.error}`);
    };
    const applied = await applyOnce({
      configDir: host.configDir,
      xs,
      approve: async (plan) => {
        out(renderPlan(plan, { color: opts.color }));
        say();
        return true;
      },
      onEvent,
    });
    if (!applied.result?.ok) throw new Error('apply failed');

    h1('3. xvbd status (guests not connected yet: blkback waits in InitWait)');
    await sim.settle();
    let snap = await snapshot({ configDir: host.configDir, xs });
    out(renderStatus(snap.plan!, { color: opts.color, observed: snap.observed }));

    h1('4. The guests boot: their blkfront connects');
    for (const b of sim.backends()) await sim.frontend(b.domid, b.devid).connect();
    snap = await snapshot({ configDir: host.configDir, xs });
    out(renderStatus(snap.plan!, { color: opts.color, observed: snap.observed }));

    h1('5. One read-only loop device for the shared template');
    const template = host.files.find((f) => f.includes('template'));
    for (const l of listLoops()) {
      if (!l.backingPath.startsWith(host.imagesDir + '/')) continue;
      const users = snap.observed!.backends.filter((b) => b.physicalDevicePath === `/dev/${l.name}`);
      const who = users.map((b) => `${desired.domains[b.frontendDomid - 1]?.name ?? b.frontendDomid}/${b.devid}`).join(', ');
      const mark = l.backingPath === template ? '  <- shared' : '';
      say(`  /dev/${l.name}  diskseq ${l.diskseq}  ${l.readOnly ? 'ro' : 'rw'}  autoclear=${l.autoclear}  ${l.backingPath.slice(host.imagesDir.length + 1)}  used by ${users.length}: ${who}${mark}`);
    }
    say(`\nThe loop devices are held by the two keepers (${join(work, 'run')}/keeper-a.sock and keeper-b.sock), each holding every fd: see docs/fd-holding.md.`);

    const wait = opts.wait ?? process.stdin.isTTY === true;
    if (wait) {
      const rl = createInterface({ input: process.stdin, output: process.stdout });
      await rl.question('\nPress Enter to clean up (or Ctrl-C) ');
      rl.close();
    }
    return 0;
  } catch (err) {
    say(`demo failed: ${(err as Error).message}`);
    return 1;
  } finally {
    await cleanup();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
