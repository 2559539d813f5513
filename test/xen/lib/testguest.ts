// A PV guest that can test: the lab's guest kernel, and an initramfs built here in dom0 with dom0's
// static busybox (all applets), the kernel's xen-blkfront.ko, and xsop (test/xen/guest/xsop.c, built
// static on the host by run.ts): one xenstore operation over the guest's own /dev/xen/xenbus, printing
// xenstored's error names. The guest's /init is an agent: dom0 writes a shell script to the guest's
// own `data/xvbd/cmd/<n>`, the guest runs it and answers in `data/xvbd/out/<n>` (the last 3000 bytes of
// its output) and `data/xvbd/rc/<n>` (written last: the answer is complete). `data` is the guest's own
// (libxl makes it n<domid>), so the guest writes there with nothing but its own xenbus connection.
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { release } from 'node:os';
import { run, sh, waitFor } from './dom0.js';
import { guestConfig, guestKernel, type GuestDisk } from './blkguest.js';
import type { XsClient } from '../../../src/xenstore/api.js';

/** Where run.ts puts the static xsop (dist/ is shared into dom0 at the repo's own path). */
export const xsopPath = (repoRoot: string) => join(repoRoot, 'dist/test/xen/xsop');

const AGENT = 'data/xvbd';

/** The guest's /init (busybox sh): mounts, blkfront, then the agent loop. Pure. */
export function agentInit(): string {
  return [
    '#!/bin/busybox sh',
    '/bin/busybox --install -s /bin',
    'export PATH=/bin',
    'mount -t proc proc /proc',
    'mount -t sysfs sys /sys',
    'mount -t devtmpfs dev /dev',
    'mkdir -p /tmp && mount -t tmpfs tmp /tmp',
    'insmod /xen-blkfront.ko || echo "xvbd-guest: insmod xen-blkfront failed"',
    'i=0; while [ ! -e /dev/xen/xenbus ] && [ $i -lt 200 ]; do i=$((i+1)); usleep 100000; done',
    'export XENSTORED_PATH=/dev/xen/xenbus',
    `xsop write ${AGENT}/ready 1 >/dev/null || echo "xvbd-guest: cannot write ${AGENT}/ready"`,
    'echo "xvbd-guest: agent up"',
    'n=1',
    'while :; do',
    `  if xsop read ${AGENT}/cmd/$n > /tmp/cmd.$n 2>/dev/null; then`,
    '    sh /tmp/cmd.$n > /tmp/out.$n 2>&1; rc=$?',
    `    xsop write ${AGENT}/out/$n "$(tail -c 3000 /tmp/out.$n)" >/dev/null`,
    `    xsop write ${AGENT}/rc/$n "$rc" >/dev/null`,
    '    n=$((n+1))',
    '  else',
    '    usleep 200000',
    '  fi',
    'done',
    '',
  ].join('\n');
}

/** Builds the agent's initramfs (uncompressed newc cpio) in dir; returns its path. */
export async function buildTestGuestInitrd(dir: string, repoRoot: string): Promise<string> {
  const xsop = xsopPath(repoRoot);
  if (!existsSync(xsop)) throw new Error(`${xsop} missing: run.ts builds it before the boot`);
  const root = join(dir, 'testguest-root');
  for (const d of ['bin', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/xvbd-bin/busybox', join(root, 'bin/busybox'));
  copyFileSync(xsop, join(root, 'bin/xsop'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  chmodSync(join(root, 'bin/xsop'), 0o755);
  copyFileSync(`/lib/modules/${release()}/kernel/drivers/block/xen-blkfront.ko`, join(root, 'xen-blkfront.ko'));
  writeFileSync(join(root, 'init'), agentInit(), { mode: 0o755 });
  const out = join(dir, 'testguest-initrd.cpio');
  await sh('bash', ['-c', 'cd "$1" && find . | /xvbd-bin/busybox cpio -o -H newc > "$2" 2>/dev/null', 'cpio', root, out]);
  return out;
}

export interface GuestRun {
  rc: number;
  out: string;
}

/** A running test guest: run scripts in it, destroy it. */
export class TestGuest {
  private seq = 0;
  private constructor(
    readonly name: string,
    readonly domid: number,
    private readonly xs: XsClient,
  ) {}

  /** `xl create` of the agent guest (no disks unless given) and waits until its agent answers. */
  static async create(o: { name: string; dir: string; ramdisk: string; xs: XsClient; disks?: GuestDisk[]; log?: (l: string) => void }): Promise<TestGuest> {
    const cfg = join(o.dir, `${o.name}.cfg`);
    writeFileSync(cfg, guestConfig({ name: o.name, kernel: guestKernel(), ramdisk: o.ramdisk, disks: o.disks ?? [] }));
    const t0 = Date.now();
    const r = await run('xl', ['create', cfg], { timeoutMs: 180_000 });
    if (r.code !== 0) throw new Error(`xl create ${o.name}: exit ${r.code}: ${r.stdout}${r.stderr}`);
    const domid = Number(await sh('xl', ['domid', o.name]));
    const g = new TestGuest(o.name, domid, o.xs);
    await waitFor(async () => (await o.xs.read(`/local/domain/${domid}/${AGENT}/ready`)) === '1', `${o.name}'s agent`, { timeoutMs: 180_000, intervalMs: 500 });
    o.log?.(`${o.name} (domid ${domid}) up in ${Date.now() - t0} ms`);
    return g;
  }

  /** Runs a busybox sh script in the guest; its exit code and the end of its output. */
  async run(script: string, timeoutMs = 90_000): Promise<GuestRun> {
    const n = ++this.seq;
    const base = `/local/domain/${this.domid}/${AGENT}`;
    await this.xs.write(`${base}/cmd/${n}`, script);
    const rc = await waitFor(async () => await this.xs.read(`${base}/rc/${n}`), `${this.name}: the answer to command ${n} (${script.split('\n')[0]})`, { timeoutMs, intervalMs: 200 });
    const out = (await this.xs.read(`${base}/out/${n}`)) ?? '';
    return { rc: Number(rc), out };
  }

  /** As run(), failing unless the script exits 0; its output. */
  async ok(script: string, timeoutMs?: number): Promise<string> {
    const r = await this.run(script, timeoutMs);
    if (r.rc !== 0) throw new Error(`${this.name}: \`${script}\` exited ${r.rc}: ${r.out}`);
    return r.out;
  }

  async destroy(): Promise<void> {
    await run('xl', ['destroy', this.name], { timeoutMs: 120_000 });
  }
}
