// `npm run bench -- observe [--disks N] [--domains M] [--runs R] [--json]`
// observe() at N vbd backends across M domains, against the simulator running as its own process
// (`xvbd sim`), read inside one transaction vs plain concurrent reads, quiet and under churn (another
// client rewriting frontend states all the time); plus plan() on the result.
// The backends live under a driver domain (domid 30000), which the simulated blkback does not serve, so
// no device is opened; observe does the same reads as for dom0's.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from '../src/xenstore/client.js';
import type { XsClient } from '../src/xenstore/api.js';
import { observe } from '../src/observe/observe.js';
import { plan } from '../src/plan/plan.js';
import { DEFAULT_POLICY, type DesiredState } from '../src/model/desired.js';
import type { LoopObs } from '../src/model/observed.js';
import { loop } from '../test/plan/fixtures.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const BE = 30000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function waitFor(p: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!existsSync(p)) {
    if (Date.now() > until) throw new Error(`simulator socket ${p} did not appear`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function populate(xs: XsClient, disks: number, domains: number): Promise<DesiredState> {
  const per = Math.ceil(disks / domains);
  const desired: DesiredState = { domains: [], policy: { ...DEFAULT_POLICY } };
  const at = { file: 'bench.yaml', line: 1, column: 1 };
  let n = 0;
  for (let d = 0; d < domains && n < disks; d++) {
    const domid = d + 1;
    const name = `vm${String(d).padStart(3, '0')}`;
    const spec: DesiredState['domains'][number] = { name, disks: [], at };
    await xs.transaction(async (tx) => {
      for (let i = 0; i < per && n < disks; i++, n++) {
        const devid = 51712 + i * 16;
        const fe = `/local/domain/${domid}/device/vbd/${devid}`;
        const be = `/local/domain/${BE}/backend/vbd/${domid}/${devid}`;
        const src = `/srv/xvbd/${name}-${i}.img`;
        const w: [string, string][] = [
          [`${fe}/backend`, be],
          [`${fe}/backend-id`, String(BE)],
          [`${fe}/state`, '4'],
          [`${fe}/virtual-device`, String(devid)],
          [`${fe}/ring-ref`, '8'],
          [`${fe}/event-channel`, '9'],
          [`${be}/frontend`, fe],
          [`${be}/frontend-id`, String(domid)],
          [`${be}/online`, '1'],
          [`${be}/state`, '4'],
          [`${be}/params`, src],
          [`${be}/mode`, 'w'],
          [`${be}/type`, 'phy'],
          [`${be}/device-type`, 'disk'],
          [`${be}/physical-device`, (0x100 + n).toString(16).replace(/^/, '7:')],
          [`${be}/physical-device-path`, `/dev/loop${n}`],
          [`${be}/node`, `/dev/loop${n}`],
          [`${be}/diskseq`, String(1000 + n)],
          [`${be}/xvbd`, '1'],
          [`${be}/xvbd-inode`, `2049:${5000 + n}`],
          [`${be}/hotplug-status`, 'connected'],
          [`${be}/feature-max-indirect-segments`, '256'],
          [`${be}/sectors`, '8388608'],
          [`${be}/sector-size`, '512'],
          [`${be}/info`, '0'],
        ];
        await Promise.all(w.map(([k, v]) => tx.write(k, v)));
        spec.disks.push({
          vdev: `xvd${String.fromCharCode(97 + i)}`,
          devid,
          source: src,
          sourceKind: 'file',
          mode: 'rw',
          options: { directIo: false, discard: false },
          backendDomid: BE,
          at,
        });
      }
    });
    desired.domains.push(spec);
  }
  return desired;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      disks: { type: 'string', default: '1000' },
      domains: { type: 'string', default: '100' },
      runs: { type: 'string', default: '9' },
      json: { type: 'boolean' },
    },
  });
  const disks = Number(values.disks);
  const ndom = Number(values.domains);
  const runs = Number(values.runs);
  const dir = mkdtempSync('/tmp/xvbd-bench-observe-');
  const sock = join(dir, 'xs.sock');
  const domArgs = Array.from({ length: ndom }, (_, d) => ['--domain', `vm${String(d).padStart(3, '0')}=${d + 1}`]).flat();
  const sim: ChildProcess = spawn(process.execPath, [MAIN, 'sim', '--socket', sock, '--sysfs', join(dir, 'sysfs'), ...domArgs, '--domain', `drv=${BE}`], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let xs: XsClient | undefined;
  let churner: XsClient | undefined;
  try {
    await waitFor(sock);
    await new Promise((r) => setTimeout(r, 200));
    xs = await connect({ path: sock });
    const desired = await populate(xs, disks, ndom);
    // Synthetic loop devices matching what the backends record, so the plan is a true no-op.
    const loops: LoopObs[] = Array.from({ length: disks }, (_, n) =>
      loop(0x100 + n, 5000 + n, { diskseq: String(1000 + n), backingPath: `/srv/xvbd/${n}.img` }),
    );
    const deps = { xs, loops: () => loops, sources: [], backendDomid: BE, xenBackendSysfs: join(dir, 'sysfs') };

    // Sanity: everything is seen.
    const first = await observe({ ...deps, transaction: true });
    if (first.backends.length !== disks) throw new Error(`observed ${first.backends.length} backends, wrote ${disks}`);

    const measure = async (tx: boolean): Promise<number> => {
      const t0 = performance.now();
      await observe({ ...deps, transaction: tx });
      return performance.now() - t0;
    };
    const quiet = { tx: [] as number[], plain: [] as number[] };
    for (let i = 0; i < runs; i++) {
      quiet.tx.push(await measure(true));
      quiet.plain.push(await measure(false));
    }

    // Churn: another client rewrites frontend states as fast as it can (one at a time).
    churner = await connect({ path: sock });
    let stop = false;
    let writes = 0;
    const c = churner;
    const churn = (async () => {
      while (!stop) {
        const d = 1 + (writes % ndom);
        await c.write(`/local/domain/${d}/device/vbd/51712/state`, writes % 2 ? '4' : '3').catch(() => undefined);
        writes++;
      }
    })();
    const busy = { tx: [] as number[], plain: [] as number[] };
    for (let i = 0; i < runs; i++) {
      busy.tx.push(await measure(true));
      busy.plain.push(await measure(false));
    }
    stop = true;
    await churn;

    const obs = await observe({ ...deps, transaction: false });
    let k = 0;
    for (const d of desired.domains) {
      for (const disk of d.disks) {
        obs.sources[disk.source] = { path: disk.source, exists: true, kind: 'file', inode: { dev: '2049', ino: String(5000 + k++) }, mounted: false };
      }
    }
    const pt: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      plan(desired, obs, desired.policy);
      pt.push(performance.now() - t0);
    }
    const p = plan(desired, obs, desired.policy);

    const result = {
      disks,
      domains: ndom,
      runs,
      observeMs: {
        quietTransaction: median(quiet.tx),
        quietPlain: median(quiet.plain),
        churnTransaction: median(busy.tx),
        churnPlain: median(busy.plain),
      },
      churnWritesDuringRuns: writes,
      planMs: median(pt.slice(10)),
      planMinMs: Math.min(...pt),
      planActions: p.actions.length,
    };
    if (values.json) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    } else {
      const f = (x: number) => `${x.toFixed(1)} ms`;
      process.stdout.write(
        [
          `observe: ${disks} backends across ${ndom} domains, simulator in its own process, median of ${runs}`,
          `  quiet:   one transaction ${f(result.observeMs.quietTransaction)}   plain reads ${f(result.observeMs.quietPlain)}`,
          `  churn:   one transaction ${f(result.observeMs.churnTransaction)}   plain reads ${f(result.observeMs.churnPlain)}   (${writes} frontend writes meanwhile)`,
          `plan on that observation: median ${f(result.planMs)}, min ${f(result.planMinMs)} (${p.actions.length} actions, ${p.findings.length} findings)`,
        ].join('\n') + '\n',
      );
    }
    return 0;
  } finally {
    await churner?.close().catch(() => undefined);
    await xs?.close().catch(() => undefined);
    sim.kill('SIGTERM');
    await new Promise((r) => sim.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}
