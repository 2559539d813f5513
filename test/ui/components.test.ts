// The view components rendered to text at 120 columns against the fixture plans.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createElement as h } from 'react';
import { renderToString } from 'ink';
import { pruneRoom, TuiView, type TuiViewProps } from '../../src/ui/components/TuiView.js';
import { tableWindow, windowStart } from '../../src/ui/components/DiskTable.js';
import { fit, fitLeft } from '../../src/ui/components/text.js';
import { buildViewModel, type ViewMeta } from '../../src/ui/viewmodel.js';
import { bigHost, cleanHost, host, IMG } from './fixtures.js';
import { stripAnsi } from './harness.js';
import { helpSections } from '../../src/ui/keys.js';
import { helpLines, helpMaxScroll } from '../../src/ui/components/Help.js';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

const META: ViewMeta = { host: 'h1', socket: '/tmp/xs.sock', configDir: '/etc/xvbd', observedAt: Date.UTC(2026, 10, 25, 19, 58, 3), observeMs: 12 };

function screen(props: Partial<TuiViewProps> & { vm?: TuiViewProps['vm'] }, columns = 120): string {
  const full: TuiViewProps = { ui: { mode: 'list', selected: 0 }, width: columns, height: 50, canApply: true, ...props };
  return stripAnsi(renderToString(h(TuiView, full), { columns }));
}

function lineWith(s: string, needle: string): string {
  const l = s.split('\n').find((x) => x.includes(needle));
  assert.ok(l !== undefined, `no line with ${needle} in:\n${s}`);
  return l;
}

const vm = buildViewModel({ ...host(), meta: META });

test('header: host, socket, config, observation time and counts', () => {
  const s = screen({ vm });
  const first = s.split('\n')[0]!;
  assert.match(first, /xvbd\s+host h1\s+xenstore \/tmp\/xs.sock\s+config \/etc\/xvbd\s+observed 19:58:03 \(12 ms\)/);
  assert.match(s, /domains 2\/3 running\s+disks 7: 3 healthy 1 progressing 1 degraded 2 missing  sync: 4 synced 2 out-of-sync 1 pending/);
  assert.match(s, /findings 1 error 3 warning 1 info/);
  assert.match(s, /loop devices 5 \(5 ours\)  pending actions 3/);
});

test('table: one line per disk with its columns; the degraded disk shows its reason', () => {
  const s = screen({ vm });
  assert.match(lineWith(s, 'DOMAIN'), /DOMAIN\s+VDEV\s+SOURCE\s+RW\s+SYNC\s+HEALTH\s+LOOP\s+DISKSEQ\s+SHR\s+BACKEND\s+FRONTEND/);
  const dbA = lineWith(s, 'db.img');
  assert.match(dbA, /db\s+xvda\s+\S*\/images\/db.img\s+rw\s+synced\s+degraded\s+loop2\s+102\s+1\s+5 Closing\s+3 Inited$/);
  assert.match(s, /↳ degraded: backend error: 22 reading \/local\/domain\/2\/device\/vbd\/51712\/event-channel \(1 finding\)/);
  const shared = lineWith(s, 'template.img');
  assert.match(shared, /ro\s+synced\s+progressing\s+loop1\s+101\s+2\s+2 Wait\s+1 Init/);
  assert.match(s, /↳ progressing: backend InitWait, frontend Initialising/);
  const pendingAttach = lineWith(s, 'db-data.img');
  assert.match(pendingAttach, /xvdc.*out-of-sync\s+missing\s+-\s+-\s+-\s+-\s+-\s+\+\s*$/);
  assert.match(lineWith(s, 'old.img'), /healthy.*4 Conn\s+4 Conn\s+-\s*$/);
  // The domain name is printed once per domain.
  assert.equal(s.split('\n').filter((l) => /^\s*>?\s*web\s/.test(l)).length, 1);
  // The selected row is marked.
  assert.match(lineWith(s, 'build.img'), /^>\s+build\s+xvda/);
});

test('findings are listed, errors first, with where they are', () => {
  const s = screen({ vm });
  assert.match(s, /Findings \(5\)/);
  const lines = s.split('\n');
  const i = lines.findIndex((l) => l.includes('✖ backend-error [db/xvda]: blkback reports: 22 reading'));
  assert.ok(i > 0, s);
  assert.match(lines[i + 1]!, /! missing-backend \[db\/xvdc\]: db\/xvdc has no backend/);
  assert.match(s, /! loop-leaked \[loop7\]: loop7 is ours and nothing uses it/);
});

