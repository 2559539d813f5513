// The Debian package (`npm run package` = build + packaging/build-deb.sh): built from this tree with no
// network, checked with dpkg-deb, extracted into a throw-away root, the installed CLI run with the
// installed node_modules only, the installed unit checked by systemd-analyze.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
const ARCH = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();

let dir = '';
let deb = '';
let root = '';

const run = (cmd: string, args: string[], opts: { cwd?: string } = {}) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xvbd-deb-test-'));
  const out = run('sh', [join(ROOT, 'packaging/build-deb.sh'), join(dir, 'out')]).trim();
  deb = out;
  root = join(dir, 'root');
  run('dpkg', ['-x', deb, root]);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the file is xvbd_<version>_<arch>.deb (arch-specific: a native hook and koffi inside)', () => {
  assert.equal(deb, join(dir, 'out', `xvbd_${PKG.version}_${ARCH}.deb`));
  assert.ok(statSync(deb).size > 0);
});

test('dpkg-deb --info: the control fields, the conffiles, the maintainer scripts only reload systemd', () => {
  const field = (f: string) => run('dpkg-deb', ['--field', deb, f]).trim();
  assert.equal(field('Package'), 'xvbd');
  assert.equal(field('Version'), PKG.version);
  assert.equal(field('Architecture'), ARCH);
  assert.equal(field('Depends'), 'nodejs (>= 20.19), xenstore-utils');
  assert.equal(field('Section'), 'admin');
  assert.match(field('Maintainer'), /^.+ <[^>]+@[^>]+>$/);
  assert.ok(Number(field('Installed-Size')) > 0);
  const info = run('dpkg-deb', ['--info', deb]);
  assert.match(info, /^ Description: declarative reconciler for Xen virtual block devices$/m);
  const ctl = join(dir, 'control');
  run('dpkg-deb', ['--control', deb, ctl]);
  assert.deepEqual(readdirSync(ctl).sort(), ['conffiles', 'control', 'md5sums', 'postinst', 'postrm']);
  // md5sums: every file but the conffiles, relative paths, checked against the extracted tree
  const sums = readFileSync(join(ctl, 'md5sums'), 'utf8').trim().split('\n');
  assert.ok(sums.some((l) => /^[0-9a-f]{32}  usr\/lib\/xvbd\/dist\/src\/cli\/main\.js$/.test(l)));
  assert.ok(!sums.some((l) => / etc\//.test(l)));
  const check = spawnSync('md5sum', ['--check', '--quiet', join(ctl, 'md5sums')], { encoding: 'utf8', cwd: root });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  // every regular file under /etc is a conffile (Debian policy 10.7.2)
  const etcFiles = run('dpkg-deb', ['--contents', deb]).split('\n').filter((l) => l.startsWith('-') && / \.\/etc\//.test(l)).map((l) => l.replace(/^.* \.(\/etc\/\S+)$/, '$1'));
  assert.deepEqual(readFileSync(join(ctl, 'conffiles'), 'utf8').trim().split('\n').sort(), etcFiles.sort());
  for (const s of ['postinst', 'postrm']) {
    const text = readFileSync(join(ctl, s), 'utf8');
    assert.match(text, /^#!\/bin\/sh\n/);
    assert.ok(statSync(join(ctl, s)).mode & 0o111, `${s} is executable`);
    const cmds = text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#')).join('\n');
    assert.match(cmds, /systemctl --system daemon-reload/);
    assert.doesNotMatch(cmds, /enable|start|deb-systemd|rm -|losetup|xenstore/, `${s} does nothing but daemon-reload`);
    assert.equal(spawnSync('sh', ['-n', join(ctl, s)]).status, 0, `${s} parses`);
  }
});

test('dpkg-deb --contents: the layout, owned by root, production dependencies only', () => {
  const lines = run('dpkg-deb', ['--contents', deb]).trim().split('\n');
  for (const l of lines) assert.match(l, /^\S+ root\/root /, l);
  const paths = new Set(lines.map((l) => l.replace(/^.*? \.(\/\S*)(?: -> .*)?$/, '$1')));
  for (const p of [
    '/usr/bin/xvbd',
    '/usr/lib/xvbd/dist/src/cli/main.js',
    '/usr/lib/xvbd/dist/src/config/validators.generated.cjs',
    '/usr/lib/xvbd/package.json',
    '/usr/lib/xvbd/schemas/xvbd-v1.schema.json',
    '/usr/lib/xvbd/dist/native/xvbd-hook',
    '/lib/systemd/system/xvbd.service',
    '/lib/systemd/system/xvbd-keeper@.service',
    '/etc/xen/scripts/xvbd',
    '/etc/xvbd/',
    '/etc/xvbd/README',
    '/usr/share/doc/xvbd/copyright',
    '/usr/share/doc/xvbd/changelog.gz',
    '/usr/share/doc/xvbd/README.md',
    '/usr/share/doc/xvbd/systemd.md',
    '/usr/share/doc/xvbd/examples/host/web.yaml',
  ]) {
    assert.ok(paths.has(p), `${p} is in the package`);
  }
  for (const d of Object.keys(PKG.dependencies)) assert.ok(paths.has(`/usr/lib/xvbd/node_modules/${d}/package.json`), `dependency ${d}`);
  for (const d of Object.keys(PKG.devDependencies).filter((d) => d !== '@types/react')) {
    // (@types/react is also a peer of ink's, so npm counts it as production)
    assert.ok(![...paths].some((p) => p.startsWith(`/usr/lib/xvbd/node_modules/${d}/`)), `dev dependency ${d} not shipped`);
  }
  assert.ok(![...paths].some((p) => (p.startsWith('/usr/lib/xvbd/dist/') && p.endsWith('.map')) || p.includes('/node_modules/.bin/') || p.startsWith('/usr/lib/xvbd/dist/test/')), 'no maps, .bin or tests');
  assert.ok(![...paths].some((p) => p.startsWith('/etc/xvbd/') && /\.ya?ml$/.test(p)), 'no desired state in /etc/xvbd');
  const koffi = [...paths].filter((p) => /\/koffi\/build\/koffi\/[^/]+\/$/.test(p));
  assert.deepEqual(koffi, [`/usr/lib/xvbd/node_modules/koffi/build/koffi/${ARCH === 'amd64' ? 'linux_x64' : 'linux_arm64'}/`], 'one koffi build');
});

test('extracted: /usr/bin/xvbd --version runs with the installed node_modules; links and modes', () => {
  assert.equal(readlinkSync(join(root, 'usr/bin/xvbd')), '../lib/xvbd/dist/src/cli/main.js', 'relative within /usr');
  assert.equal(readlinkSync(join(root, 'etc/xen/scripts/xvbd')), '/usr/lib/xvbd/dist/native/xvbd-hook');
  assert.ok(lstatSync(join(root, 'etc/xen/scripts/xvbd')).isSymbolicLink(), 'the hook in /etc is a link, not a conffile binary');
  assert.equal(statSync(join(root, 'usr/lib/xvbd/dist/src/cli/main.js')).mode & 0o777, 0o755);
  assert.equal(statSync(join(root, 'usr/lib/xvbd/dist/native/xvbd-hook')).mode & 0o777, 0o755);
  // the root is outside the repository: nothing can resolve into its node_modules
  assert.ok(!root.startsWith(ROOT + '/'));
  const v = spawnSync(process.execPath, [join(root, 'usr/bin/xvbd'), '--version'], { encoding: 'utf8', cwd: root });
  assert.deepEqual([v.status, v.stdout, v.stderr], [0, `xvbd ${PKG.version}\n`, '']);
  // the config loader, the precompiled validators and yaml from the installed tree: the example host valid,
  // the empty /etc/xvbd reported as such (its README is not config)
  const ok = spawnSync(process.execPath, [join(root, 'usr/bin/xvbd'), 'validate', '--config', join(root, 'usr/share/doc/xvbd/examples/host')], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /valid$/m);
  const empty = spawnSync(process.execPath, [join(root, 'usr/bin/xvbd'), 'validate', '--config', join(root, 'etc/xvbd')], { encoding: 'utf8' });
  assert.equal(empty.status, 1);
  assert.match(empty.stdout + empty.stderr, /has no \*\.yaml or \*\.yml files/);
  // koffi loads its native module from the installed tree (the loop-device code needs it)
  const k = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(join(root, 'usr/lib/xvbd/node_modules/koffi'))}); console.log('ok')`], { encoding: 'utf8' });
  assert.deepEqual([k.status, k.stdout], [0, 'ok\n'], k.stderr);
});

test('extracted: the packaged hook has /usr/bin/node and /usr/lib/xvbd/dist/src/cli/main.js compiled in', () => {
  const bin = readFileSync(join(root, 'usr/lib/xvbd/dist/native/xvbd-hook')).toString('latin1');
  assert.ok(bin.includes('/usr/bin/node\0'), 'node path');
  assert.ok(bin.includes('/usr/lib/xvbd/dist/src/cli/main.js\0'), 'CLI path');
  assert.ok(!bin.includes(ROOT), 'no path of the build tree');
  // it runs: a call without add|remove gets its usage line (exit 2, no Node started)
  const r = spawnSync(join(root, 'usr/lib/xvbd/dist/native/xvbd-hook'), [], { encoding: 'utf8', env: {} });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /usage: .* add\|remove/);
  // the installed `xvbd hook install` finds the packaged hook
  const scripts = join(dir, 'scripts');
  spawnSync('mkdir', ['-p', scripts]);
  const inst = spawnSync(process.execPath, [join(root, 'usr/bin/xvbd'), 'hook', 'install', '--dir', scripts], { encoding: 'utf8' });
  assert.equal(inst.status, 0, inst.stderr);
  assert.ok(readFileSync(join(scripts, 'xvbd')).equals(readFileSync(join(root, 'usr/lib/xvbd/dist/native/xvbd-hook'))));
});

test('extracted: systemd-analyze verify is silent on the installed unit(s)', (t) => {
  if (spawnSync('sh', ['-c', 'command -v systemd-analyze']).status !== 0) return t.skip('no systemd-analyze');
  const units = readdirSync(join(root, 'lib/systemd/system'));
  assert.ok(units.includes('xvbd.service'));
  const udir = join(dir, 'units');
  spawnSync('mkdir', ['-p', udir]);
  for (const u of units) {
    // ExecStart= names /usr/bin/xvbd: point it at the extracted one (it must exist and be executable)
    const text = readFileSync(join(root, 'lib/systemd/system', u), 'utf8');
    assert.match(text, /^ExecStart=\/usr\/bin\/xvbd /m, u);
    writeFileSync(join(udir, u), text.replaceAll(/^ExecStart=\/usr\/bin\/xvbd /gm, `ExecStart=${join(root, 'usr/bin/xvbd')} `));
  }
  const names = units.map((u) => join(udir, u.endsWith('@.service') ? u.replace('@.service', '@a.service') : u));
  for (const u of units.filter((u) => u.endsWith('@.service'))) writeFileSync(join(udir, u.replace('@.service', '@a.service')), readFileSync(join(udir, u)));
  const v = spawnSync('systemd-analyze', ['verify', ...names], { encoding: 'utf8' });
  assert.equal(v.stderr + v.stdout, '', 'systemd-analyze verify says nothing');
});
