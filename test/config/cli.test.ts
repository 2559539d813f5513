// `xvbd validate` end to end: exit codes, summary, errors on stderr, --json, XVBD_CONFIG, usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');

function xvbd(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const env = { ...process.env, ...opts.env };
  delete env.XVBD_CONFIG;
  if (opts.env?.XVBD_CONFIG) env.XVBD_CONFIG = opts.env.XVBD_CONFIG;
  delete env.NO_COLOR;
  return spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? ROOT, encoding: 'utf8', env });
}

test('valid directory: exit 0 and a one-line summary', () => {
  const p = xvbd(['validate', '--config', 'examples/host']);
  assert.equal(p.status, 0, p.stderr);
  assert.equal(p.stdout, '4 files, 4 domains, 11 disks: valid\n');
  assert.equal(p.stderr, '');
});

test('XVBD_CONFIG is the default directory; --config wins over it', () => {
  const p = xvbd(['validate'], { env: { XVBD_CONFIG: join(ROOT, 'examples/host') } });
  assert.equal(p.status, 0, p.stderr);
  assert.equal(p.stdout, '4 files, 4 domains, 11 disks: valid\n');
  const q = xvbd(['validate', '--config', 'examples/invalid/rw-shared'], { env: { XVBD_CONFIG: join(ROOT, 'examples/host') } });
  assert.equal(q.status, 1);
});

test('invalid directory: exit 1, every error with its line and caret, a summary', () => {
  const p = xvbd(['validate', '--config', 'examples/invalid/duplicate-domain']);
  assert.equal(p.status, 1);
  assert.equal(p.stdout, '');
  assert.equal(
    p.stderr,
    [
      'examples/invalid/duplicate-domain/b.yaml:5:7: domain `web1` is defined twice; the first definition is at examples/invalid/duplicate-domain/a.yaml:4:7',
      '  5 | name: web1',
      '    |       ^',
      '  examples/invalid/duplicate-domain/a.yaml:4:7: note: the first definition of `web1` is here',
      '    4 | name: web1',
      '      |       ^',
      '2 files, 2 domains, 2 disks: 1 error',
      '',
    ].join('\n'),
  );
});

test('--json: {valid, files, domains, disks, errors}', () => {
  const ok = xvbd(['validate', '--config', 'examples/host', '--json']);
  assert.equal(ok.status, 0);
  const v = JSON.parse(ok.stdout);
  assert.deepEqual({ ...v, config: undefined }, { valid: true, config: undefined, files: 4, domains: 4, disks: 11, errors: [] });
  const bad = xvbd(['validate', '--config', '.', '--json'], { cwd: join(ROOT, 'examples/invalid/rw-and-ro') });
  assert.equal(bad.status, 1);
  const b = JSON.parse(bad.stdout);
  assert.equal(b.valid, false);
  assert.equal(b.files, 1);
  assert.equal(b.errors.length, 1);
  assert.deepEqual(
    { file: b.errors[0].file, line: b.errors[0].line, column: b.errors[0].column },
    { file: 'guests.yaml', line: 16, column: 11 },
  );
  assert.deepEqual(
    { file: b.errors[0].related[0].file, line: b.errors[0].related[0].line, column: b.errors[0].related[0].column },
    { file: 'guests.yaml', line: 8, column: 11 },
  );
  assert.equal(bad.stderr, '');
});

test('missing, not-a-directory and empty config dirs: a clear error', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'xvbd-cfg-'));
  try {
    const missing = xvbd(['validate', '--config', join(tmp, 'nope')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, new RegExp(`^${join(tmp, 'nope')}: the config directory does not exist\n`));
    writeFileSync(join(tmp, 'file'), 'x');
    const notDir = xvbd(['validate', '--config', join(tmp, 'file')]);
    assert.equal(notDir.status, 1);
    assert.match(notDir.stderr, /: the config path is not a directory\n/);
    mkdirSync(join(tmp, 'empty'));
    writeFileSync(join(tmp, 'empty', 'notes.txt'), 'x');
    const empty = xvbd(['validate', '--config', join(tmp, 'empty')]);
    assert.equal(empty.status, 1);
    assert.match(empty.stderr, /: the config directory has no \*\.yaml or \*\.yml files\n/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('which files are read: *.yaml and *.yml, sorted, not hidden, not directories, not recursive', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'xvbd-cfg-'));
  try {
    const doc = (n: string) => `apiVersion: xvbd/v1\nkind: Domain\nname: ${n}\ndisks: []\n`;
    writeFileSync(join(tmp, 'b.yml'), doc('b'));
    writeFileSync(join(tmp, 'a.yaml'), doc('a'));
    writeFileSync(join(tmp, 'B.yaml'), doc('B'));
    writeFileSync(join(tmp, '.#a.yaml'), 'garbage: [');
    writeFileSync(join(tmp, 'c.yaml~'), 'garbage: [');
    writeFileSync(join(tmp, 'notes.txt'), 'garbage: [');
    mkdirSync(join(tmp, 'sub.yaml'));
    writeFileSync(join(tmp, 'sub.yaml', 'x.yaml'), 'garbage: [');
    symlinkSync(join(tmp, 'a.yaml'), join(tmp, 'link.yaml'));
    const r = await loadConfig(tmp);
    assert.deepEqual(r.files, ['B.yaml', 'a.yaml', 'b.yml', 'link.yaml'].map((n) => join(tmp, n)));
    // link.yaml repeats domain a: the symlink is read like any file
    assert.deepEqual(r.errors.map((e) => `${e.file.slice(tmp.length + 1)}:${e.line}:${e.column}`), ['link.yaml:3:7']);
    writeFileSync(join(tmp, 'big.yaml'), '#'.repeat((1 << 20) + 1));
    const big = await loadConfig(tmp);
    assert.deepEqual(
      big.errors.map((e) => `${e.file.slice(tmp.length + 1)}:${e.line}: ${e.message}`),
      ['big.yaml:0: the file is larger than 1 MiB; a config file is a few kilobytes', 'link.yaml:3: domain `a` is defined twice; the first definition is at ' + join(tmp, 'a.yaml') + ':3:7'],
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('usage: --help exits 0, an unknown option exits 2', () => {
  const h = xvbd(['validate', '--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /^Usage: xvbd validate \[--config DIR\] \[--json\]/);
  const bad = xvbd(['validate', '--frobnicate']);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, 'xvbd validate: unknown option --frobnicate; see `xvbd validate --help`\n');
  const top = xvbd(['--help']);
  assert.match(top.stdout, /\n  validate +check the desired-state YAML/);
});

test('--color paints, --no-color and pipes do not', () => {
  const c = xvbd(['validate', '--config', 'examples/invalid/rw-shared', '--color']);
  assert.match(c.stderr, /\x1b\[31merror:/);
  const n = xvbd(['validate', '--config', 'examples/invalid/rw-shared']);
  assert.doesNotMatch(n.stderr, /\x1b\[/);
});

test('loadDesired: the desired state, or ConfigInvalidError carrying the errors', async () => {
  const { loadDesired, ConfigInvalidError } = await import('../../src/config/index.js');
  const d = await loadDesired(join(ROOT, 'examples/host'));
  assert.equal(d.domains.length, 4);
  const dir = join(ROOT, 'examples/invalid/rw-shared');
  await assert.rejects(loadDesired(dir), (err: unknown) => {
    assert.ok(err instanceof ConfigInvalidError);
    assert.equal(err.errors.length, 1);
    assert.match(err.message, /^the config in .*rw-shared is not valid \(1 error\):\n.*guests\.yaml:15:11: source /);
    return true;
  });
});