test('the pending plan shows what apply would do and the summary', () => {
  const s = screen({ vm });
  assert.match(s, /Pending plan \(3\)/);
  assert.match(s, new RegExp(`\\+ attach db/xvdc <- ${IMG}/db-data.img \\(rw, new loop device\\)`));
  assert.match(s, /- detach web devid 51744 \(\/local\/domain\/0\/backend\/vbd\/1\/51744\): not desired \(prune\)/);
  assert.match(s, /- free loop7 \(diskseq 107\): ours, unused \(prune\)/);
  assert.match(s, /Plan: 1 to attach, 0 to change, 2 to detach; 5 findings/);
});

test('status line: keys, with apply only when available, and the message', () => {
  assert.match(screen({ vm }), /\? help\s+Enter details\s+\/ filter\s+a apply\s+p prune\s+e events\s+r refresh\s+q quit/);
  const noApply = screen({ vm, canApply: false, ui: { mode: 'list', selected: 0, message: 'Apply is not available here.' } });
  assert.doesNotMatch(noApply, /a apply|p prune/);
  assert.match(noApply, /Apply is not available here\./);
  assert.match(screen({ vm, ui: { mode: 'confirm', selected: 0 } }), /Apply 3 actions now\? \(y\/n\)/);
});

test('details of the selected disk replace the table', () => {
  const sel = vm.rows.findIndex((r) => r.key === 'db/xvda');
  const s = screen({ vm, ui: { mode: 'details', selected: sel } });
  assert.match(s, /db \(domid 2\) xvda \(devid 51712\)/);
  assert.match(s, /Backend \/local\/domain\/0\/backend\/vbd\/2\/51712/);
  assert.match(s, /state\s+5 Closing/);
  assert.match(s, /error\s+22 reading \/local\/domain\/2\/device\/vbd\/51712\/event-channel/);
  assert.match(s, /Loop device/);
  assert.match(s, /device\s+\/dev\/loop2/);
  assert.match(s, /Findings for this disk \(1\)/);
  assert.match(s, /fix: check the guest frontend/);
  assert.match(s, /\? help\s+Esc back/);
  assert.doesNotMatch(s, /DOMAIN\s+VDEV/);
});

test('a clean host: no drift, nothing to do', () => {
  const s = screen({ vm: buildViewModel({ ...cleanHost(), meta: META }) });
  assert.match(s, /Findings \(0\)\n\s+none: no drift/);
  assert.match(s, /Pending plan \(0\)\n\s+nothing to do/);
  assert.match(s, /2 healthy 0 progressing 0 degraded 0 missing/);
});

test('before the first observation, and when observing failed', () => {
  assert.match(screen({}), /Observing xenstore and loop devices/);
  assert.match(screen({ error: 'connect ENOENT /tmp/none.sock' }), /observe failed: connect ENOENT \/tmp\/none.sock/);
  const s = screen({ vm, error: 'EACCES' });
  assert.match(s, /observe failed: EACCES \(showing the previous observation\)/);
  assert.match(s, /db.img/);
});

test('the apply log shows the last lines', () => {
  const s = screen({ vm, applyLog: ['attach db/xvdc: ok', 'detach web/xvdc: ok', 'Apply complete: 3 done, 0 failed'] });
  assert.match(s, /Last apply\n\s+attach db\/xvdc: ok\n\s+detach web\/xvdc: ok\n\s+Apply complete: 3 done, 0 failed/);
});

test('1,000 disks: the table shows a window around the selection and fits the terminal', () => {
  const big = buildViewModel({ ...bigHost(100, 10), meta: META });
  const s = screen({ vm: big, ui: { mode: 'list', selected: 500 }, height: 40 });
  const lines = s.split('\n');
  assert.ok(lines.length <= 40, `${lines.length} lines`);
  assert.match(lineWith(s, '>'), /vm050-xvda\.img/);
  assert.match(s, /↑ \d+ more/);
  assert.match(s, /↓ \d+ more/);
  const last = screen({ vm: big, ui: { mode: 'list', selected: 999 }, height: 40 });
  assert.match(last, /↑ \d+ more/, 'the last row selected: the table scrolled to it');
});

