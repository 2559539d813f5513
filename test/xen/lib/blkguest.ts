// A PV test guest with disks: the lab's guest kernel (Debian's, where xen-blkfront is a module; the
// lab's pre-decompressed /xvbd-lab/vmlinux when there, which spares the domain builder ~15 s of xz under
// TCG, else /xvbd-lab/vmlinuz) and an initramfs built here in dom0 from dom0's own busybox and the same kernel's
// xen-blkfront.ko (dom0 and the guest boot one kernel build). The guest's /init loads blkfront, waits for
// its two disks, reads the first line of the read-only one and writes it back, tagged, at the start of
// the read-write one: dom0 then finds that line in the read-write image, proof of I/O both ways.
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { release } from 'node:os';
import { sh } from './dom0.js';

/** The guest kernel: the plain ELF when the lab has it (a PV kernel boots from either). */
export function guestKernel(): string {
  return existsSync('/xvbd-lab/vmlinux') ? '/xvbd-lab/vmlinux' : '/xvbd-lab/vmlinuz';
}
/** what the guest writes before the line it read */
export const GUEST_WROTE = 'xvbd-guest-wrote:';

export interface GuestDisk {
  vdev: string;
  access: 'ro' | 'rw';
  target: string;
}

/** The guest's /init (busybox sh): disks named by vdev, the first read, the second written. Pure. */
export function guestInit(readVdev: string, writeVdev: string): string {
  const bb = '/bin/busybox';
  return [
    `#!${bb} sh`,
    `${bb} mount -t proc proc /proc`,
    `${bb} mount -t sysfs sys /sys`,
    `${bb} mount -t devtmpfs dev /dev`,
    `${bb} insmod /xen-blkfront.ko || echo "xvbd-guest: insmod xen-blkfront failed"`,
    'i=0',
    `while [ ! -b /dev/${readVdev} ] || [ ! -b /dev/${writeVdev} ]; do`,
    '  i=$((i+1)); [ $i -gt 120 ] && { echo "xvbd-guest: no disks"; break; }',
    `  ${bb} sleep 1`,
    'done',
    `line=$(${bb} dd if=/dev/${readVdev} bs=512 count=1 2>/dev/null | ${bb} head -n 1)`,
    `echo "xvbd-guest: read $line"`,
    `echo "${GUEST_WROTE} $line" | ${bb} dd of=/dev/${writeVdev} bs=512 count=1 conv=sync,fsync 2>/dev/null && echo "xvbd-guest: wrote"`,
    `while :; do ${bb} sleep 3600; done`,
    '',
  ].join('\n');
}

/**
 * Builds the initramfs (an uncompressed newc cpio: the kernel takes it as is) in dir; returns its path.
 * busybox is dom0's (/xvbd-bin/busybox, static), xen-blkfront.ko dom0's kernel's.
 */
export async function buildGuestInitrd(dir: string, readVdev: string, writeVdev: string): Promise<string> {
  const root = join(dir, 'guest-root');
  for (const d of ['bin', 'proc', 'sys', 'dev']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/xvbd-bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  copyFileSync(`/lib/modules/${release()}/kernel/drivers/block/xen-blkfront.ko`, join(root, 'xen-blkfront.ko'));
  writeFileSync(join(root, 'init'), guestInit(readVdev, writeVdev), { mode: 0o755 });
  const out = join(dir, 'guest-initrd.cpio');
  await sh('bash', ['-c', 'cd "$1" && find . | /xvbd-bin/busybox cpio -o -H newc > "$2" 2>/dev/null', 'cpio', root, out]);
  return out;
}

/** An xl config for the guest; `script` is written into every disk spec when given. Pure. */
export function guestConfig(o: { name: string; kernel: string; ramdisk: string; disks: readonly GuestDisk[]; script?: string }): string {
  const spec = (d: GuestDisk) => `'format=raw,vdev=${d.vdev},access=${d.access}${o.script ? `,script=${o.script}` : ''},target=${d.target}'`;
  return [
    `name = "${o.name}"`,
    'type = "pv"',
    `kernel = "${o.kernel}"`,
    `ramdisk = "${o.ramdisk}"`,
    'extra = "console=hvc0 loglevel=4"',
    'memory = 128',
    'vcpus = 1',
    'on_poweroff = "destroy"',
    'on_crash = "destroy"',
    `disk = [ ${o.disks.map(spec).join(', ')} ]`,
    '',
  ].join('\n');
}
