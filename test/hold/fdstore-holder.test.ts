// Parking before the commit: FdStore.park resolves only once the service manager has processed the
// FDSTORE=1 message (sd_notify_barrier), and a manager that never reads makes it fail instead of hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FdStore, FdStoreHolder, fdName } from '../../src/hold/fdstore.js';
import { Notifier } from '../../src/ipc/systemd.js';
import { LoopRegistry } from '../../src/linux/registry.js';
import { bindUnix, dgramSocket } from '../../src/linux/socket.js';
import { sysClose } from '../../src/linux/ffi.js';
import { FakeSystemd } from '../daemon/fake-systemd.js';

test('park: the fd is in the manager\'s store by the time park resolves (FDSTORE=1, then BARRIER=1)', async () => {
  const sd = new FakeSystemd();
  const notifier = new Notifier({ env: { NOTIFY_SOCKET: sd.socketPath } });
  const store = new FdStore(notifier, new LoopRegistry());
  const fd = openSync('/dev/null', 'r');
  try {
    await store.park('4242', fd);
    // no drain in between: the barrier already proved the manager read the FDSTORE message
    assert.deepEqual(sd.store.map((s) => s.name), [fdName('4242')]);
    const kinds = sd.messages.map((m) => Object.keys(m.fields).sort().join(','));
    assert.deepEqual(kinds, ['FDNAME,FDSTORE', 'BARRIER']);
    assert.equal(sd.closedUnstored, 1, 'the barrier pipe end was closed by the manager');
    assert.deepEqual(store.parkedDiskseqs, ['4242']);
    // parked already: nothing sent again
    await store.park('4242', fd);
    assert.equal(sd.messages.length, 2);
  } finally {
    closeSync(fd);
    notifier.close();
    sd.close();
  }
});

test('FdStoreHolder.hold parks loop devices only, before it resolves', async () => {
  const sd = new FakeSystemd();
  const notifier = new Notifier({ env: { NOTIFY_SOCKET: sd.socketPath } });
  const holder = new FdStoreHolder(new FdStore(notifier, new LoopRegistry()));
  const fd = openSync('/dev/null', 'r');
  try {
    const dev = { key: 'k', major: 7, minor: 3, devPath: '/dev/loop3', fd, shared: false };
    await holder.hold({ ...dev, kind: 'block' });
    assert.equal(sd.store.length, 0, 'a block device used as is has no fd-store name');
    await holder.hold({ ...dev, kind: 'loop', diskseq: '77' });
    assert.deepEqual(sd.store.map((s) => s.name), [fdName('77')]);
    assert.equal(holder.releaseAfterCommit, false, 'the daemon keeps its own fd too');
  } finally {
    closeSync(fd);
    notifier.close();
    sd.close();
  }
});

test('barrier: a manager that never reads makes it fail after the timeout (nothing is committed on a guess)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-deaf-manager-'));
  const path = join(dir, 'notify');
  const deaf = dgramSocket(true);
  bindUnix(deaf, path);
  const notifier = new Notifier({ env: { NOTIFY_SOCKET: path } });
  try {
    await assert.rejects(notifier.barrier(200), /did not answer BARRIER=1 within 200 ms/);
  } finally {
    notifier.close();
    sysClose(deaf);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('barrier without a manager: nothing to wait for', async () => {
  const notifier = new Notifier({ env: {} });
  assert.equal(await notifier.barrier(), false);
});
