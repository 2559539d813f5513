// Fleets: host selection (`kind: Host`, `hosts:`, `--host`) and the fleet-wide rules of
// `validate --fleet`, as tables with exact positions and messages (in-memory files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkConfigTexts, checkFleetTexts, errorHeadline, type ConfigError } from '../../src/config/index.js';

const H = 'apiVersion: xvbd/v1\n';
const IMG = '/var/lib/xvbd/images';
const host = (name: string, labels = '') => `${H}kind: Host\nname: ${name}\n${labels}`;
// a Domain with an optional selector block (written as is after the name) and one disk
const dom = (name: string, sel: string, src: string, mode = 'rw') => `${H}kind: Domain\nname: ${name}\n${sel}disks:\n  - vdev: xvda\n    file: ${src}\n    mode: ${mode}\n`;
const names = (...n: string[]) => `hosts:\n  names: [${n.join(', ')}]\n`;
const labels = (k: string, v: string) => `hosts:\n  labels:\n    ${k}: ${v}\n`;
const HOSTS = `${host('a1', 'labels:\n  pool: web\n')}---\n${host('a2', 'labels:\n  pool: web\n')}---\n${host('b1', 'labels:\n  pool: db\n')}`;

const texts = (files: Record<string, string>) => Object.entries(files).map(([file, text]) => ({ file, text }));
const headlines = (errors: ConfigError[]) => errors.map(errorHeadline);

