// Differential xenstore: the same raw operations (failures included: ENOENT, EINVAL, EAGAIN, EEXIST,
// permission changes and their `xenstore-ls -p` view, watch firing order and the initial firing,
// protocol abuse) played against the real xenstored in dom0 and against the simulator on the host;
// every reply and watch event must be the same, byte for byte (transaction ids normalized).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { XenScenario } from '../framework.js';
import { diffRecords, formatDiffs, play, type StepRecord } from '../lib/xsdiff.js';
import { programs } from '../lib/xsprograms.js';

export const scenario: XenScenario = {
  description: 'raw xenstore operations: real xenstored replies (recorded in dom0) == simulator replies',
  async xen(t) {
    for (const p of programs()) {
      await t.test(`record ${p.name} (${p.steps.length} steps) from the real xenstored`, async () => {
        const rec = await play(p, t.xenstoredSocket);
        t.record(p.name, rec);
        assert.equal(rec.length, p.steps.length);
      });
    }
  },
  async host(t) {
    const { startSimulator } = await import('../../../src/sim/index.js');
    const sim = await startSimulator({ socketPath: join(t.tmpDir, 'xs.sock') });
    try {
      for (const p of programs()) {
        await t.test(`${p.name}: simulator == real xenstored`, async () => {
          const real = t.recorded<StepRecord[]>(p.name);
          assert.ok(real, `no recording of ${p.name} from real Xen (its xen part failed)`);
          const simRec = await play(p, sim.socketPath);
          const diffs = diffRecords(real, simRec);
          assert.ok(diffs.length === 0, `${diffs.length} of ${p.steps.length} steps differ:\n${formatDiffs(diffs)}`);
        });
      }
    } finally {
      await sim.close();
    }
  },
};
