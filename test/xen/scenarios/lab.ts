// The lab itself: dom0 is a real Xen dom0 with what the other scenarios rely on.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { XenScenario } from '../framework.js';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();

export const scenario: XenScenario = {
  description: 'dom0 is a real Xen 4.17 dom0: xenstored socket, xenbus, xen-blkback, loop devices',
  order: 0,
  async xen(t) {
    await t.test('running on Xen as dom0', () => {
      assert.equal(readFileSync('/sys/hypervisor/type', 'utf8').trim(), 'xen');
      const v = `${readFileSync('/sys/hypervisor/version/major', 'utf8').trim()}.${readFileSync('/sys/hypervisor/version/minor', 'utf8').trim()}`;
      assert.equal(v, '4.17');
      assert.match(readFileSync('/proc/xen/capabilities', 'utf8'), /control_d/);
      t.log(`Xen ${v}, dom0 kernel ${sh('uname', ['-r'])}, node ${process.version}`);
    });
    await t.test('the real xenstored answers on its unix socket', () => {
      assert.ok(statSync(t.xenstoredSocket).isSocket(), `${t.xenstoredSocket} is not a socket`);
      assert.equal(sh('xenstore-read', ['/local/domain/0/name']), 'Domain-0');
      assert.equal(sh('xenstore-read', ['/local/domain/0/domid']), '0');
      const pid = readFileSync('/run/xen/xenstored.pid', 'utf8').trim();
      assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /xen-4\.17\/bin\/xenstored/);
    });
    await t.test('xen-blkback is loaded and registered on the xen-backend bus', () => {
      assert.ok(existsSync('/sys/module/xen_blkback'), 'module xen_blkback not loaded');
      assert.ok(existsSync('/sys/bus/xen-backend/drivers/vbd'), 'no vbd driver on xen-backend');
    });
    await t.test('loop devices can be made and freed', () => {
      assert.ok(existsSync('/dev/loop-control'));
      execFileSync('truncate', ['-s', '1M', `${t.tmpDir}/lab.img`]);
      const dev = sh('losetup', ['-f', '--show', `${t.tmpDir}/lab.img`]);
      try {
        assert.match(dev, /^\/dev\/loop\d+$/);
      } finally {
        execFileSync('losetup', ['-d', dev]);
      }
    });
  },
};
