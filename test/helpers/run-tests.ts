// `npm test`: runs every compiled test file under dist/test (except the Xen suite, which has
// its own runner) with node's test runner, then fails the run if any loop device was left bound.
// Usage: node dist/test/helpers/run-tests.js [path-prefix...]   (e.g. test/config)
import { spawnSync, execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { boundLoops, newLoops } from './loops.js';

const distTest = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) {
      if (p === join(distTest, 'xen')) continue;
      out.push(...findTests(p));
    } else if (entry.endsWith('.test.js')) {
      out.push(p);
    }
  }
  return out.sort();
}

const args = process.argv.slice(2);
// An explicit compiled file (used by the harness's own test) is run as it is.
const explicit = args.filter((a) => a.endsWith('.js')).map((a) => resolve(a));
const filters = args.filter((a) => !a.endsWith('.js')).map((f) => f.replace(/^(dist\/)?test\/?/, '').replace(/\.ts$/, ''));
const files =
  explicit.length > 0
    ? explicit
    : findTests(distTest).filter(
        (f) => filters.length === 0 || filters.some((flt) => relative(distTest, f).startsWith(flt)),
      );
if (files.length === 0) {
  process.stderr.write(`no test files match ${filters.join(' ')}\n`);
  process.exit(1);
}

// XVBD_LEAK_SCOPE=DIR limits the check to devices backed by files under DIR (the runner's own test uses it,
// so that it never judges or detaches devices of unrelated work on the same machine). Unset: every device.
const scope = process.env.XVBD_LEAK_SCOPE;
const inScope = (l: { backingFile: string }): boolean => scope === undefined || l.backingFile.startsWith(scope + '/');
const before = boundLoops();
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });

// Autoclear frees a device asynchronously once its last opener goes: give the kernel a moment.
let leaked = newLoops(before, boundLoops()).filter(inScope);
for (let i = 0; i < 40 && leaked.length > 0; i++) {
  await new Promise((r) => setTimeout(r, 50));
  leaked = newLoops(before, boundLoops()).filter(inScope);
}
let code = res.status ?? 1;
if (leaked.length > 0) {
  process.stderr.write(`\nLEAK: the tests left ${leaked.length} loop device(s) bound:\n`);
  for (const l of leaked) {
    process.stderr.write(`  /dev/${l.name} -> ${l.backingFile}\n`);
    try {
      execFileSync('losetup', ['-d', `/dev/${l.name}`]);
    } catch {
      // best effort; reported above either way
    }
  }
  code = 1;
}
process.exit(code);
