// `npm run test:xen` = node dist/test/xen/run.js: the Xen suite, host side.
//   1. set-up of the lab (packages, kernel, initramfs in the cache dir; a no-op when up to date)
//   2. one VM boot per boot group (XenScenario.boot; 'dom0' by default): dom0 runs dist/test/xen/guest.js
//      = the `xen` part of each scenario of the group (real Xen)
//   3. the `host` part of every scenario, with what its `xen` part recorded (e.g. simulator vs real)
//   4. TAP on stdout, a summary, exit 1 if any case failed or dom0 gave no result.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Tap, makeSuiteContext, runPart, type CaseResult, type HostContext } from './framework.js';
import { loadScenarios, splitOnly, type NamedScenario } from './scenarios.js';
import { labDir, repoRoot, runInDom0, setupLab } from './lab/vm.js';

const USAGE = `usage: node dist/test/xen/run.js [options]
  --only NAME[,NAME]   run only these scenarios (repeatable); names are test/xen/scenarios/<name>.ts
  --list               list the scenarios and exit (opt-in ones are run only when named in --only)
  --setup              only set the lab up (install packages, build images) and exit
  --force-setup        rebuild the lab images even when up to date
  --records DIR        skip the VM: run the host parts against DIR (a previous run's out/ dir,
                       e.g. ${labDir()}/runs/run-*/out)
  --timeout SEC        hard limit for each VM run (default 900: a hang detector; a boot takes 5-9 min)
  -v, --verbose        also show dom0's console lines outside the job
  -h, --help
env: XVBD_XENLAB=cache dir (default /var/tmp/xvbd-xenlab)`;

/**
 * The test guests' xenstore tool (test/xen/guest/xsop.c), static, into dist/ (dom0 sees the repo at its
 * own path). An error message, or undefined when built.
 */
