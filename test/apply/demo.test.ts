import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { runCli } from './helpers.js';
import { boundLoops } from '../helpers/loops.js';

test('xvbd demo runs the example host end to end and leaves nothing behind', async () => {
  const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('xvbd-demo-')));
  const r = await runCli(['demo', '--no-wait'], { ...process.env, NODE_TEST_CONTEXT: undefined });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Plan: 11 to attach/);
  assert.match(r.out, /11 disks; 10 synced/);
  assert.match(r.out, /debian-12-template\.img +used by 3: build\/51712, web1\/51712, web2\/51712 +<- shared/);
  assert.match(r.out, /no loop device left behind; temp files removed\./);
  const dirs = readdirSync(tmpdir()).filter((n) => n.startsWith('xvbd-demo-') && !before.has(n));
  assert.deepEqual(dirs, [], 'the work dir is gone');
  const left = [...boundLoops().values()].filter((l) => l.backingFile.includes('/xvbd-demo-'));
  assert.deepEqual(left.filter((l) => !dirs.some(() => false) && ![...before].some((d) => l.backingFile.includes(d))), []);
});
