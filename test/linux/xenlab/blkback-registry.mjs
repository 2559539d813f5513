// Runs in the xenlab dom0 (chroot with the host's node): LoopRegistry + the real xen-blkback.
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, ftruncateSync, readFileSync } from 'node:fs';
import { LoopRegistry, listLoops, freeLoop, isBound } from '/xvbd/dist/src/linux/index.js';

let failed = 0;
const check = (ok, what) => { console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`); if (!ok) failed++; };
const xs = (...a) => execFileSync('xenstore-write', a);
const rm = (p) => { try { execFileSync('xenstore-rm', [p]); } catch {} };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const vbdSys = (fe, devid) => `/sys/bus/xen-backend/devices/vbd-${fe}-${devid}`;

function image(p) { const fd = openSync(p, 'w'); ftruncateSync(fd, 64 << 20); closeSync(fd); return p; }

/** Frontend + backend dirs for frontend domid `fe` (need not exist), as blkback-raw does. */
function backend(fe, devid, h, mode) {
  const B = `/local/domain/0/backend/vbd/${fe}/${devid}`;
  const F = `/local/domain/${fe}/device/vbd/${devid}`;
  xs(`${F}/state`, '1', `${F}/backend`, B, `${F}/backend-id`, '0', `${F}/virtual-device`, String(devid), `${F}/device-type`, 'disk');
  xs(`${B}/frontend`, F, `${B}/frontend-id`, String(fe), `${B}/online`, '1', `${B}/state`, '1', `${B}/params`, h.devPath,
     `${B}/mode`, mode, `${B}/type`, 'phy', `${B}/device-type`, 'disk');
  xs(`${B}/physical-device`, `${h.major.toString(16)}:${h.minor.toString(16)}`);
  return { B, F };
}
async function teardown({ B, F }) { xs(`${F}/state`, '6'); await sleep(500); rm(B); rm(F); }
async function waitFor(pred, ms = 5000) { const t = Date.now(); while (!pred() && Date.now() - t < ms) await sleep(100); return pred(); }

const reg = new LoopRegistry({ allowedRoots: ['/tmp'] });
try {
  // 1. rw disk: blkback opens the device we hold O_EXCL
  const rw = await reg.acquire({ key: 'vbd/1/51712', source: image('/tmp/rw.img'), readOnly: false });
  console.log(`rw: ${rw.name} diskseq ${rw.diskseq} ${rw.major}:${rw.minor}`);
  const a = backend(1, 51712, rw, 'w');
  check(await waitFor(() => existsSync(`${vbdSys(1, 51712)}/physical_device`)), 'blkback opened our O_EXCL-held rw device (physical_device in sysfs)');
  const l = listLoops({ held: reg.heldDiskseqs() }).find((x) => x.name === rw.name);
  check(l?.ours === true && l?.heldByUs === true && l?.autoclear === true && l?.readOnly === false, `listLoops sees it: ${JSON.stringify(l)}`);

  // 2. ro disk shared by two backends: one device
  const img = image('/tmp/ro.img');
  const r1 = await reg.acquire({ key: 'vbd/2/51712', source: img, readOnly: true });
  const r2 = await reg.acquire({ key: 'vbd/3/51712', source: img, readOnly: true });
  check(r1.diskseq === r2.diskseq, 'two read-only disks of one file share one device');
  const b2 = backend(2, 51712, r1, 'r');
  const b3 = backend(3, 51712, r2, 'r');
  check(await waitFor(() => existsSync(`${vbdSys(2, 51712)}/physical_device`) && existsSync(`${vbdSys(3, 51712)}/physical_device`)), 'blkback opened the shared ro device for both');

  // 3. our last fd goes while blkback holds it: stays bound; freeing by proof is deferred
  reg.release('vbd/1/51712');
  check(isBound(rw.name, rw.diskseq), 'released by us, still bound: blkback holds it');
  const fr = freeLoop({ name: rw.name, diskseq: rw.diskseq, backing: rw.backing });
  check(fr.deferred === true, `freeLoop with proof while blkback holds it: deferred (${JSON.stringify(fr)})`);
  await teardown(a);
  check(await waitFor(() => !isBound(rw.name, rw.diskseq)), 'backend removed: blkback let go, autoclear freed the device');

  // 4. ro device: release both users, then the backends go
  reg.release('vbd/2/51712'); reg.release('vbd/3/51712');
  check(isBound(r1.name, r1.diskseq), 'ro device still bound while blkback holds it');
  await teardown(b2); await teardown(b3);
  check(await waitFor(() => !isBound(r1.name, r1.diskseq)), 'ro device freed after both backends went');
  check(listLoops().filter((x) => x.ours).length === 0, 'no device of ours left');
} catch (e) {
  console.log(`FAIL exception: ${e?.stack ?? e}`);
  failed++;
} finally {
  reg.closeAll();
}
console.log(failed === 0 ? 'ALL PASS' : `${failed} FAILED`);
process.exit(failed === 0 ? 0 : 1);
