// Every rule of the format, with exact positions and messages (in-memory files), and the
// desired state the loader builds (defaults, positions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigTexts, errorHeadline, formatErrors, parseDuration, type ConfigError } from '../../src/config/index.js';

const H = 'apiVersion: xvbd/v1\n';
const dom = (name: string, disks: string) => `${H}kind: Domain\nname: ${name}\ndisks:\n${disks}`;
const disk = (vdev: string, src: string, extra = '') => `  - vdev: ${vdev}\n    ${src}\n${extra}`;
const IMG = '/var/lib/xvbd/images';

function check(files: Record<string, string>) {
  return checkConfigTexts(Object.entries(files).map(([file, text]) => ({ file, text })));
}
const headlines = (errors: ConfigError[]) => errors.map(errorHeadline);

// [rule, files, the exact error headlines]
const CASES: [string, Record<string, string>, string[]][] = [
  ['valid: nothing to say', { 'a.yaml': dom('web1', disk('xvda', `file: ${IMG}/a.img`)) }, []],
  [
    'YAML syntax error, and the next file is still checked',
    { 'a.yaml': `${H}kind: Domain\nname: [web1\n`, 'b.yaml': dom('web2', disk('xvdq0', `file: ${IMG}/b.img`)) },
    [
      'a.yaml:4:1: YAML syntax error: flow sequence in block collection must be sufficiently indented and end with a ]',
      'b.yaml:5:11: vdev `xvdq0` names partition 0; the whole disk is written `xvdq`',
    ],
  ],
  ['tab indentation', { 'a.yaml': `${H}kind: Domain\nname: w\ndisks:\n\t- vdev: xvda\n` }, ['a.yaml:5:1: YAML syntax error: tabs cannot indent YAML; use spaces']],
  [
    'duplicate key names both keys',
    { 'a.yaml': `${H}kind: Domain\nname: w\nname: x\ndisks: []\n` },
    ['a.yaml:4:1: key `name` appears twice in this mapping; the first is at a.yaml:3:1'],
  ],
  ['document not a mapping', { 'a.yaml': '- 1\n' }, ['a.yaml:1:1: a document must be a mapping with `apiVersion` and `kind`']],
  ['empty documents are skipped', { 'a.yaml': '---\n# only a comment\n---\n' + dom('w', '  []\n').replace('disks:\n', 'disks:') }, []],
  ['missing apiVersion', { 'a.yaml': 'kind: Policy\n' }, ['a.yaml:1:1: the document has no `apiVersion`; add `apiVersion: xvbd/v1`']],
  ['wrong apiVersion', { 'a.yaml': 'apiVersion: v1\nkind: Policy\n' }, ['a.yaml:1:13: unsupported apiVersion `v1`; this xvbd reads `xvbd/v1`']],
  ['missing kind', { 'a.yaml': `${H}name: w\n` }, ['a.yaml:1:1: the document has no `kind`; add `kind: Domain` or `kind: Policy`']],
  ['unknown kind with suggestion', { 'a.yaml': `${H}kind: policy\n` }, ['a.yaml:2:7: unknown kind `policy`; did you mean `Policy`?']],
  ['kind not a string', { 'a.yaml': `${H}kind: [Domain]\n` }, ['a.yaml:2:7: `kind` must be `Domain` or `Policy`, not a list']],
  [
    'unknown keys: suggestion or the list',
    { 'a.yaml': dom('w', disk('xvda', `flie: ${IMG}/a.img`)) + `prune: true\n` },
    [
      'a.yaml:5:5: a disk needs a source: `file: /path/to/image` or `device: /dev/...`',
      'a.yaml:6:5: unknown key `flie` in a disk; did you mean `file`?',
      'a.yaml:7:1: unknown key `prune` in a Domain document; expected `apiVersion`, `kind`, `name` or `disks`',
    ],
  ],
  [
    'wrong types',
    { 'a.yaml': dom('w', disk('true', `file: ${IMG}/a.img`, '    mode: 1\n    options: []\n')) },
    [
      'a.yaml:5:11: `vdev` must be a string or a whole number, such as `xvda`, not `true`',
      'a.yaml:7:11: `mode` must be `ro` or `rw`, not the number 1',
      'a.yaml:8:14: `options` must be a mapping, not a list',
    ],
  ],
  ['numeric vdev is a devid', { 'a.yaml': dom('w', disk('51712', `file: ${IMG}/a.img`) + disk('xvda', `file: ${IMG}/b.img`)) }, [
    'a.yaml:7:11: vdev `xvda` is devid 51712, the same device as `51712` at a.yaml:5:11 in domain `w`',
  ]],
  ['negative vdev', { 'a.yaml': dom('w', disk('-5', `file: ${IMG}/a.img`)) }, ['a.yaml:5:11: `vdev` must be at least 0, not -5']],
  [
    'duplicate domain across files, and within one file',
    { 'a.yaml': dom('w', '  []\n').replace('disks:\n', 'disks:'), 'b.yaml': `${dom('w', '  []\n').replace('disks:\n', 'disks:')}---\n${dom('w', '  []\n').replace('disks:\n', 'disks:')}` },
    [
      'b.yaml:3:7: domain `w` is defined twice; the first definition is at a.yaml:3:7',
      'b.yaml:8:7: domain `w` is defined twice; the first definition is at a.yaml:3:7',
    ],
  ],
  [
    'duplicate vdev: same spelling, other spelling, hd and its number',
    { 'a.yaml': dom('w', disk('hdc', `file: ${IMG}/a.img`) + disk('HDC', `file: ${IMG}/b.img`) + disk('5632', `file: ${IMG}/c.img`)) },
    [
      'a.yaml:7:11: vdev `hdc` is used twice in domain `w`; the first use is at a.yaml:5:11',
      'a.yaml:9:11: vdev `5632` is devid 5632, the same device as `hdc` at a.yaml:5:11 in domain `w`',
    ],
  ],
  ['the same vdev in two domains is fine', { 'a.yaml': `${dom('a', disk('xvda', `file: ${IMG}/a.img`))}---\n${dom('b', disk('xvda', `file: ${IMG}/b.img`))}` }, []],
  [
    'read-write source shared, reported once per extra disk',
    {
      'a.yaml': dom('a', disk('xvdb', `file: ${IMG}/d.img`)),
      'b.yaml': dom('b', disk('xvdb', `file: ${IMG}/d.img`) + disk('xvdc', `file: ${IMG}/d.img`, '    mode: rw\n')),
    },
    [
      `b.yaml:6:11: source \`${IMG}/d.img\` is already used read-write by domain \`a\` vdev \`xvdb\` at a.yaml:6:11; a read-write source can back only one disk`,
      `b.yaml:8:11: source \`${IMG}/d.img\` is already used read-write by domain \`a\` vdev \`xvdb\` at a.yaml:6:11; a read-write source can back only one disk`,
    ],
  ],
  [
    'read-only after read-write',
    { 'a.yaml': dom('a', disk('xvdb', `device: /dev/vg0/x`)), 'b.yaml': dom('b', disk('xvdb', `device: /dev/vg0/x`, '    mode: ro\n')) },
    ['b.yaml:6:13: source `/dev/vg0/x` is used read-only here but read-write by domain `a` vdev `xvdb` at a.yaml:6:13; make both read-only or give each its own image'],
  ],
  [
    'read-only shared by many is fine, even twice in one domain',
    { 'a.yaml': dom('a', disk('xvda', `file: ${IMG}/t.img`, '    mode: ro\n') + disk('xvdb', `file: ${IMG}/t.img`, '    mode: ro\n')), 'b.yaml': dom('b', disk('xvda', `file: ${IMG}/t.img`, '    mode: ro\n')) },
    [],
  ],
  [
    'Policy defaults.mode ro makes sharing fine',
    { 'a.yaml': `${dom('a', disk('xvda', `file: ${IMG}/t.img`))}---\n${dom('b', disk('xvda', `file: ${IMG}/t.img`))}---\n${H}kind: Policy\ndefaults: {mode: ro}\n` },
    [],
  ],
  [
    'outside allowedRoots; a root is not a prefix of a sibling',
    { 'p.yaml': `${H}kind: Policy\nallowedRoots: [${IMG}]\n`, 'a.yaml': dom('a', disk('xvda', `file: ${IMG}2/a.img`) + disk('xvdb', `file: ${IMG}/ok.img`)) },
    [`a.yaml:6:11: source \`${IMG}2/a.img\` is outside the allowed roots (\`${IMG}\`) set at p.yaml:3:1`],
  ],
  ['root `/` allows everything', { 'p.yaml': `${H}kind: Policy\nallowedRoots: [/]\n`, 'a.yaml': dom('a', disk('xvda', 'file: /x.img')) }, []],
  [
    'paths: relative, .., //, trailing /, ., control characters, empty',
    {
      'a.yaml': dom(
        'a',
        disk('xvda', 'file: x.img') +
          disk('xvdb', 'file: /a/../b.img') +
          disk('xvdc', 'file: /a//b.img') +
          disk('xvdd', 'device: /dev/vg0/') +
          disk('xvde', 'file: /a/./b.img') +
          disk('xvdf', 'file: "/a/b\\n.img"') +
          disk('xvdg', 'file: ""'),
      ),
    },
    [
      'a.yaml:6:11: source path `x.img` is relative; write an absolute path (starting with `/`)',
      'a.yaml:8:11: source path `/a/../b.img` contains `..`; write the path without it',
      'a.yaml:10:11: source path `/a//b.img` is not normalised; write `/a/b.img`',
      'a.yaml:12:13: source path `/dev/vg0/` is not normalised; write `/dev/vg0`',
      'a.yaml:14:11: source path `/a/./b.img` is not normalised; write `/a/b.img`',
      'a.yaml:16:11: source path `/a/b\n.img` contains a control character (a newline, tab or NUL); remove it',
      'a.yaml:18:11: source path `` is empty; write an absolute path',
    ],
  ],
  ['device outside /dev', { 'a.yaml': dom('a', disk('xvda', 'device: /srv/disk')) }, ['a.yaml:6:13: device `/srv/disk` is not under `/dev/`; a `device` source is a block device node (use `file:` for an image)']],
  [
    'two policies, the second names the first',
    { 'a.yaml': `${H}kind: Policy\n`, 'b.yaml': `# second\n${H}kind: Policy\n` },
    ['b.yaml:3:7: a second Policy; a config directory has at most one, and the first is at a.yaml:2:7'],
  ],
  [
    'Policy values',
    { 'p.yaml': `${H}kind: Policy\nprune: 1\nserve: atach\ndetachTimeout: 2h\nallowedRoots: [rel]\ndefaults:\n  backendDomain: 1.5\n  options: {blockSize: 4095}\n` },
    [
      'p.yaml:3:8: `prune` must be `true` or `false`, not the number 1',
      'p.yaml:4:8: `serve` must be `attach`, `hook` or `both`, not the string `atach`; did you mean `attach`?',
      'p.yaml:5:16: `detachTimeout: 2h` is not valid: a duration is a number with a unit `ms`, `s` or `m`, such as `10s` or `1500ms`',
      'p.yaml:6:16: allowed root `rel` is relative; write an absolute path (starting with `/`)',
      'p.yaml:8:18: `backendDomain` must be a whole number, such as 0, not the number 1.5',
      'p.yaml:9:24: `blockSize` must be 512, 1024, 2048 or 4096, not the number 4095',
    ],
  ],
  ['detachTimeout above 1h', { 'p.yaml': `${H}kind: Policy\ndetachTimeout: 61m\n` }, ['p.yaml:3:16: `detachTimeout` 61m is longer than the maximum, 1h']],
  [
    'required keys; a typo of a required key says only "did you mean"',
    { 'a.yaml': `${H}kind: Domain\nnmae: w\n` },
    ['a.yaml:1:1: a Domain document needs `disks` (a list, possibly empty)', 'a.yaml:3:1: unknown key `nmae` in a Domain document; did you mean `name`?'],
  ],
  [
    'aliases are followed for positions (an error in an anchored node is reported once, at the anchor)',
    { 'a.yaml': `${H}kind: Domain\nname: w\ndisks:\n  - vdev: xvda\n    file: ${IMG}/a.img\n    options: &o {discard: maybe}\n  - vdev: xvdb\n    file: ${IMG}/b.img\n    options: *o\n` },
    ['a.yaml:7:27: `discard` must be `true` or `false`, not the string `maybe`'],
  ],
  ['kind a number', { 'a.yaml': `${H}kind: 5\n` }, ['a.yaml:2:7: `kind` must be `Domain` or `Policy`, not the number 5']],
  [
    'disk items that are not mappings: the type error only',
    { 'a.yaml': `${H}kind: Domain\nname: w\ndisks:\n  -\n  - [xvda]\n` },
    ['a.yaml:5:4: an item of `disks` must be a mapping, not empty', 'a.yaml:6:5: an item of `disks` must be a mapping, not a list'],
  ],
  [
    'a broken allowed root does not make every source "outside"',
    { 'p.yaml': `${H}kind: Policy\nallowedRoots: [${IMG}/, /dev/vg0]\n`, 'a.yaml': dom('a', disk('xvda', `file: ${IMG}/a.img`)) },
    [`p.yaml:3:16: allowed root \`${IMG}/\` is not normalised; write \`${IMG}\``],
  ],
  ['__proto__ is just an unknown key', { 'a.yaml': `${H}kind: Policy\n__proto__: {prune: true}\n` }, ['a.yaml:3:1: unknown key `__proto__` in the Policy document; expected `apiVersion`, `kind`, `prune`, `allowedRoots`, `serve`, `detachTimeout` or `defaults`']],
  ['CRLF line endings and a BOM', { 'a.yaml': `\uFEFF${dom('w', disk('xvda0', 'file: /a'))}`.replace(/\n/g, '\r\n') }, ['a.yaml:5:11: vdev `xvda0` names partition 0; the whole disk is written `xvda`']],
  ['mode in capitals gets a suggestion', { 'a.yaml': dom('w', disk('xvda', 'file: /a', '    mode: RO\n')) }, ['a.yaml:7:11: `mode` must be `ro` or `rw`, not the string `RO`; did you mean `ro`?']],
];

