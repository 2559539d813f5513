// `xvbd apply` on real Xen: two disks attached to dom0 itself (xen-blkfront loaded in dom0), both ends
// Connected (4), data written into the image read back through /dev/xvdk and data written through
// /dev/xvdl found in its image; the plan is empty afterwards; both keepers hold the devices; a prune
// detach closes the frontend, removes the dirs and frees the loop device; then everything is removed.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, openSync, readSync, writeSync, closeSync, existsSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import type { XenScenario } from '../framework.js';
import { dom0Config, run, sh, waitFor, xvbd } from '../lib/dom0.js';

// devids no other scenario uses: xvdk, xvdl
const DISKS = [
  { vdev: 'xvdk', devid: 51872, file: 'apply-k.img', mode: 'ro' },
  { vdev: 'xvdl', devid: 51888, file: 'apply-l.img', mode: 'rw' },
];
const PATTERN = Buffer.from('xvbd real-Xen apply scenario: read back through blkfront\n');

const config = (images: string, disks: typeof DISKS): string => dom0Config(images, disks, { prune: false });

async function loopsOf(file: string): Promise<string[]> {
  const out = await sh('losetup', ['-j', file]);
  return out.split('\n').filter(Boolean).map((l) => l.split(':')[0]!);
}

export const scenario: XenScenario = {
  description: 'xvbd apply attaches two disks to dom0 (xen-blkfront): both ends 4, data read back, plan empty, prune detach frees',
  order: 80,
  async xen(t) {
    const images = join(t.tmpDir, 'images');
    const conf = join(t.tmpDir, 'conf');
    const runDir = join(t.tmpDir, 'run');
    mkdirSync(images, { recursive: true });
    mkdirSync(conf, { recursive: true });
    for (const d of DISKS) {
      const f = join(images, d.file);
      writeFileSync(f, Buffer.alloc(8 << 20));
    }
    const kFile = join(images, DISKS[0]!.file);
    const lFile = join(images, DISKS[1]!.file);
    const fd = openSync(kFile, 'r+');
    writeSync(fd, PATTERN, 0, PATTERN.length, 4096);
    closeSync(fd);
    writeFileSync(join(conf, 'host.yaml'), config(images, DISKS));
    // the hook as an admin installs it: written as the backends' script=, so `xl block-detach` runs its remove
    const hook = join(t.tmpDir, 'xvbd-hook');
    writeFileSync(hook, `#!/bin/sh\nexec ${process.execPath} ${join(t.repoRoot, 'dist/src/cli/main.js')} hook "$@"\n`, { mode: 0o755 });
    const env: NodeJS.ProcessEnv = { ...process.env, XVBD_RUN_DIR: runDir, XVBD_CONFIG: conf, XVBD_HOOK_SCRIPT: hook };
    delete env.XENSTORED_PATH; // the real xenstored, found as libxenstore finds it
    const be = (devid: number) => `/local/domain/0/backend/vbd/0/${devid}`;
    const fe = (devid: number) => `/local/domain/0/device/vbd/${devid}`;
    const read = async (p: string) => {
      const r = await run('xenstore-read', [p]);
      return r.code === 0 ? r.stdout.trim() : undefined;
    };
    try {
      await sh('modprobe', ['xen-blkfront']);
      await t.test('xvbd apply attaches both disks; the nodes are libxl\'s plus ours', async () => {
        const t0 = Date.now();
        const r = await xvbd(t.repoRoot, ['apply', '--auto-approve'], { env, timeoutMs: 300_000 });
        t.log(`xvbd apply output:\n${r.stdout}`);
        {
          let klog = '';
          try {
            klog = readFileSync(join(runDir, 'keeper.log'), 'utf8');
          } catch {
            klog = '(no keeper.log)';
          }
          t.log(`keeper.log:\n${klog}`);
        }
        assert.equal(r.code, 0, r.stdout + r.stderr);
        t.log(`apply of 2 disks: ${Date.now() - t0} ms`);
        for (const d of DISKS) {
          assert.equal(await read(`${be(d.devid)}/xvbd`), '1');
          assert.equal(await read(`${be(d.devid)}/mode`), d.mode === 'ro' ? 'r' : 'w');
          assert.equal(await read(`${fe(d.devid)}/backend`), be(d.devid));
          assert.equal(await read(`/libxl/0/device/vbd/${d.devid}/backend`), be(d.devid));
        }
      }, { timeoutMs: 360_000 });

      await t.test('both ends reach Connected (4) and blkback holds the loop devices', async () => {
        for (const d of DISKS) {
          await waitFor(async () => (await read(`${be(d.devid)}/state`)) === '4' && (await read(`${fe(d.devid)}/state`)) === '4', `${d.vdev} both ends 4`, {
            timeoutMs: 60_000,
          });
          const pd = await read(`${be(d.devid)}/physical-device`);
          assert.equal(readFileSync(`/sys/bus/xen-backend/devices/vbd-0-${d.devid}/physical_device`, 'utf8').trim(), pd);
        }
        t.record('states', Object.fromEntries(await Promise.all(DISKS.map(async (d) => [d.vdev, await read(`${be(d.devid)}/state`)]))));
      }, { timeoutMs: 120_000 });

      await t.test('data: the image read back through /dev/xvdk, a write through /dev/xvdl lands in its image', async () => {
        await waitFor(() => existsSync('/dev/xvdk') && existsSync('/dev/xvdl'), '/dev/xvdk and /dev/xvdl', { timeoutMs: 30_000 });
        const buf = Buffer.alloc(PATTERN.length);
        const k = openSync('/dev/xvdk', 'r');
        readSync(k, buf, 0, buf.length, 4096);
        closeSync(k);
        assert.equal(buf.toString(), PATTERN.toString());
        const msg = Buffer.alloc(512);
        msg.write('written by dom0 through xen-blkfront into the rw disk\n');
        const l = openSync('/dev/xvdl', 'r+');
        writeSync(l, msg, 0, 512, 8192);
        fsyncSync(l);
        closeSync(l);
        const img = readFileSync(lFile);
        assert.equal(img.subarray(8192, 8192 + 512).toString(), msg.toString());
      }, { timeoutMs: 60_000 });

      await t.test('converged: xvbd plan --detailed-exitcode says 0; both keepers hold one fd per backend', async () => {
        const p = await xvbd(t.repoRoot, ['plan', '--detailed-exitcode'], { env });
        assert.equal(p.code, 0, p.stdout + p.stderr);
        const k = await xvbd(t.repoRoot, ['keeper', '--list'], { env });
        assert.equal(k.code, 0, k.stderr);
        const keepers = JSON.parse(k.stdout) as { slot: string; held: { backend: string; live: boolean }[] }[];
        assert.deepEqual(keepers.map((x) => x.slot).sort(), ['a', 'b']);
        for (const x of keepers) assert.deepEqual(x.held.map((h) => h.backend).sort(), DISKS.map((d) => be(d.devid)).sort(), `keeper ${x.slot}`);
      });

      await t.test('a disk removed from the config + apply --prune: the frontend closes, the dirs go, the loop device is freed', async () => {
        writeFileSync(join(conf, 'host.yaml'), config(images, DISKS.slice(0, 1)));
        const dev = (await loopsOf(lFile))[0];
        assert.ok(dev, 'xvdl has its loop device');
        const t0 = Date.now();
        const r = await xvbd(t.repoRoot, ['apply', '--auto-approve', '--prune'], { env, timeoutMs: 120_000 });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /removed\n/, 'the frontend closed before the time-out');
        t.log(`prune detach: ${Date.now() - t0} ms`);
        assert.equal(await read(be(51888)), undefined);
        assert.equal(await read(fe(51888)), undefined);
        await waitFor(async () => (await loopsOf(lFile)).length === 0, `${dev} freed`, { timeoutMs: 30_000 });
      }, { timeoutMs: 180_000 });

      await t.test('xl block-list shows the disk xvbd attached; xl block-detach removes it (running the hook\'s remove)', async () => {
        const list = await run('xl', ['block-list', '0'], { env });
        t.log(`xl block-list 0:\n${list.stdout}${list.stderr}`);
        assert.equal(list.code, 0, list.stderr);
        assert.match(list.stdout, /^51872\s/m);
        const kDev = (await loopsOf(kFile))[0];
        assert.ok(kDev);
        const t0 = Date.now();
        const d = await run('xl', ['block-detach', '0', 'xvdk'], { env, timeoutMs: 120_000 });
        t.log(`xl block-detach 0 xvdk: exit ${d.code} in ${Date.now() - t0} ms\n${d.stdout}${d.stderr}`);
        assert.equal(d.code, 0, d.stdout + d.stderr);
        assert.equal(await read(be(51872)), undefined);
        assert.equal(await read(`/libxl/0/device/vbd/51872`), undefined);
        await waitFor(async () => (await loopsOf(kFile)).length === 0, `${kDev} freed`, { timeoutMs: 30_000 });
      }, { timeoutMs: 180_000 });
    } finally {
      // remove what is left: close the frontends first (blkfront), then the dirs; the keeper lets go
      for (const d of DISKS) {
        await run('xenstore-write', [`${be(d.devid)}/online`, '0', `${be(d.devid)}/state`, '5']);
      }
      await new Promise((r) => setTimeout(r, 3000));
      for (const d of DISKS) {
        await run('xenstore-rm', [be(d.devid)]);
        await run('xenstore-rm', [fe(d.devid)]);
        await run('xenstore-rm', [`/libxl/0/device/vbd/${d.devid}`]);
      }
      for (const f of [kFile, lFile]) {
        await waitFor(async () => (await loopsOf(f)).length === 0, `${f} released`, { timeoutMs: 15_000 }).catch(async () => {
          for (const l of await loopsOf(f)) await run('losetup', ['-d', l]);
        });
      }
    }
  },
};
