// dom0 side of the Xen suite: `node dist/test/xen/guest.js --out /host/out [--only a,b]`, started by the
// job run.ts hands to the VM. Runs the `xen` part of each scenario against the real xenstored and
// xen-blkback, prints TAP, writes <out>/results.json (all cases) and <out>/records/<scenario>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Tap, makeSuiteContext, recordStore, runPart, type XenContext } from './framework.js';
import { loadScenarios, splitOnly } from './scenarios.js';
import { repoRoot } from './lab/vm.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: '/host/out' },
    only: { type: 'string', multiple: true },
    socket: { type: 'string', default: '/run/xenstored/socket' },
  },
});
const outDir = values.out!;
mkdirSync(outDir, { recursive: true });
const tap = new Tap();
tap.header();
const writeResults = () => writeFileSync(join(outDir, 'results.json'), JSON.stringify(tap.results, null, 1));
writeResults();
let scenarios;
try {
  scenarios = await loadScenarios(splitOnly(values.only));
} catch (e) {
  tap.add({ scenario: '(load)', phase: 'xen', name: 'load scenarios', status: 'fail', ms: 0, detail: String(e) });
  writeResults();
  process.exit(1);
}
const t0 = Date.now();
for (const { name, scenario } of scenarios) {
  if (!scenario.xen) continue;
  const store = recordStore(join(outDir, 'records'), name);
  const ctx: XenContext = {
    ...makeSuiteContext({ scenario: name, phase: 'xen', repoRoot: repoRoot(), tmpDir: join('/tmp/xvbd-xen', name), tap }),
    xenstoredSocket: values.socket!,
    record: (k, v) => store.record(k, v),
  };
  const s0 = Date.now();
  await runPart(ctx, tap, () => scenario.xen!(ctx), scenario.xenTimeoutMs ?? 420_000);
  tap.comment(`${name} [xen]: ${Date.now() - s0} ms`);
  writeResults();
}
tap.plan();
const s = tap.summary();
tap.comment(`dom0: pass ${s.pass} fail ${s.fail} skip ${s.skip}, ${Date.now() - t0} ms`);
writeResults();
process.exit(s.fail > 0 ? 1 : 0);
