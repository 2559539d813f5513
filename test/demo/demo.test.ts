import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { runCli } from '../apply/helpers.js';
import { boundLoops } from '../helpers/loops.js';

test('xvbd demo runs the example host end to end and leaves nothing behind', async () => {
  const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('xvbd-demo-')));
  const r = await runCli(['demo', '--no-wait'], { ...process.env, NODE_TEST_CONTEXT: undefined });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Plan: 11 to attach/);
  // both status tables (before and after the guests connect): every disk synced, no finding; the db's
  // device source (a loop device standing in for an LVM volume) matches by device number
  const statuses = [...r.out.matchAll(/^11 disks; (.*)$/gm)].map((m) => m[1]!);
  assert.equal(statuses.length, 2, r.out);
  for (const st of statuses) {
    assert.match(st, /^11 synced; /, st);
    assert.match(st, /; 0 findings$/, st);
  }
  assert.match(statuses[1]!, /^11 synced; 11 healthy \|/);
  assert.match(r.out, /^db +2 +xvdb +\/dev\/loop\d+ +rw +synced +healthy /m);
  assert.doesNotMatch(r.out, /source-mismatch|WARNING/);
  assert.match(r.out, /debian-12-template\.img +used by 3: build\/51712, web1\/51712, web2\/51712 +<- shared/);
  assert.match(r.out, /no loop device left behind; temp files removed\./);
  const dirs = readdirSync(tmpdir()).filter((n) => n.startsWith('xvbd-demo-') && !before.has(n));
  assert.deepEqual(dirs, [], 'the work dir is gone');
  const left = [...boundLoops().values()].filter((l) => l.backingFile.includes('/xvbd-demo-'));
  assert.deepEqual(left.filter((l) => !dirs.some(() => false) && ![...before].some((d) => l.backingFile.includes(d))), []);
});