test('narrow terminal: low-priority columns go first, sources keep their file name, lines do not wrap', () => {
  const cases: [number, RegExp, RegExp | undefined][] = [
    [120, /SOURCE\s+RW\s+SYNC\s+HEALTH\s+LOOP\s+DISKSEQ\s+SHR\s+BACKEND\s+FRONTEND\s+PLAN$/, undefined],
    [100, /SOURCE\s+RW\s+SYNC\s+HEALTH\s+LOOP\s+BACKEND\s+FRONTEND\s+PLAN$/, /DISKSEQ|SHR/],
    [90, /SOURCE\s+RW\s+SYNC\s+HEALTH\s+LOOP\s+BACKEND\s+PLAN$/, /DISKSEQ|SHR|FRONTEND/],
    // the classic 80 columns keep RW (the states are in the details)
    [80, /SOURCE\s+RW\s+SYNC\s+HEALTH\s+LOOP\s+PLAN$/, /DISKSEQ|SHR|FRONTEND|BACKEND/],
  ];
  for (const [w, has, hasNot] of cases) {
    const s = screen({ vm, width: w }, w);
    for (const l of s.split('\n')) assert.ok(l.length <= w, `too long at ${w} (${l.length}): ${l}`);
    const head = lineWith(s, 'DOMAIN');
    assert.match(head, has, `${w}: ${head}`);
    if (hasNot) assert.doesNotMatch(head, hasNot, `${w}: ${head}`);
    assert.match(lineWith(s, 'db-data'), /(\/|…)[\w/.-]*db-data\.img/, `${w}`);
  }
});

test('window and cell helpers (table)', () => {
  const ws: [number, number, number, number][] = [
    [0, 5, 10, 0],
    [9, 100, 10, 4],
    [99, 100, 10, 90],
    [50, 100, 10, 45],
  ];
  for (const [sel, n, size, want] of ws) assert.equal(windowStart(sel, n, size), want, `${sel}/${n}/${size}`);
  const rows = vm.rows;
  const [a, b] = tableWindow(rows, 1, 4);
  assert.ok(a <= 1 && 1 < b, `selection inside [${a},${b})`);
  assert.deepEqual(tableWindow(rows, 0, 100), [0, rows.length]);
  assert.equal(fit('abcdef', 4), 'abc…');
  assert.equal(fit('ab', 4), 'ab  ');
  assert.equal(fitLeft('/a/b/c.img', 6), '…c.img');
  assert.equal(fit('a\u001bb', 5), 'a?b  ');
});

test('many findings of one kind are grouped into one line', () => {
  const h0 = host();
  const leaks = Array.from({ length: 200 }, (_, i) => ({
    kind: 'loop-leaked' as const,
    severity: 'warning' as const,
    message: `loop${i + 10} is ours and nothing uses it`,
    fix: 'apply with prune',
    loops: [{ name: `loop${i + 10}`, diskseq: String(500 + i), backing: { dev: '1', ino: String(i) } }],
  }));
  h0.plan.findings = [...h0.plan.findings, ...leaks];
  const s = screen({ vm: buildViewModel({ ...h0, meta: META }) });
  assert.match(s, /Findings \(205\)/);
  assert.match(s, /! loop-leaked ×201 \[loop7, loop10, loop11, loop12, …\]: e\.g\. loop7 is ours and nothing uses it/);
  assert.match(s, /✖ backend-error \[db\/xvda\]/);
  assert.match(s, /i domain-not-running \[build\]/);
  assert.doesNotMatch(s, /… and \d+ more\n\nPending/);
  // details list every finding of the disk, never grouped
  assert.equal(s.split('\n').filter((l) => l.includes('loop-leaked')).length, 1);
});

test('details fit the terminal: cut with a note when it is too small', () => {
  const sel = vm.rows.findIndex((r) => r.key === 'db/xvda');
  const big = screen({ vm, ui: { mode: 'details', selected: sel }, height: 60 });
  assert.doesNotMatch(big, /more lines/);
  const small = screen({ vm, ui: { mode: 'details', selected: sel }, height: 20 });
  assert.ok(small.split('\n').length <= 20, `${small.split('\n').length} lines:\n${small}`);
  assert.match(small, /… \d+ more lines: enlarge the terminal to see them/);
  assert.match(small, /Esc back/);
});

