// Test scratch space for src/linux tests: a private directory of images under /var/tmp (a real ext4, so
// O_DIRECT works), and bookkeeping of the loop devices backed by it. Only devices whose backing file is
// inside this directory are ever detached here: other engineers' tests run on the same machine.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { boundLoops } from '../helpers/loops.js';

export class Scratch {
  readonly dir: string;

  constructor(tag: string) {
    this.dir = mkdtempSync(`/var/tmp/xvbd-test-linux-${tag}-`);
  }

  /** A sparse image of `mb` MiB with a recognisable first sector. */
  image(name: string, mb = 4, pattern?: string): string {
    const p = join(this.dir, name);
    const fd = openSync(p, 'w');
    try {
      ftruncateSync(fd, mb * 1024 * 1024);
      writeSync(fd, Buffer.from(pattern ?? `xvbd-test:${name}`), 0, undefined, 0);
    } finally {
      closeSync(fd);
    }
    return p;
  }

  inode(p: string): { dev: string; ino: string } {
    const s = statSync(p, { bigint: true });
    return { dev: String(s.dev), ino: String(s.ino) };
  }

  /** Loop devices currently bound to a file in this directory (from sysfs). */
  bound(): string[] {
    const out: string[] = [];
    for (const l of boundLoops().values()) {
      if (l.backingFile.startsWith(this.dir + '/')) out.push(l.name);
    }
    return out.sort();
  }

  /** Wait (autoclear is immediate at last close, but give the kernel a moment) until none are bound. */
  async waitNoneBound(ms = 2000): Promise<string[]> {
    const until = Date.now() + ms;
    let b = this.bound();
    while (b.length > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      b = this.bound();
    }
    return b;
  }

  /** End of a test file: assert nothing of ours is bound, detach leftovers (ours only), remove the dir. */
  async finish(): Promise<void> {
    const left = await this.waitNoneBound();
    for (const name of left) {
      try {
        execFileSync('losetup', ['-d', `/dev/${name}`], { stdio: 'ignore' });
      } catch {
        // reported below
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    assert.deepEqual(left, [], `loop devices left bound to test images: ${left.join(', ')}`);
  }
}

/** losetup -f --show FILE [extra...]: a "foreign" device made by another tool (returns "loopN"). */
export function losetup(file: string, ...extra: string[]): string {
  const out = execFileSync('losetup', ['-f', '--show', ...extra, file], { encoding: 'utf8' }).trim();
  return out.replace('/dev/', '');
}

export function losetupDetach(name: string): void {
  try {
    execFileSync('losetup', ['-d', `/dev/${name}`], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

export function sysfs(name: string, attr: string): string {
  return readFileSync(`/sys/block/${name}/${attr}`, 'utf8').trim();
}
