// `xvbd plan` end to end on real loop devices (observe's BLKSSZGET, LOOP_GET_STATUS64, sysfs diskseq),
// the simulator on a socket, nodes written with the real xenstore-write and the real CLI:
// - a `device:` source that is itself a loop device, served as a block device: synced, no finding;
// - a file served through a loop device with a 4096-byte block size while the disk asks for the
//   default: options-mismatch; with --prune a replace; once the config asks for 4096: synced.
// Loop devices are host-wide (other tests run concurrently), so assertions look at this test's disks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plan } from '../../src/model/plan.js';
import { attachLoop } from '../../src/linux/loopdev.js';
import { closeSource, openSource } from '../../src/linux/source.js';
import { sysClose } from '../../src/linux/ffi.js';
import { setup } from '../observe/helpers.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const XVDA = 51712;
const XVDB = 51728;

function xvbd(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [MAIN, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

test('plan on real loop devices: a device source that is a loop device is synced; a loop block size drift is options-mismatch', async () => {
  const e = await setup('ident', [
    { name: 'web', domid: 3 },
    { name: 'db', domid: 4 },
  ]);
  const fds: number[] = [];
  try {
    const webImg = e.image('web.img');
    const dataImg = e.image('db-data.img');
    // web xvda: a file through a loop device of ours with 4096-byte blocks
    const src = openSource(webImg, { allowedRoots: [e.dir], readOnly: false });
    let lw: Awaited<ReturnType<typeof attachLoop>>;
    try {
      lw = await attachLoop({ fd: src.fd, dev: src.devB, ino: src.inoB }, { readOnly: false, blockSize: 4096 });
      fds.push(lw.fd);
    } finally {
      closeSource(src);
    }
    // db xvdb: the stand-in for an LVM volume, a loop device given as a `device:` source
    const lb = await e.loop(dataImg, false);
    const ino = e.inode(webImg);
    await e.vbd(3, XVDA, {
      params: webImg,
      mode: 'w',
      'physical-device': `${lw.major.toString(16)}:${lw.minor.toString(16)}`,
      'physical-device-path': `/dev/${lw.name}`,
      diskseq: String(lw.diskseq),
      xvbd: '1',
      'xvbd-inode': `${ino.dev}:${ino.ino}`,
      'hotplug-status': 'connected',
    });
    await e.vbd(4, XVDB, {
      params: `/dev/${lb.name}`,
      mode: 'w',
      'physical-device': lb.hex,
      'physical-device-path': `/dev/${lb.name}`,
      diskseq: lb.diskseq,
      xvbd: '1',
      'hotplug-status': 'connected',
    });
    // web xvda's device goes to the keepers, as apply hands it over (db's is a device source: none)
    await e.keep({ name: lw.name, major: lw.major, minor: lw.minor, diskseq: String(lw.diskseq), hex: '', fd: lw.fd, close() {} }, 3, XVDA);
    await e.sim.settle();

    const cfg = join(e.dir, 'cfg');
    mkdirSync(cfg, { recursive: true });
    const writeCfg = (webOptions: string) => {
      writeFileSync(join(cfg, 'web.yaml'), `apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - vdev: xvda\n    file: ${webImg}\n${webOptions}`);
      writeFileSync(join(cfg, 'db.yaml'), `apiVersion: xvbd/v1\nkind: Domain\nname: db\ndisks:\n  - vdev: xvdb\n    device: /dev/${lb.name}\n`);
    };
    const mine = (p: Plan) => ({
      sync: p.disks.filter((d) => d.domain === 'web' || d.domain === 'db').map((d) => `${d.domain} ${d.vdev} ${d.sync}`),
      findings: p.findings.filter((f) => f.domain === 'web' || f.domain === 'db').map((f) => `${f.kind} ${f.domain} ${f.vdev}: ${f.message}`),
      actions: p.actions.flatMap((a) => (a.kind !== 'free-loop' && (a.domain === 'web' || a.domain === 'db') ? [`${a.kind} ${a.domain}`] : [])),
    });

    // 1. The disk asks for the default block size.
    writeCfg('');
    let r = await xvbd(e.env, 'plan', '--config', cfg, '--json');
    assert.equal(r.code, 0, r.stderr);
    let m = mine(JSON.parse(r.stdout) as Plan);
    assert.deepEqual(m.sync, ['db xvdb synced', 'web xvda out-of-sync']);
    assert.deepEqual(m.findings, [`options-mismatch web xvda: web xvda: /dev/${lw.name} has block size 4096, desired the default (512)`]);
    assert.deepEqual(m.actions, []);

    // 2. With prune: the web disk is replaced, the db disk (a loop device as a block device) left alone.
    r = await xvbd(e.env, 'plan', '--config', cfg, '--json', '--prune');
    assert.equal(r.code, 0, r.stderr);
    m = mine(JSON.parse(r.stdout) as Plan);
    assert.deepEqual(m.actions, ['replace web']);
    assert.deepEqual(m.findings, []);

    // 3. The config asks for what the device has: every disk synced, no finding, nothing to do.
    writeCfg('    options:\n      blockSize: 4096\n');
    r = await xvbd(e.env, 'plan', '--config', cfg, '--json', '--prune');
    assert.equal(r.code, 0, r.stderr);
    m = mine(JSON.parse(r.stdout) as Plan);
    assert.deepEqual(m, { sync: ['db xvdb synced', 'web xvda synced'], findings: [], actions: [] });

    // 4. status agrees (text): the db row shows the loop device as its source, synced.
    r = await xvbd(e.env, 'status', '--config', cfg, '--no-color');
    assert.match(r.stdout, new RegExp(`^db +4 +xvdb +/dev/${lb.name} +rw +synced `, 'm'), r.stdout);
  } finally {
    for (const fd of fds) sysClose(fd);
    await e.close();
  }
});
