// examples/host validates; every examples/invalid/<rule>/ fails with exactly its EXPECTED errors,
// through the real CLI (`xvbd validate --config .` run inside the directory).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadConfig, errorHeadline } from '../../src/config/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const INVALID = join(ROOT, 'examples/invalid');

test('examples/host is valid and describes the host', async () => {
  const r = await loadConfig(join(ROOT, 'examples/host'));
  assert.deepEqual(r.errors.map(errorHeadline), []);
  assert.ok(r.desired);
  const d = r.desired;
  assert.deepEqual(r.files.map((f) => f.slice(f.lastIndexOf('/') + 1)), ['build.yaml', 'db.yaml', 'policy.yaml', 'web.yaml']);
  assert.deepEqual(d.domains.map((x) => x.name), ['build', 'db', 'web1', 'web2']);
  const template = '/var/lib/xvbd/images/debian-12-template.img';
  const sharers = d.domains.filter((x) => x.disks.some((k) => k.source === template));
  assert.deepEqual(sharers.map((x) => x.name), ['build', 'web1', 'web2']);
  for (const x of sharers) assert.equal(x.disks.find((k) => k.source === template)!.mode, 'ro');
  const block = d.domains.flatMap((x) => x.disks).filter((k) => k.sourceKind === 'block');
  assert.deepEqual(block.map((k) => k.source), ['/dev/vg0/db-data']);
  assert.deepEqual(d.policy.allowedRoots, ['/var/lib/xvbd/images', '/dev/vg0']);
  assert.equal(d.domains.flatMap((x) => x.disks).length, 11);
  for (const f of r.files) {
    assert.match(readFileSync(f, 'utf8'), /^# yaml-language-server: \$schema=\.\.\/\.\.\/schemas\/xvbd-v1\.schema\.json\n/, f);
  }
});

const dirs = readdirSync(INVALID).filter((n) => statSync(join(INVALID, n)).isDirectory()).sort();

test('there is one invalid example per rule', () => {
  for (const rule of ['yaml-syntax', 'unknown-key', 'wrong-type', 'bad-vdev', 'duplicate-domain', 'duplicate-vdev', 'rw-shared', 'rw-and-ro', 'outside-roots', 'relative-path', 'dotdot-path', 'not-normalised', 'two-policies', 'missing-apiversion', 'unknown-kind']) {
    assert.ok(dirs.includes(rule), rule);
  }
});

for (const name of dirs) {
  test(`examples/invalid/${name} fails with exactly its EXPECTED errors`, () => {
    const dir = join(INVALID, name);
    const expected = readFileSync(join(dir, 'EXPECTED'), 'utf8').split('\n').filter((l) => l !== '');
    assert.ok(expected.length > 0, 'EXPECTED lists at least one error');
    const p = spawnSync(process.execPath, [CLI, 'validate', '--config', '.', '--no-color'], { cwd: dir, encoding: 'utf8' });
    assert.equal(p.status, 1, p.stderr);
    assert.equal(p.stdout, '');
    const lines = p.stderr.split('\n').filter((l) => l !== '');
    // Headlines start in column 1; excerpts and notes are indented; the last line is the summary.
    const summary = lines.pop()!;
    assert.match(summary, new RegExp(`: ${expected.length} errors?$`));
    assert.deepEqual(lines.filter((l) => !l.startsWith(' ')), expected);
    // Every file:line:column headline is followed by its source line and a caret.
    lines.forEach((l, i) => {
      if (!l.startsWith(' ') && /^[^:]+:\d+:\d+: /.test(l)) {
        assert.match(lines[i + 1] ?? '', /^ +\d+ \| /, `source line after ${l}`);
        assert.match(lines[i + 2] ?? '', /^ +\| [ \t]*\^$/, `caret after ${l}`);
      }
    });
  });
}
