import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { boundLoops } from './loops.js';

const here = dirname(fileURLToPath(import.meta.url));

test('the runner fails a run that leaks a loop device, names it, and frees it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-leak-'));
  const file = join(dir, 'leak.img');
  writeFileSync(file, '');
  truncateSync(file, 1 << 20);
  try {
    const res = spawnSync(process.execPath, [join(here, 'run-tests.js'), resolve(here, '../fixtures/leaky.js')], {
      // NODE_TEST_CONTEXT would make the inner node:test skip its files (we run inside a test).
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, XVBD_LEAKY_FILE: file, XVBD_LEAK_SCOPE: dir },
      encoding: 'utf8',
    });
    assert.equal(res.status, 1, res.stdout + res.stderr);
    assert.match(res.stderr, /LEAK: the tests left 1 loop device\(s\) bound/);
    assert.ok(res.stderr.includes(file), res.stderr);
    const still = [...boundLoops().values()].filter((l) => l.backingFile === file);
    assert.deepEqual(still, [], 'the runner detaches what leaked');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