// [what, files, host, the exact error headlines, the domains of that host when valid]
const VIEWS: [string, Record<string, string>, string, string[], string[]?][] = [
  [
    'each host keeps the Domains that select it by name or by label, and those without hosts',
    {
      'h.yaml': HOSTS,
      'd.yaml': `${dom('web1', names('a1'), `${IMG}/w1.img`)}---\n${dom('db', labels('pool', 'db'), `${IMG}/db.img`)}---\n${dom('web2', labels('pool', 'web'), `${IMG}/w2.img`, 'ro')}`,
    },
    'a1',
    [],
    ['web1', 'web2'],
  ],
  ['names and labels add up', { 'h.yaml': HOSTS, 'd.yaml': dom('x', `hosts:\n  names: [b1]\n  labels: {pool: web}\n`, `${IMG}/x.img`, 'ro') }, 'b1', [], ['x']],
  ['labels must all match', { 'h.yaml': HOSTS, 'd.yaml': `${dom('x', names('a2'), `${IMG}/x.img`)}---\n${dom('y', 'hosts:\n  labels: {pool: web, rack: c}\n', `${IMG}/y.img`)}` }, 'a2', [
    'd.yaml:15:3: `hosts.labels` selects no host: no Host document has `pool: web`, `rack: c`',
  ]],
  ['--host is folded to lower case', { 'h.yaml': HOSTS, 'd.yaml': dom('x', names('a1'), `${IMG}/x.img`) }, 'A1', [], ['x']],
  [
    'a host not in the fleet is refused, with a suggestion',
    { 'h.yaml': HOSTS, 'd.yaml': dom('x', names('a1'), `${IMG}/x.img`) },
    'a3',
    ["cfg: host `a3` is not one of the fleet's hosts (`a1`, `a2` and `b1`); did you mean `a1`? add a `kind: Host` document with `name: a3`, or pass --host NAME"],
  ],
  [
    'a host that selects nothing is an error on that host',
    { 'h.yaml': HOSTS, 'd.yaml': dom('x', names('a1'), `${IMG}/x.img`) },
    'b1',
    [
      'h.yaml:15:7: host `b1` is selected by no Domain document; a host of the fleet has at least one (a Domain without `hosts`, or whose `hosts` names it or matches its labels), or remove this Host document',
    ],
  ],
  [
    'an undeclared name in a selector, with a suggestion',
    { 'h.yaml': HOSTS, 'd.yaml': `${dom('x', names('a1', 'b2'), `${IMG}/x.img`)}` },
    'a1',
    ['d.yaml:5:15: no Host document declares host `b2`; did you mean `a2`?'],
  ],
  [
    'the host uses the Policy that selects it, else the default',
    {
      'h.yaml': HOSTS,
      'p.yaml': `${H}kind: Policy\nallowedRoots: [${IMG}]\n---\n${H}kind: Policy\n${labels('pool', 'db')}allowedRoots: [/srv]\n`,
      'd.yaml': `${dom('x', names('a1'), `${IMG}/x.img`)}---\n${dom('y', names('b1'), `${IMG}/y.img`)}`,
    },
    'b1',
    ['d.yaml:18:11: source `/var/lib/xvbd/images/y.img` is outside the allowed roots (`/srv`) set at p.yaml:10:1'],
  ],
  [
    'two Policies selecting one host',
    {
      'h.yaml': HOSTS,
      'p.yaml': `${H}kind: Policy\n${names('a1')}---\n${H}kind: Policy\n${labels('pool', 'web')}`,
      'd.yaml': dom('x', names('a1'), `${IMG}/x.img`),
    },
    'a1',
    ['p.yaml:7:7: a second Policy for host `a1`; a host has at most one Policy whose `hosts` selects it, and the first is at p.yaml:2:7'],
  ],
  [
    'two default Policies',
    { 'h.yaml': HOSTS, 'p.yaml': `${H}kind: Policy\n---\n${H}kind: Policy\n`, 'd.yaml': dom('x', names('a1'), `${IMG}/x.img`) },
    'a1',
    ['p.yaml:5:7: a second Policy without `hosts`; a fleet has at most one default Policy, and the first is at p.yaml:2:7'],
  ],
  [
    'an error in a document for another host does not stop this one; a schema error does',
    { 'h.yaml': HOSTS, 'd.yaml': `${dom('x', names('a1'), `${IMG}/x.img`)}---\n${dom('y', names('a2'), `images/y.img`)}` },
    'a1',
    [],
    ['x'],
  ],
  [
    '... a schema error in any document stops every host',
    { 'h.yaml': HOSTS, 'd.yaml': `${dom('x', names('a1'), `${IMG}/x.img`)}---\n${dom('y', names('a2'), `${IMG}/y.img`)}colour: red\n` },
    'a1',
    ['d.yaml:20:1: unknown key `colour` in a Domain document; expected `apiVersion`, `kind`, `name`, `disks`, `hosts` or `migratable`'],
  ],
  [
    'a host declared twice; bad host names and labels',
    { 'h.yaml': `${HOSTS}---\n${host('a1')}---\n${host('Xen_1', 'labels:\n  pool: "web db"\n')}`, 'd.yaml': dom('x', '', `${IMG}/x.img`) },
    'a1',
    [
      'h.yaml:21:7: host `a1` is declared twice; the first Host document is at h.yaml:3:7',
      'h.yaml:25:7: `name: Xen_1` is not valid: a host name is lower-case letters, digits, `-` and `.` (as `uname -n` prints it), starting and ending with a letter or digit',
      'h.yaml:27:9: `pool: web db` is not valid: a label value is letters, digits, `.`, `_` and `-`, starting and ending with a letter or digit',
    ],
  ],
  [
    'unknown keys in a Host and a selector',
    { 'h.yaml': `${HOSTS}---\n${host('c1', 'lables: {}\n')}`, 'd.yaml': dom('x', 'hosts:\n  name: [a1]\n', `${IMG}/x.img`) },
    'a1',
    [
      'h.yaml:22:1: unknown key `lables` in a Host document; did you mean `labels`?',
      'd.yaml:5:3: unknown key `name` in `hosts`; did you mean `names`?',
    ],
  ],
  [
    'bad selectors and labels: one clear error each, and no "selects nothing" while a selector is broken',
    {
      'h.yaml': `${HOSTS}---\n${host('c1', `labels:\n  "bad key": x\n  ${'k'.repeat(64)}: y\n  n: 5\n`)}`,
      'd.yaml': `${dom('x', 'hosts: {}\n', `${IMG}/x.img`)}---\n${dom('y', 'hosts:\n  names: []\n', `${IMG}/y.img`)}---\n${dom('z', 'hosts: [a1]\n', `${IMG}/z.img`)}---\n${dom('w', `migratable: yes\n${names('A1')}`, `${IMG}/w.img`)}---\n${H}kind: Host\n`,
    },
    'a1',
    [
      'h.yaml:23:3: label key `bad key` is not valid: a label key is letters, digits, `.`, `_`, `-` and `/`, starting and ending with a letter or digit',
      `h.yaml:24:3: label key \`${'k'.repeat(64)}\` is longer than 63 characters`,
      'h.yaml:25:6: `n` must be a string, such as `web`, not the number 5',
      'd.yaml:4:8: `hosts` needs `names` (a list of hosts) or `labels` (a mapping), or both',
      'd.yaml:14:10: `names` must not be empty',
      'd.yaml:23:8: `hosts` must be a mapping, not a list',
      'd.yaml:32:13: `migratable` must be `true` or `false`, not the string `yes`',
      'd.yaml:34:11: an item of `names` `A1` is not valid: a host name is lower-case letters, digits, `-` and `.` (as `uname -n` prints it), starting and ending with a letter or digit',
      "d.yaml:40:1: a Host document needs `name` (the host's name, as `uname -n` prints it)",
    ],
  ],
  [
    'hosts and migratable without Host documents',
    { 'd.yaml': `${H}kind: Domain\nname: x\nmigratable: true\n${names('a1')}disks: []\n`, 'p.yaml': `${H}kind: Policy\n${names('a1')}` },
    'a1',
    [
      'd.yaml:4:1: `migratable` lets a domain move between hosts of a fleet, but this directory declares none; declare each host with a `kind: Host` document (see docs/config.md, Fleets), or remove `migratable`',
      'd.yaml:5:1: `hosts` selects hosts of a fleet, but this directory declares none; declare each host with a `kind: Host` document (see docs/config.md, Fleets), or remove `hosts`',
      'p.yaml:3:1: `hosts` selects hosts of a fleet, but this directory declares none; declare each host with a `kind: Host` document (see docs/config.md, Fleets), or remove `hosts`',
    ],
  ],
];

