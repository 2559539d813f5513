// The xenstore client's conformance suite (test/xenstore/conformance.ts), unchanged, through the
// project's client (src/xenstore/client.ts): against the real xenstored in dom0, and against the
// simulator on the host. Each case gets a fresh connection and its own base path.
import type { XenScenario, SuiteContext } from '../framework.js';
import type { XsClient } from '../../../src/xenstore/api.js';

interface ConformanceCase {
  name: string;
  run(client: XsClient, ctx: { base: string }): Promise<void>;
}
// Imported by a computed specifier: the suite is another engineer's file and the harness must build
// (and report clearly) while it does not exist yet.
const CONFORMANCE = '../../xenstore/conformance.js';
const CLIENT = '../../../src/xenstore/client.js';

async function load(t: SuiteContext): Promise<{ cases: ConformanceCase[]; connect: (o: { path?: string }) => Promise<XsClient> } | undefined> {
  try {
    const conf = (await import(CONFORMANCE)) as { conformanceCases(): ConformanceCase[] };
    const client = (await import(CLIENT)) as { connect(o: { path?: string }): Promise<XsClient> };
    return { cases: conf.conformanceCases(), connect: client.connect };
  } catch (e) {
    t.skip('conformance suite', `test/xenstore/conformance.ts or src/xenstore/client.ts not available: ${(e as Error).message}`);
    return undefined;
  }
}

async function runAll(t: SuiteContext, socketPath: string, where: string): Promise<void> {
  const suite = await load(t);
  if (!suite) return;
  if (suite.cases.length === 0) throw new Error('conformanceCases() returned no case');
  let i = 0;
  for (const c of suite.cases) {
    const base = `/xvbd-conformance/${where}/${i++}`;
    await t.test(c.name, async () => {
      const client = await suite.connect({ path: socketPath });
      try {
        await client.rm(base);
        await c.run(client, { base });
      } finally {
        await client.close();
      }
    });
  }
}

export const scenario: XenScenario = {
  description: "the xenstore client's conformance suite against the real xenstored (dom0) and the simulator (host)",
  async xen(t) {
    await runAll(t, t.xenstoredSocket, 'xen');
  },
  async host(t) {
    const { startSimulator } = await import('../../../src/sim/index.js');
    const sim = await startSimulator({ socketPath: `${t.tmpDir}/xs.sock` });
    try {
      await runAll(t, sim.socketPath, 'sim');
    } finally {
      await sim.close();
    }
  },
};
