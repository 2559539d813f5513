// Runs the conformance suite against whatever xenstore the client finds (or --path), outside
// node:test: `node dist/test/xenstore/run-conformance.js [--path SOCKET] [--base /test/xvbd]`.
// Used to check the suite itself against the real xenstored (xenlab) and the simulator alike.
import { parseArgs } from 'node:util';
import { connect } from '../../src/xenstore/client.js';
import { conformanceCases } from './conformance.js';

const { values } = parseArgs({ options: { path: { type: 'string' }, base: { type: 'string' } } });
const c = await connect(values.path !== undefined ? { path: values.path } : {});
const root = values.base ?? `/test/xvbd-conformance-${process.pid}`;
let failed = 0;
let i = 0;
for (const k of conformanceCases()) {
  const base = `${root}/${++i}`;
  const t0 = Date.now();
  try {
    await k.run(c, { base });
    const left = await c.read(base);
    if (left !== undefined) throw new Error(`left ${base} behind`);
    process.stdout.write(`ok ${i} - ${k.name} (${Date.now() - t0} ms)\n`);
  } catch (err) {
    failed++;
    process.stdout.write(`not ok ${i} - ${k.name}\n  ${(err as Error).message}\n`);
    await c.rm(base).catch(() => undefined);
  }
}
await c.rm(root).catch(() => undefined);
await c.close();
process.stdout.write(`# ${i - failed}/${i} passed\n`);
process.exitCode = failed === 0 ? 0 : 1;