for (const [what, files, h, expected, domains] of VIEWS) {
  test(`host view: ${what}`, () => {
    const r = checkConfigTexts(texts(files), [], { host: h, dir: 'cfg' });
    assert.deepEqual(headlines(r.errors), expected);
    if (expected.length === 0) {
      assert.ok(r.desired);
      assert.equal(r.desired.host?.name, h.toLowerCase());
      if (domains) assert.deepEqual(r.desired.domains.map((d) => d.name), domains);
    } else assert.equal(r.desired, undefined);
  });
}

test('host view: the Policy selected for the host is its policy, with the host and its labels', () => {
  const files = { 'h.yaml': HOSTS, 'p.yaml': `${H}kind: Policy\nserve: attach\n---\n${H}kind: Policy\n${labels('pool', 'db')}serve: hook\n`, 'd.yaml': dom('x', '', `${IMG}/x.img`, 'ro') };
  const b1 = checkConfigTexts(texts(files), [], { host: 'b1' });
  const a1 = checkConfigTexts(texts(files), [], { host: 'a1' });
  assert.equal(b1.desired?.policy.serve, 'hook');
  assert.equal(a1.desired?.policy.serve, 'attach');
  assert.deepEqual(b1.desired?.host, { name: 'b1', labels: { pool: 'db' }, at: { file: 'h.yaml', line: 15, column: 7 } });
});

test('host view: the default host is $XVBD_HOST, else os.hostname()', async () => {
  const { defaultHostName } = await import('../../src/config/index.js');
  const { hostname } = await import('node:os');
  assert.equal(defaultHostName({ XVBD_HOST: 'Xen-7' }), 'xen-7');
  assert.equal(defaultHostName({}), hostname().toLowerCase());
});

