// The simulated blkback against the real xen-blkback: the same backend/frontend writes (frontend first
// or not, physical-device, online 0, frontend to 3 without a ring, to 5, to 6 and back to 1, backend
// removal, bad physical-device, no mode, read-only, and a real frontend: xen-blkfront in dom0 connecting
// and closing) give the same backend states and nodes, the same error nodes, the same frontend state and
// node names, and the loop device is held (sysfs physical_device) and released at the same steps.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { XenScenario } from '../framework.js';
import { sh } from '../lib/dom0.js';
import { diffSnaps, formatSnapDiffs, playSequence, sequences, summarize, type Sequence, type StepSnap } from '../lib/blkseq.js';

const key = (devid: number) => `seq-${devid}`;

/** A scenario playing the sequences `pick` selects (real in dom0, simulated on the host). */
export function blkbackScenario(description: string, pick: (s: Sequence) => boolean, order?: number): XenScenario {
  return {
    description,
    order,
    async xen(t) {
      for (const seq of sequences().filter(pick)) {
        await t.test(`record "${seq.name}" (${seq.steps.length} steps) from the real xen-blkback`, async () => {
          if (seq.blkfront) await sh('modprobe', ['xen-blkfront']);
          const snaps = await playSequence(
            { socketPath: t.xenstoredSocket, sysfsDir: '/sys/bus/xen-backend/devices', settle: async () => {}, pollMs: 300, tmpDir: t.tmpDir },
            seq,
          );
          t.record(key(seq.devid), snaps);
          t.log(`${seq.name}:\n${summarize(snaps)}`);
          assert.equal(snaps.length, seq.steps.length);
        }, { timeoutMs: 300_000 });
      }
    },
    async host(t) {
      const { startSimulator } = await import('../../../src/sim/index.js');
      // fake frontends (no driver) on one simulator; driven frontends on one whose guests auto-connect
      const sim0 = await startSimulator({ socketPath: join(t.tmpDir, 'xs.sock') });
      const sim1 = await startSimulator({ socketPath: join(t.tmpDir, 'xs-auto.sock'), autoConnect: true });
      try {
        for (const seq of sequences().filter(pick)) {
          const sim = seq.blkfront ? sim1 : sim0;
          await t.test(`"${seq.name}": simulated blkback == real xen-blkback`, async () => {
            const real = t.recorded<StepSnap[]>(key(seq.devid));
            assert.ok(real, `no recording of "${seq.name}" from real Xen (its xen part failed)`);
            const simSnaps = await playSequence({ socketPath: sim.socketPath, sysfsDir: sim.sysfsDir, settle: () => sim.settle(), pollMs: 100, tmpDir: t.tmpDir }, seq);
            const d = diffSnaps(real, simSnaps);
            assert.ok(d.length === 0, `${d.length} of ${seq.steps.length} steps differ:\n${formatSnapDiffs(d)}\nreal:\n${summarize(real)}\nsimulator:\n${summarize(simSnaps)}`);
          });
        }
      } finally {
        await sim0.close();
        await sim1.close();
      }
    },
  };
}

export const scenario = blkbackScenario(
  'backend/frontend write sequences: real xen-blkback and xen-blkfront (recorded in dom0) == simulator',
  (s) => !s.wedges,
);