test('filter: only disks that need attention, a note, and a clean host says all is well', () => {
  const s = screen({ vm, ui: { mode: 'list', selected: 0, filter: true } });
  assert.match(s, /showing 5 of 7 disks: those that need attention \(f: all\)/);
  assert.doesNotMatch(s, /web\.img/);
  const clean = buildViewModel({ ...cleanHost(), meta: META });
  const c = screen({ vm: clean, ui: { mode: 'list', selected: 0, filter: true } });
  assert.match(c, /showing 0 of 2 disks/);
  assert.match(c, /Nothing needs attention: every disk is healthy and in sync\./);
});

test('? shows the help: every key of the reducer table with what it does, and the column legend', () => {
  const s = screen({ vm, ui: { mode: 'help', selected: 0, back: 'list' }, height: 80 });
  assert.doesNotMatch(s, /j\/k scroll/, 'it all fits in 80 lines');
  for (const [, rows] of helpSections(true)) for (const [k, does] of rows) assert.match(s, new RegExp(`  ${escape(k)}\\s+${escape(does.slice(0, 30))}`), k);
  assert.match(s, /PLAN\s+the pending action on the disk: \+ attach \(or serve\), - detach, ~ replace/);
  assert.match(s, /Esc close the help/);
  assert.doesNotMatch(s, /DOMAIN\s+VDEV/, 'the help replaces the table');
  const noApply = screen({ vm, canApply: false, ui: { mode: 'help', selected: 0 } });
  assert.doesNotMatch(noApply, /apply the pending plan|apply with prune/);
  const short = screen({ vm, ui: { mode: 'help', selected: 0 }, height: 20 });
  assert.ok(short.split('\n').length <= 20, short);
  assert.match(short, /lines 1-13 of \d+: j\/k scroll/);
  const total = helpLines(true).length;
  const end = screen({ vm, ui: { mode: 'help', selected: 0, scroll: helpMaxScroll(total, 14) }, height: 20 });
  assert.ok(end.split('\n').length <= 20, end);
  assert.match(end, new RegExp(`lines ${total - 12}-${total} of ${total}`));
  assert.match(end, /BACKEND\/FRONTEND\s+xenbus states/, 'scrolled to the end: the last line shows');
});

test('/ filter: the prompt on the status line, the rows that match, a note; none matching says so', () => {
  const typing = screen({ vm, ui: { mode: 'filter', selected: 0, query: 'template', back: 'list' } });
  assert.match(typing.split('\n').at(-1)!, /^\/template\s+Enter keep\s+Esc clear/);
  assert.match(typing, /showing 2 of 7 disks: matching "template" \(Esc: all\)/);
  assert.equal(typing.split('\n').filter((l) => /images\/\S*\.img/.test(l) && /SYNC|synced|sync/.test(l)).length, 2);
  assert.doesNotMatch(typing, /web\.img/);
  const none = screen({ vm, ui: { mode: 'list', selected: 0, query: 'nope' } });
  assert.match(none, /No disk matches "nope"\./);
  const cmd = screen({ vm, ui: { mode: 'command', selected: 0, command: 'ev', back: 'list' } });
  assert.match(cmd.split('\n').at(-1)!, /^:ev\s+Enter run\s+Esc cancel\s+\(disks, events, help, quit\)/);
});

test('sort: the sorted column has an arrow, the rows are in its order', () => {
  const s = screen({ vm, ui: { mode: 'list', selected: 0, sort: { col: 'health' } } });
  assert.match(lineWith(s, 'DOMAIN'), /SYNC\s+HEALTH↓\s+LOOP/);
  const first = s.split('\n').find((l) => l.startsWith('>'))!;
  assert.match(first, /db\s+xvda.*degraded/);
  assert.match(lineWith(screen({ vm, ui: { mode: 'list', selected: 0, sort: { col: 'sync', desc: true } } }), 'DOMAIN'), /SYNC↑/);
});

test('p: the confirmation lists exactly what apply --prune would do, the letting-go first', () => {
  const hst = host();
  const plain = { ...hst.plan, actions: hst.plan.actions.filter((a) => a.kind === 'attach') };
  const pvm = buildViewModel({ ...hst, plan: plain, prunePlan: hst.plan, meta: META });
  const s = screen({ vm: pvm, ui: { mode: 'confirm-prune', selected: 0 } });
  assert.match(s, /Apply with prune \(1 to detach, 0 to replace, 1 loop device to free\); data guard on, never --allow-data-loss:/);
  const lines = s.split('\n');
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
  assert.ok(at(/- detach web devid 51744/) > 0 && at(/- free loop7/) > at(/- detach web/) && at(/\+ attach db\/xvdc/) > at(/- free loop7/), s);
  assert.match(s, /Plan: 1 to attach, 0 to change, 2 to detach/);
  assert.match(lines.at(-1)!, /Apply with prune: 3 actions now\? \(y\/n\)/);
});

