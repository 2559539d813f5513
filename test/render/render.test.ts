// The text renderers of plans and status: signs, reasons, summary counts, colour that changes nothing
// but the escape codes (columns stay aligned by visible width).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/index.js';
import { renderPlan, summaryLine, planCounts, actionLine } from '../../src/render/plan.js';
import { renderStatus, STATUS_HEADERS } from '../../src/render/status.js';
import { columns, visibleLength } from '../../src/render/style.js';
import { backend, desired, disk, fileSrc, loop, observed, sources } from '../plan/fixtures.js';

const A = '/srv/a.img';
const B = '/srv/b.img';
const C = '/srv/c.img';
// eslint-disable-next-line no-control-regex
const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

function everyKind() {
  const la = loop(0, 11, { backingPath: A });
  const lc = loop(5, 13, { backingPath: C, readOnly: true });
  const d = desired(
    { web: [disk('xvda', A, 'ro'), disk('xvdb', C, 'ro')], db: [disk('xvdb', C, 'ro'), disk('xvdc', B)], mail: [disk('xvda', '/srv/m.img')] },
    { prune: true, allowedRoots: ['/srv'] },
  );
  const o = observed({
    domains: [
      { domid: 0, name: 'Domain-0' },
      { domid: 3, name: 'web' },
      { domid: 4, name: 'db' },
    ],
    sources: sources(fileSrc(A, 11), fileSrc(B, 12), fileSrc(C, 13), fileSrc('/srv/m.img', 14)),
    loops: [la, lc, loop(7, 99), loop(8, 77)],
    backends: [
      backend(3, 'xvda', {}, la),
      backend(4, 'xvdb', { params: C }, lc),
      backend(4, 'xvdf', {}, loop(8, 77)),
      backend(4, 'xvdc', { ours: false, params: B, script: '/etc/xen/scripts/xvbd', state: 2, frontendState: 1, hotplugStatus: undefined }),
    ],
  });
  return { d, o, p: plan(d, o, d.policy) };
}

test('renderPlan: one line per action with its sign and reason, findings, the summary', () => {
  const { p } = everyKind();
  const text = renderPlan(p, { header: 'xvbd plan: test' });
  const lines = text.split('\n');
  assert.equal(lines[0], 'xvbd plan: test');
  const body = lines.filter((l) => /^ {2}[+~-] /.test(l));
  assert.deepEqual(
    body.map((l) => l.split(/\s{2,}/).slice(1, 4)),
    [
      ['+', 'serve', 'db xvdc'],
      ['-', 'detach', 'db xvdf'],
      ['~', 'replace', 'web xvda'],
      ['+', 'attach', 'web xvdb'],
      ['-', 'free', '/dev/loop7'],
    ],
  );
  assert.match(text, /~ {2}replace {2}web xvda {4}\/srv\/a\.img \(ro\) +mode rw, desired ro\n/);
  assert.match(text, /attach {3}web xvdb {4}\/srv\/c\.img \(ro\) +shares \/dev\/loop5 \(diskseq 105\)\n/);
  assert.match(text, /! info domain-not-running: mail is not running.*\n {6}fix: start the domain\n/);
  assert.equal(summaryLine(p), 'Plan: 2 to attach, 1 to change, 2 to detach; 1 finding');
  assert.ok(text.endsWith('Plan: 2 to attach, 1 to change, 2 to detach; 1 finding\n'));
  assert.deepEqual(planCounts(p), { add: 2, change: 1, remove: 2, hold: 0, offline: 0, findings: 1, errors: 0 });
  assert.equal(actionLine(p.actions[4]!), '-  free  /dev/loop7  diskseq 107, inode 2049:99  no backend uses it');
});

test('renderPlan: no actions -> "No changes."; colour adds escapes only', () => {
  const d = desired({});
  const empty = plan(d, observed({}), d.policy);
  assert.equal(renderPlan(empty), 'No changes. The host matches the desired state.\n\nPlan: 0 to attach, 0 to change, 0 to detach; 0 findings\n');
  const { p } = everyKind();
  const colored = renderPlan(p, { color: true });
  assert.notEqual(colored, strip(colored));
  assert.equal(strip(colored), renderPlan(p, { color: false }));
});

test('renderStatus: headers, one row per disk, reasons; colour keeps columns aligned', () => {
  const { p, o } = everyKind();
  const plainText = renderStatus(p, { observed: o });
  const lines = plainText.split('\n');
  assert.deepEqual(lines[0]!.split(/\s+/), STATUS_HEADERS);
  const row = (dom: string, vdev: string) => lines.find((l) => l.startsWith(`${dom} `) && l.split(/\s+/)[2] === vdev)!;
  assert.match(row('web', 'xvda'), /out-of-sync\s+healthy\s+loop0\s+100\s+1\s+Connected\s+Connected\s+replace planned: mode rw, desired ro$/);
  assert.match(row('web', 'xvdb'), /out-of-sync\s+missing\s+-\s+-\s+-\s+-\s+-\s+attach planned; no backend$/);
  assert.match(row('mail', 'xvda'), /pending\s+missing\s.*domain not running$/);
  assert.match(row('db', 'xvdf'), /detach planned: xvdf is no longer in db's config$/);
  assert.match(plainText, /^6 disks; 1 synced, 4 out-of-sync, 1 pending; 3 healthy, 1 progressing, 2 missing \| host: 3 domains, 4 vbd backends, 4 loop devices \(4 xvbd's\); 1 finding$/m);
  const colored = renderStatus(p, { observed: o, color: true });
  assert.equal(strip(colored), plainText);
  // Column starts are the same in every row of the table (by visible width).
  const table = strip(colored).split('\n').slice(0, 1 + p.disks.length);
  const start = table[0]!.indexOf('SYNC');
  for (const l of table.slice(1)) assert.match(l.slice(start), /^(synced|out-of-sync|pending|unknown) /);
});

test('columns: pads by visible width, last column unpadded', () => {
  assert.deepEqual(columns([
    ['\x1b[32ma\x1b[39m', 'bb', 'c'],
    ['aaa', 'b', 'cccc'],
  ]).map(strip), ['a    bb  c', 'aaa  b   cccc']);
  assert.equal(visibleLength('\x1b[1mabc\x1b[22m'), 3);
});

test('summaryLine: holds and offlines are counted apart, and named only when there are any', () => {
  const be = { path: '/local/domain/0/backend/vbd/3/51712', backendDomid: 0, frontendDomid: 3, devid: 51712, diskseq: '9' };
  const loop = { name: 'loop0', diskseq: '9', backing: { dev: '1', ino: '2' } };
  const p = {
    actions: [
      { kind: 'hold' as const, backend: be, loop },
      { kind: 'offline' as const, backend: be, physicalDevice: '7:0', close: false, reason: 'gone' },
    ],
    findings: [],
    disks: [],
  };
  assert.equal(summaryLine(p), 'Plan: 0 to attach, 0 to change, 0 to detach, 1 to take back, 1 to take offline; 0 findings');
  assert.equal(summaryLine({ actions: [], findings: [], disks: [] }), 'Plan: 0 to attach, 0 to change, 0 to detach; 0 findings');
});
