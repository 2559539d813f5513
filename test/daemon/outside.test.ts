// A backend of xvbd's removed by someone else while its domain runs (libxl's xl block-detach, or its
// device teardown during xl destroy, which the Xen suite's [destroy] caught the daemon racing): the
// daemon's passes do not put it back; an operator's `xvbd reconcile` does; a new domain instance of the
// same name starts with a clean slate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../../src/xenstore/client.js';
import { Host } from './harness.js';

const XVDA = 51712;
const XVDB = 51728;

/** As libxl__device_destroy does: backend, frontend and libxl's own dir in one transaction. */
async function removeLikeLibxl(h: Host, domid: number, devid: number): Promise<void> {
  const xs = await connect({ path: h.sim.socketPath });
  try {
    const tx = await xs.transactionStart();
    for (const p of [h.backendPath(domid, devid), `/local/domain/${domid}/device/vbd/${devid}`, `/libxl/${domid}/device/vbd/${devid}`]) await tx.rm(p);
    await xs.transactionEnd(tx, true);
  } finally {
    await xs.close();
  }
}

test('a backend removed outside xvbd while its domain runs is not put back by a pass; xvbd reconcile does', async () => {
  const h = await Host.start([{ name: 'web1', domid: 5 }]);
  try {
    h.domain('web1', [{ vdev: 'xvda', image: 'a.img' }, { vdev: 'xvdb', image: 'b.img' }]);
    const d = h.startDaemon();
    await h.waitFor('web1 served', () => h.served(5, XVDA)?.physicalDevice && h.served(5, XVDB)?.physicalDevice);

    await removeLikeLibxl(h, 5, XVDA);
    const st = await h.waitFor('a pass that saw it', async () => {
      const r = await h.request('status');
      const last = r.last as { summary: string } | null;
      return last?.summary.includes('detached-outside') && r;
    });
    assert.equal(h.served(5, XVDA), undefined, 'not attached again');
    assert.ok(h.served(5, XVDB)?.physicalDevice, 'the other disk untouched');
    assert.equal(d.passes().filter((l) => /\+attach web1 xvda/.test(l)).length, 1, `attached once only:\n${d.passes().join('\n')}`);
    assert.ok(((st.held ?? []) as { users: string[] }[]).every((x) => !x.users.includes(h.backendPath(5, XVDA))), 'its device let go');

    // an operator asks: attached again
    const r = await h.request('reconcile', { reason: 'operator' });
    assert.equal(r.ok, true, JSON.stringify(r));
    await h.waitFor('web1 xvda attached again', () => h.served(5, XVDA)?.physicalDevice);

    // a new instance of the domain: the memory was of the old one
    await removeLikeLibxl(h, 5, XVDB);
    await h.waitFor('xvdb seen detached outside', async () => ((await h.request('status')).last as { summary: string } | null)?.summary.includes('detached-outside'));
    h.sim.removeDomain(5);
    const domid = h.sim.addDomain('web1');
    await h.waitFor('the new web1 served both', () => h.served(domid, XVDA)?.physicalDevice && h.served(domid, XVDB)?.physicalDevice);
  } finally {
    await h.cleanup();
  }
});
