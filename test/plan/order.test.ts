// Table tests of the order of a plan's steps and findings (src/plan/order.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orderPlan, phase, PlanOut } from '../../src/plan/order.js';
import type { DiskStatus } from '../../src/model/plan.js';

test('orderPlan: offline and hold first, frees last; findings by domain, devid, kind; sync explained', () => {
  const out = new PlanOut();
  const be = { path: '/b', backendDomid: 0, frontendDomid: 3, devid: 1 };
  const disk = { vdev: 'xvda', devid: 1 } as never;
  out.action({ kind: 'free-loop', loop: { name: 'loop1', diskseq: '1' } as never, reason: 'r' }, '', 0, 0, 1);
  out.action({ kind: 'attach', domain: 'web', domid: 3, disk }, 'web', 3, 1);
  out.action({ kind: 'offline', backend: be, physicalDevice: '7:1', close: false, reason: 'r' }, 'web', 3, 1);
  out.finding('loop-leaked', 'warning', 'm', 'f', { sortDomain: '\uffff\uffff' });
  out.finding('source-missing', 'error', 'm', 'f', { domain: 'web', vdev: 'xvda' });
  const row: DiskStatus = { domain: 'web', vdev: 'xvda', devid: 1, sync: 'out-of-sync', health: 'missing', sharedBy: 0 };
  const p = orderPlan([out], [row]);
  assert.deepEqual(p.actions.map((a) => a.kind), ['offline', 'attach', 'free-loop']);
  assert.deepEqual(p.findings.map((f) => f.kind), ['source-missing', 'loop-leaked']);
  assert.equal(p.disks[0]!.syncReason, 'attach planned');
  assert.deepEqual((['offline', 'hold', 'detach', 'attach', 'free-loop'] as const).map(phase), [0, 0, 1, 1, 2]);
});
