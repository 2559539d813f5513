// Loop-device bookkeeping for tests: what is bound now, read from sysfs (no ioctl, no koffi),
// so the leak check works even when the code under test is broken.
import { readdirSync, readFileSync } from 'node:fs';

export interface BoundLoop {
  name: string;
  backingFile: string;
}

/** Every bound loop device (one with a backing file), by name. */
export function boundLoops(): Map<string, BoundLoop> {
  const out = new Map<string, BoundLoop>();
  let names: string[];
  try {
    names = readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n));
  } catch {
    return out;
  }
  for (const name of names) {
    try {
      const backingFile = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
      out.set(name, { name, backingFile });
    } catch {
      // not bound: no loop/ directory or no backing_file
    }
  }
  return out;
}

/** The bound loop devices whose backing file lies in `dir`: name -> backing file. */
export function loopsUnder(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of boundLoops().values()) if (l.backingFile.startsWith(dir + '/')) out.set(l.name, l.backingFile);
  return out;
}

/** The devices bound in `after` that were not bound (to the same file) in `before`. */
export function newLoops(before: Map<string, BoundLoop>, after: Map<string, BoundLoop>): BoundLoop[] {
  const added: BoundLoop[] = [];
  for (const [name, l] of after) {
    const b = before.get(name);
    if (!b || b.backingFile !== l.backingFile) added.push(l);
  }
  return added;
}