for (const [rule, files, expected] of CASES) {
  test(`rule: ${rule}`, () => {
    const r = check(files);
    assert.deepEqual(headlines(r.errors), expected);
    assert.equal(r.desired === undefined, expected.length > 0, 'desired is present exactly when there is no error');
  });
}

test('errors carry the source line and related locations', () => {
  const r = check({ 'a.yaml': dom('w', '  []\n').replace('disks:\n', 'disks:'), 'b.yaml': '# again\n' + dom('w', '  []\n').replace('disks:\n', 'disks:') });
  assert.equal(r.errors.length, 1);
  const e = r.errors[0]!;
  assert.equal(e.sourceLine, 'name: w');
  assert.deepEqual(e.related, [{ file: 'a.yaml', line: 3, column: 7, message: 'the first definition of `w` is here', sourceLine: 'name: w' }]);
  assert.equal(
    formatErrors(r.errors),
    [
      'b.yaml:4:7: domain `w` is defined twice; the first definition is at a.yaml:3:7',
      '  4 | name: w',
      '    |       ^',
      '  a.yaml:3:7: note: the first definition of `w` is here',
      '    3 | name: w',
      '      |       ^',
      '',
    ].join('\n'),
  );
  const colored = formatErrors(r.errors, { color: true });
  assert.match(colored, /\x1b\[31merror:\x1b\[39m domain `w` is defined twice/);
  assert.equal(colored.replace(/\x1b\[[0-9;]*m/g, '').replace(' error:', ''), formatErrors(r.errors));
});

test('the caret keeps tabs so it lines up', () => {
  const r = check({ 'a.yaml': `${H}kind: Domain\nname: w\ndisks: []\nx:\t"\tv"\n` });
  assert.deepEqual(headlines(r.errors), ['a.yaml:5:1: unknown key `x` in a Domain document; expected `apiVersion`, `kind`, `name` or `disks`']);
  const r2 = check({ 'a.yaml': `${H}kind: Domain\nname: w\ndisks: [{vdev: xvda,\tfile: x}]\n` });
  assert.equal(formatErrors(r2.errors).split('\n')[2], '    |                     \t      ^');
});

test('the desired state: every field, defaults from the Policy, positions', () => {
  const r = check({
    'a.yaml': dom(
      'web1',
      disk('xvda', `file: ${IMG}/t.img`, '    mode: ro\n') +
        disk('XVDQ', 'device: /dev/vg0/d', '    backendDomain: 3\n    options: {directIo: true, blockSize: 4096}\n'),
    ),
    'p.yaml': `${H}kind: Policy\nprune: true\nserve: hook\ndetachTimeout: 1.5s\nallowedRoots: [${IMG}, /dev/vg0]\ndefaults:\n  backendDomain: 1\n  options: {discard: true}\n`,
  });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.desired, {
    domains: [
      {
        name: 'web1',
        at: { file: 'a.yaml', line: 1, column: 1 },
        disks: [
          {
            vdev: 'xvda',
            devid: 51712,
            source: `${IMG}/t.img`,
            sourceKind: 'file',
            mode: 'ro',
            options: { directIo: false, discard: true },
            backendDomid: 1,
            at: { file: 'a.yaml', line: 5, column: 5 },
          },
          {
            vdev: 'xvdq',
            devid: 268439552,
            source: '/dev/vg0/d',
            sourceKind: 'block',
            mode: 'rw',
            options: { directIo: true, blockSize: 4096, discard: true },
            backendDomid: 3,
            at: { file: 'a.yaml', line: 8, column: 5 },
          },
        ],
      },
    ],
    policy: {
      prune: true,
      allowedRoots: [IMG, '/dev/vg0'],
      serve: 'hook',
      detachTimeoutMs: 1500,
      defaults: { mode: 'rw', options: { directIo: false, discard: true }, backendDomid: 1 },
      at: { file: 'p.yaml', line: 1, column: 1 },
    },
  });
  assert.equal(r.domains, 1);
  assert.equal(r.disks, 2);
});

test('no Policy: the default policy, JSON-serialisable', () => {
  const r = check({ 'a.yaml': dom('w', disk('xvda', 'file: /x.img')) });
  assert.ok(r.desired);
  assert.deepEqual(r.desired.policy, { prune: false, allowedRoots: [], serve: 'both', detachTimeoutMs: 10000, defaults: { mode: 'rw', options: { directIo: false, discard: false }, backendDomid: 0 } });
  assert.deepEqual(JSON.parse(JSON.stringify(r.desired)), r.desired);
});

test('parseDuration', () => {
  const table: [string, number | undefined][] = [['10s', 10000], ['1500ms', 1500], ['2m', 120000], ['0s', 0], ['1.5s', 1500], ['10', undefined], ['s', undefined], ['01s', undefined], ['1h', undefined], ['-1s', undefined]];
  for (const [s, ms] of table) assert.equal(parseDuration(s), ms, s);
});

test('hostile input: huge alias expansion and deep nesting give errors, not crashes', () => {
  const bomb = `${H}kind: Domain\nname: w\ndisks: []\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n`;
  const r = check({ 'a.yaml': bomb });
  assert.equal(r.errors.length, 1);
  assert.match(errorHeadline(r.errors[0]!), /^a\.yaml:1:1: cannot read this document: /);
  const deep = `${H}kind: Domain\nname: w\ndisks: ${'['.repeat(5000)}${']'.repeat(5000)}\n`;
  const r2 = check({ 'a.yaml': deep });
  assert.ok(r2.errors.length >= 1);
  const r3 = check({ 'a.yaml': `${H}kind: Domain\nname: w\ndisks:\n  - vdev: ${'a'.repeat(5000)}\n    file: /x\n` });
  assert.match(errorHeadline(r3.errors[0]!), /^a\.yaml:5:11: vdev `a{32}\.\.\.` is too long/);
});