// [what, files, the exact error headlines of `validate --fleet`]
const FLEET: [string, Record<string, string>, string[]][] = [
  [
    'a valid fleet: a migratable domain shares its read-write image between the hosts it selects',
    {
      'h.yaml': HOSTS,
      'd.yaml': `${dom('db', `${labels('pool', 'web')}migratable: true\n`, '/srv/db.img')}---\n${dom('x', names('b1'), `${IMG}/x.img`)}---\n${dom('t', names('b1'), '/srv/t.img', 'ro')}---\n${dom('u', names('a1'), '/srv/t.img', 'ro')}`,
    },
    [],
  ],
  [
    'a read-write image given to domains on two hosts: both positions',
    { 'h.yaml': HOSTS, 'd.yaml': `${dom('x', names('a1'), '/srv/s.img')}---\n${dom('y', names('a2', 'b1'), '/srv/s.img')}` },
    [
      'd.yaml:14:1: domain `y` is selected for hosts `a2` and `b1` and is not `migratable: true`; a domain runs on one host: select one, or say `migratable: true` if it moves between these',
      'd.yaml:18:11: source `/srv/s.img` is given read-write to domain `y` on host `a2` here and to domain `x` on host `a1` at d.yaml:8:11; two hosts writing one image (on shared storage) corrupt it: give each its own image, or make one Domain document with `migratable: true` for a domain that moves between hosts',
    ],
  ],
  [
    'read-write on one host, read-only on another',
    { 'h.yaml': HOSTS, 'd.yaml': `${dom('x', names('a1'), '/srv/s.img', 'ro')}---\n${dom('y', names('b1'), '/srv/s.img')}` },
    [
      'h.yaml:9:7: host `a2` is selected by no Domain document; a host of the fleet has at least one (a Domain without `hosts`, or whose `hosts` names it or matches its labels), or remove this Host document',
      'd.yaml:18:11: source `/srv/s.img` is used read-write by domain `y` on host `b1` here but read-only by domain `x` on host `a1` at d.yaml:8:11; the read-only guest would see it change under it: make both read-only or give each its own image',
    ],
  ],
  [
    'the read-write default of one host\'s Policy against read-only on another',
    {
      'h.yaml': HOSTS,
      'p.yaml': `${H}kind: Policy\ndefaults:\n  mode: ro\n---\n${H}kind: Policy\n${names('b1')}`,
      'd.yaml': `${H}kind: Domain\nname: x\n${names('a1')}disks:\n  - {vdev: xvda, file: /srv/s.img}\n---\n${H}kind: Domain\nname: y\n${names('b1')}disks:\n  - {vdev: xvda, file: /srv/s.img}\n`,
    },
    [
      'h.yaml:9:7: host `a2` is selected by no Domain document; a host of the fleet has at least one (a Domain without `hosts`, or whose `hosts` names it or matches its labels), or remove this Host document',
      'd.yaml:15:24: source `/srv/s.img` is used read-write by domain `y` on host `b1` here but read-only by domain `x` on host `a1` at d.yaml:7:24; the read-only guest would see it change under it: make both read-only or give each its own image',
    ],
  ],
  [
    'a domain selected for two hosts without migratable',
    { 'h.yaml': HOSTS, 'd.yaml': `${dom('x', labels('pool', 'web'), `${IMG}/x.img`)}---\n${dom('y', names('b1'), `${IMG}/y.img`)}` },
    ['d.yaml:4:1: domain `x` is selected for hosts `a1` and `a2` and is not `migratable: true`; a domain runs on one host: select one, or say `migratable: true` if it moves between these'],
  ],
  [
    'a domain without hosts in a fleet of several',
    { 'h.yaml': HOSTS, 'd.yaml': dom('x', '', `${IMG}/x.img`, 'ro') },
    ['d.yaml:3:7: domain `x` has no `hosts`, so every host (`a1`, `a2` and `b1`) has it, and it is not `migratable: true`; select its host with `hosts`, or say `migratable: true` if it moves between them'],
  ],
  [
    'one domain defined by two documents for two hosts (and their read-write image)',
    { 'h.yaml': HOSTS, 'a.yaml': `${dom('x', `${names('a1', 'a2')}migratable: true\n`, '/srv/x.img')}`, 'b.yaml': dom('x', names('b1'), '/srv/x.img') },
    [
      'b.yaml:3:7: domain `x` is defined for host `b1` here and for hosts `a1` and `a2` at a.yaml:3:7; a domain that may run on several hosts is one Domain document whose `hosts` selects them all, with `migratable: true`',
      'b.yaml:8:11: source `/srv/x.img` is given read-write to domain `x` on host `b1` here and to domain `x` on host `a1` at a.yaml:9:11; two hosts writing one image (on shared storage) corrupt it: give each its own image, or make one Domain document with `migratable: true` for a domain that moves between hosts',
    ],
  ],
  [
    'each host\'s own rules, naming the hosts whose view has the error',
    {
      'h.yaml': HOSTS,
      'p.yaml': `${H}kind: Policy\n${names('b1')}allowedRoots: [/srv]\n`,
      'd.yaml': `${dom('x', names('a1'), `${IMG}/x.img`)}---\n${dom('y', names('a1'), `${IMG}/x.img`)}---\n${dom('z', names('b1', 'a2'), `${IMG}/z.img`, 'ro')}---\n${dom('w', names('a2'), `${IMG}/w.img`)}`.replace('vdev: xvda\n    file: /var/lib/xvbd/images/w.img', 'vdev: xvda0\n    file: /var/lib/xvbd/images/w.img'),
    },
    [
      'd.yaml:18:11: host `a1`: source `/var/lib/xvbd/images/x.img` is already used read-write by domain `x` vdev `xvda` at d.yaml:8:11; a read-write source can back only one disk',
      'd.yaml:24:1: domain `z` is selected for hosts `a2` and `b1` and is not `migratable: true`; a domain runs on one host: select one, or say `migratable: true` if it moves between these',
      'd.yaml:28:11: host `b1`: source `/var/lib/xvbd/images/z.img` is outside the allowed roots (`/srv`) set at p.yaml:5:1',
      'd.yaml:37:11: host `a2`: vdev `xvda0` names partition 0; the whole disk is written `xvda`',
    ],
  ],
  [
    'a read-write path under a host\'s localRoots is that host\'s own file: no error across hosts',
    {
      'h.yaml': `${host('a1', `localRoots: [${IMG}]\n`)}---\n${host('b1')}---\n${host('c1', 'localRoots: [/var/lib/../x, rel]\n')}`,
      'd.yaml': `${dom('x', names('a1'), `${IMG}/s.img`)}---\n${dom('y', names('b1'), `${IMG}/s.img`)}---\n${dom('z', names('c1'), '/srv/z.img')}---\n${dom('w', names('b1'), '/srv/z.img')}`,
    },
    [
      'h.yaml:13:14: local root `/var/lib/../x` contains `..`; write the path without it',
      'h.yaml:13:29: an item of `localRoots` `rel` is not valid: a local root must be an absolute path (start with `/`)',
      'd.yaml:38:11: source `/srv/z.img` is given read-write to domain `w` on host `b1` here and to domain `z` on host `c1` at d.yaml:28:11; two hosts writing one image (on shared storage) corrupt it: give each its own image, or make one Domain document with `migratable: true` for a domain that moves between hosts',
    ],
  ],
  [
    'a migratable domain whose read-write disk is on a host\'s own disks',
    { 'h.yaml': `${host('a1', `localRoots: [${IMG}]\n`)}---\n${host('a2')}`, 'd.yaml': `${H}kind: Domain\nname: db\nmigratable: true\ndisks:\n  - {vdev: xvda, file: ${IMG}/db.img}\n  - {vdev: xvdb, file: ${IMG}/t.img, mode: ro}\n` },
    ['d.yaml:6:24: domain `db` may migrate between hosts `a1` and `a2`, but its read-write source `/var/lib/xvbd/images/db.img` is under the `localRoots` of host `a1`: after a migration it would find another disk; put it on storage every one of these hosts shares'],
  ],
  [
    'an error of every host\'s view is said once, without hosts',
    { 'h.yaml': `${host('a1')}---\n${host('a2')}`, 'd.yaml': `${dom('x', `migratable: true\n`, 'rel.img')}` },
    ['d.yaml:7:11: source path `rel.img` is relative; write an absolute path (starting with `/`)'],
  ],
  [
    'without Host documents: the directory as one host\'s',
    { 'd.yaml': `${dom('x', '', '/srv/s.img')}---\n${dom('y', '', '/srv/s.img')}` },
    ['d.yaml:14:11: source `/srv/s.img` is already used read-write by domain `x` vdev `xvda` at d.yaml:6:11; a read-write source can back only one disk'],
  ],
];

for (const [what, files, expected] of FLEET) {
  test(`fleet: ${what}`, () => {
    const r = checkFleetTexts(texts(files));
    assert.deepEqual(headlines(r.errors), expected);
  });
}

test('fleet: every error names the other place, and lists the hosts it is about', () => {
  const r = checkFleetTexts(texts({ 'h.yaml': HOSTS, 'd.yaml': `${dom('x', names('a1'), '/srv/s.img')}---\n${dom('y', names('a2'), '/srv/s.img')}---\n${dom('z', names('b1'), 'rel.img')}` }));
  const [rw, rel] = r.errors;
  assert.deepEqual(rw?.related?.map((x) => [x.file, x.line, x.column, x.message]), [['d.yaml', 8, 11, 'the use of `/srv/s.img` (rw) on host `a1` is here']]);
  assert.deepEqual(rw?.hosts, ['a1', 'a2']);
  assert.deepEqual(rel?.hosts, ['b1']);
  assert.deepEqual(
    r.hosts.map((h) => [h.name, h.domains, h.disks]),
    [
      ['a1', ['x'], 1],
      ['a2', ['y'], 1],
      ['b1', ['z'], 1],
    ],
  );
});