function buildXsop(): string | undefined {
  const src = join(repoRoot(), 'test/xen/guest/xsop.c');
  const out = join(repoRoot(), 'dist/test/xen/xsop');
  if (existsSync(out) && statSync(out).mtimeMs > statSync(src).mtimeMs) return undefined;
  const r = spawnSync('gcc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-static', '-o', `${out}.tmp`, src], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot build ${out} (gcc -static; libc6-dev): ${r.error?.message ?? ''}${r.stderr}`;
  renameSync(`${out}.tmp`, out);
  return undefined;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        only: { type: 'string', multiple: true },
        list: { type: 'boolean' },
        setup: { type: 'boolean' },
        'force-setup': { type: 'boolean' },
        records: { type: 'string' },
        timeout: { type: 'string', default: '900' },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const only = splitOnly(values.only);
  let scenarios: NamedScenario[];
  try {
    scenarios = await loadScenarios(only, values.list === true);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 2;
  }
  if (values.list) {
    for (const { name, scenario } of scenarios) {
      const parts = [scenario.xen ? 'xen' : '', scenario.host ? 'host' : ''].filter(Boolean).join('+');
      const boot = scenario.xen ? ` boot ${scenario.boot ?? 'dom0'}` : '';
      process.stdout.write(`${name.padEnd(24)} [${parts}]${boot}${scenario.optIn ? ' (opt-in)' : ''} ${scenario.description}\n`);
    }
    return 0;
  }
  const timeoutSec = Number(values.timeout);
  if (!Number.isFinite(timeoutSec) || timeoutSec <= 0) {
    process.stderr.write(`--timeout: not a positive number: ${values.timeout}\n`);
    return 2;
  }
  const tStart = Date.now();
  const tap = new Tap();
  const figures: string[] = [];

  // ---- the real Xen host ----
  let outDir = '';
  /** Where each scenario's records are, when its results came from a retried boot. */
  const outDirs = new Map<string, string>();
  let guestOk = true;
  if (values.records) {
    outDir = values.records;
    if (!existsSync(outDir)) {
      process.stderr.write(`--records: no such directory: ${outDir}\n`);
      return 2;
    }
    tap.header();
  } else {
    if (process.getuid?.() !== 0) {
      process.stderr.write('the Xen suite needs root (apt-get, QEMU 9p passthrough)\n');
      return 2;
    }
    const setup = setupLab({ force: values['force-setup'] });
    figures.push(`setup ${(setup.ms / 1000).toFixed(1)} s`);
    if (values.setup) {
      process.stdout.write(`lab ready in ${setup.lab}\n`);
      return 0;
    }
    tap.header();
    if (!existsSync(join(repoRoot(), 'dist/test/xen/guest.js'))) {
      process.stderr.write('dist/test/xen/guest.js missing: build first (npm run build)\n');
      return 2;
    }
    const xsop = buildXsop();
    if (xsop !== undefined) {
      process.stderr.write(`${xsop}\n`);
      return 2;
    }
    // One boot per group (XenScenario.boot): each gets its own dom0 and its own time limit.
    const groups = new Map<string, string[]>();
    for (const s of scenarios.filter((x) => x.scenario.xen)) {
      const g = s.scenario.boot ?? 'dom0';
      groups.set(g, [...(groups.get(g) ?? []), s.name]);
    }
    for (const [group, withXen] of groups) {
      // A dom0 that crashes under emulation (seen once: node segfaulting in TCG right after `xl create`)
      // or times out leaves scenarios with no result at all. Those, and only those, get one more boot; the
      // first attempt's failure is kept in the output as a comment, a second one fails the suite.
      let pending = withXen;
      for (let attempt = 1; attempt <= 2 && pending.length > 0; attempt++) {
        const job = [
          'set -u',
          `cd '${repoRoot()}'`,
          // the host's node, by its path (shared into dom0 at the same path)
          `exec '${process.execPath}' dist/test/xen/guest.js --out /host/out${pending.map((n) => ` --only '${n}'`).join('')}`,
          '',
        ].join('\n');
        tap.comment(`booting Xen under QEMU (boot "${group}", attempt ${attempt}) for: ${pending.join(', ')}`);
        const res = await runInDom0({
          job,
          timeoutMs: timeoutSec * 1000,
          onJobLine: (l) => process.stdout.write(`# dom0| ${l}\n`),
        });
        figures.push(
          `VM wall ${(res.wallMs / 1000).toFixed(1)} s (job start at ${res.jobStartMs !== undefined ? (res.jobStartMs / 1000).toFixed(1) : '-'} s, end at ${res.jobEndMs !== undefined ? (res.jobEndMs / 1000).toFixed(1) : '-'} s)`,
        );
        tap.comment(`VM run dir ${res.runDir}; serial console ${res.serialLog}`);
        if (values.verbose) tap.comment(readFileSync(res.serialLog, 'utf8'));
        let guest: CaseResult[] = [];
        try {
          guest = JSON.parse(readFileSync(join(res.outDir, 'results.json'), 'utf8')) as CaseResult[];
        } catch {
          // reported below
        }
        const missing = pending.filter((name) => !guest.some((r) => r.scenario === name));
        const why = [res.timedOut ? `VM timed out after ${timeoutSec} s` : `job exit code ${res.rc ?? 'none'}`, ...res.crash, `see ${res.serialLog}`];
        for (const name of pending) if (!missing.includes(name)) outDirs.set(name, res.outDir);
        if (missing.length > 0 && attempt === 1) {
          // keep what this run did report except the partial results of the scenario it died in
          const died = guest.length > 0 ? guest[guest.length - 1]!.scenario : undefined;
          // (a pseudo-scenario such as "(load)", which failed before any scenario ran, is no scenario to boot for)
          const retry = died !== undefined && pending.includes(died) && !missing.includes(died) ? [died, ...missing] : missing;
          for (const r of guest) if (!retry.includes(r.scenario)) tap.add(r);
          for (const name of retry) outDirs.delete(name);
          tap.comment(`dom0 gave no result for ${missing.join(', ')} (${why.join('; ')}): booting once more for ${retry.join(', ')}`);
          pending = retry;
          continue;
        }
        for (const r of guest) tap.add(r);
        for (const name of missing) {
          guestOk = false;
          tap.add({ scenario: name, phase: 'xen', name: '(no result from dom0)', status: 'fail', ms: 0, detail: why.join('\n') });
        }
        if (res.rc === null) {
          guestOk = false;
          tap.comment(`dom0 job gave no exit code (${res.timedOut ? 'time-out' : 'boot failure or crash'}); serial console: ${res.serialLog}`);
        }
        pending = [];
      }
    }
  }

  // ---- host parts ----
  const hostTmp = join('/tmp', `xvbd-xen-host-${process.pid}`);
  for (const { name, scenario } of scenarios) {
    if (!scenario.host) continue;
    let records: Record<string, unknown> = {};
    try {
      records = JSON.parse(readFileSync(join(outDirs.get(name) ?? outDir, 'records', `${name}.json`), 'utf8')) as Record<string, unknown>;
    } catch {
      // the host part decides what a missing record means
    }
    const ctx: HostContext = {
      ...makeSuiteContext({ scenario: name, phase: 'host', repoRoot: repoRoot(), tmpDir: join(hostTmp, name), tap }),
      recorded: <T>(k: string) => records[k] as T | undefined,
      recordedKeys: () => Object.keys(records),
    };
    const s0 = Date.now();
    await runPart(ctx, tap, () => scenario.host!(ctx), 300_000);
    figures.push(`${name} [host] ${Date.now() - s0} ms`);
  }
  rmSync(hostTmp, { recursive: true, force: true });

  tap.plan();
  const s = tap.summary();
  figures.push(`total ${((Date.now() - tStart) / 1000).toFixed(1)} s`);
  tap.comment(figures.join('; '));
  tap.comment(`pass ${s.pass} fail ${s.fail} skip ${s.skip}`);
  if (s.fail > 0) {
    tap.comment('failed:');
    for (const r of tap.results.filter((x) => x.status === 'fail')) tap.comment(`  ${r.scenario} [${r.phase}] ${r.name}`);
  }
  return s.fail > 0 || !guestOk ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`xen suite: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);