test('80x24: RW stays, the table keeps most of the screen, nothing wraps or overflows', () => {
  const big = buildViewModel({ ...bigHost(10, 5), meta: META });
  const s = stripAnsi(renderToString(h(TuiView, { vm: big, ui: { mode: 'list', selected: 0 }, width: 80, height: 23, canApply: true }), { columns: 80 }));
  const lines = s.split('\n');
  assert.ok(lines.length <= 23, `${lines.length} lines:\n${s}`);
  for (const l of lines) assert.ok(l.length <= 80, l);
  assert.match(lineWith(s, 'DOMAIN'), /\sRW\s/);
  const rows = lines.filter((l) => /\.img/.test(l)).length;
  assert.ok(rows >= 12, `${rows} disk rows at 80x24:\n${s}`);
});

test('the header says whether a daemon runs and its last pass; e shows its events, newest first', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 11, 4, 19, 58, s)).toISOString();
  const events = [
    { at: at(1), kind: 'pass' as const, seq: 1, ok: true, summary: 'pass 1: 1 step ok', durationMs: 30, steps: [{ kind: 'attach', target: 't', label: 'web/xvda', ok: true }] },
    { at: at(2), kind: 'hook-serve' as const, backend: 'backend/vbd/5/51728', ok: true, summary: 'physical-device 7:3' },
  ];
  const dvm = buildViewModel({ ...host(), meta: { ...META, daemon: { state: 'running', pid: 812, events, lastPass: { seq: 1, at: at(1), ok: true, summary: '' } } } });
  assert.match(screen({ vm: dvm }), /^daemon pid 812, last pass #1 at 19:58:01 ok  findings 1 error/m);
  const s = screen({ vm: dvm, ui: { mode: 'events', selected: 0, back: 'list' } });
  assert.match(s, /Daemon events \(2, newest first\)\n\s+19:58:02  hook serve backend\/vbd\/5\/51728: physical-device 7:3\n\s+19:58:01  pass #1 \(30 ms\): pass 1: 1 step ok\n\s+ok attach web\/xvda/);
  assert.match(s.split('\n').at(-1)!, /Esc close the events/);
  const none = buildViewModel({ ...host(), meta: { ...META, daemon: { state: 'absent' } } });
  assert.match(screen({ vm: none }), /^daemon not running \(xvbd reconcile --watch\): nothing reconciles by itself/m);
  assert.match(screen({ vm: none, ui: { mode: 'events', selected: 0 } }), /Daemon events \(0, newest first\)\n\s+none: daemon not running/);
});

test('p with more actions than fit: j/k scroll through every one before y', () => {
  const hst = host();
  const free = hst.plan.actions.find((a) => a.kind === 'free-loop')!;
  const many = Array.from({ length: 40 }, (_, i) => (free.kind === 'free-loop' ? { ...free, loop: { ...free.loop, name: `loop${100 + i}` } } : free));
  const pvm = buildViewModel({ ...hst, plan: { ...hst.plan, actions: [] }, prunePlan: { ...hst.plan, actions: many }, meta: META });
  const top = screen({ vm: pvm, ui: { mode: 'confirm-prune', selected: 0, scroll: 0 }, height: 30 });
  assert.ok(top.split('\n').length <= 30, top);
  const room = pruneRoom(3, 30);
  assert.match(top, new RegExp(`… and ${40 - room} more \\(j/k scroll\\)`));
  assert.doesNotMatch(top, /above/);
  const end = screen({ vm: pvm, ui: { mode: 'confirm-prune', selected: 0, scroll: 40 - room }, height: 30 });
  assert.ok(end.split('\n').length <= 30, end);
  assert.match(end, new RegExp(`↑ ${40 - room} above`));
  assert.match(end, /- free loop139 /, 'the last action is reachable');
  assert.doesNotMatch(end, /more \(j\/k scroll\)/);
});
