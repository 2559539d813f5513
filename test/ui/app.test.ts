// The interactive App in a fake terminal: keys written to stdin, frames read from stdout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createElement as h } from 'react';
import { App, type AppProps } from '../../src/ui/App.js';
import { splitKeys } from '../../src/ui/keys.js';
import { buildViewModel } from '../../src/ui/viewmodel.js';
import { host, cleanHost } from './fixtures.js';
import { KEY, renderTerm } from './harness.js';

const META = { host: 'h1', socket: '/tmp/xs.sock', configDir: '/etc/xvbd' };

function setup(over: Partial<AppProps> = {}) {
  const calls = { refresh: 0, apply: 0, quit: 0 };
  const props: AppProps = {
    vm: buildViewModel({ ...host(), meta: META }),
    onRefresh: () => calls.refresh++,
    onApply: () => calls.apply++,
    onQuit: () => calls.quit++,
    ...over,
  };
  const term = renderTerm(h(App, props), 120, 50);
  return { term, calls, props };
}

function selectedLine(frame: string): string {
  return frame.split('\n').find((l) => l.startsWith('>')) ?? '';
}

test('arrows and j/k move the selection; Enter shows the details; Esc goes back', async () => {
  const { term } = setup();
  try {
    let f = await term.waitFor('DOMAIN');
    assert.match(selectedLine(f), /build\s+xvda/);
    f = await term.press('j');
    assert.match(selectedLine(f), /^>\s+db\s+xvda\s+\S*db\.img/);
    f = await term.press(KEY.down);
    assert.match(selectedLine(f), /template\.img/);
    f = await term.press('k');
    assert.match(selectedLine(f), /db\.img/);
    f = await term.press(KEY.enter);
    assert.match(f, /db \(domid 2\) xvda \(devid 51712\)/);
    assert.match(f, /error\s+22 reading/);
    f = await term.press('j');
    assert.match(f, /db \(domid 2\) xvdb \(devid 51728\)/, 'j in details shows the next disk');
    f = await term.press(KEY.escape, 120);
    assert.match(f, /DOMAIN\s+VDEV/);
    assert.match(selectedLine(f), /template\.img/);
  } finally {
    await term.close();
  }
});

test('keys arriving in one chunk each act (fast typing, tmux send-keys, paste)', async () => {
  const { term } = setup();
  try {
    await term.waitFor('DOMAIN');
    const f = await term.press('jjj\r');
    assert.match(f, /db \(domid 2\) xvdc \(devid 51744\)/);
  } finally {
    await term.close();
  }
  assert.deepEqual(splitKeys('ab\r\u007f', {}), [
    { input: 'a', key: {} },
    { input: 'b', key: {} },
    { input: '', key: { return: true } },
    { input: '', key: { backspace: true } },
  ]);
  assert.deepEqual(splitKeys('j', {}), [{ input: 'j', key: {} }]);
  assert.deepEqual(splitKeys('', { upArrow: true }), [{ input: '', key: { upArrow: true } }]);
});

test('a asks, n cancels, a then y applies exactly once', async () => {
  const { term, calls } = setup();
  try {
    await term.waitFor('DOMAIN');
    let f = await term.press('a');
    assert.match(f, /Apply 3 actions now\? \(y\/n\)/);
    f = await term.press('n');
    assert.match(f, /Apply cancelled\./);
    assert.equal(calls.apply, 0);
    await term.press('a');
    f = await term.press('y');
    assert.equal(calls.apply, 1);
    assert.doesNotMatch(f, /\(y\/n\)/);
    // "ay" in one chunk: one apply, not two
    await term.press('ay');
    assert.equal(calls.apply, 2);
    await term.press('ayay');
    assert.equal(calls.apply, 3, 'a second apply in the same chunk is refused');
  } finally {
    await term.close();
  }
});

test('a with nothing to do, or no apply function, says so', async () => {
  const clean = setup({ vm: buildViewModel({ ...cleanHost(), meta: META }) });
  try {
    await clean.term.waitFor('DOMAIN');
    const f = await clean.term.press('a');
    assert.match(f, /Nothing to apply: the plan is empty\./);
    assert.equal(clean.calls.apply, 0);
  } finally {
    await clean.term.close();
  }
  const noApply = setup();
  delete (noApply.props as Partial<AppProps>).onApply;
  const t2 = renderTerm(h(App, { ...noApply.props, onApply: undefined } as AppProps), 120, 50);
  try {
    await t2.waitFor('DOMAIN');
    const f = await t2.press('a');
    assert.match(f, /Apply is not available here\./);
    assert.doesNotMatch(f, /a apply/);
  } finally {
    await t2.close();
    await noApply.term.close();
  }
});

test('while applying, q is refused; r refreshes; q quits and exits the app', async () => {
  const busy = setup({ applying: true, applyLog: ['[1] attach db xvdc …'] });
  try {
    let f = await busy.term.waitFor('applying…');
    assert.match(f, /Last apply\n\s+\[1\] attach db xvdc …/);
    f = await busy.term.press('q');
    assert.match(f, /An apply is running/);
    assert.equal(busy.calls.quit, 0);
  } finally {
    await busy.term.close();
  }
  const { term, calls } = setup();
  await term.waitFor('DOMAIN');
  const exited = term.instance.waitUntilExit();
  await term.press('r');
  assert.equal(calls.refresh, 1);
  await term.press('q');
  assert.equal(calls.quit, 1);
  await exited;
  await term.close();
});

test('the selection stays on its disk when the rows change', async () => {
  const { term, props } = setup();
  try {
    await term.waitFor('DOMAIN');
    await term.press('jj');
    let f = term.stdout.last();
    assert.match(selectedLine(f), /template\.img/);
    // A new disk sorts first: the selection follows db/xvdb to its new index.
    const h2 = host();
    h2.plan.disks.unshift({ domain: 'aaa', vdev: 'xvda', devid: 51712, source: '/x.img', mode: 'rw', sync: 'out-of-sync', health: 'missing', sharedBy: 0 });
    term.instance.rerender(h(App, { ...props, vm: buildViewModel({ ...h2, meta: META }) }));
    f = await term.waitFor('aaa');
    await new Promise((r) => setTimeout(r, 50));
    f = term.stdout.last();
    assert.match(selectedLine(f), /template\.img/);
  } finally {
    await term.close();
  }
});

test('a confirmation is withdrawn when the plan changes before y', async () => {
  const { term, calls, props } = setup();
  try {
    await term.waitFor('DOMAIN');
    await term.press('a');
    await term.waitFor('(y/n)');
    // Same plan again (a refresh with no change): the question stays.
    term.instance.rerender(h(App, { ...props, vm: buildViewModel({ ...host(), meta: META }) }));
    await new Promise((r) => setTimeout(r, 100));
    assert.match(term.stdout.last(), /Apply 3 actions now\? \(y\/n\)/);
    // The plan changes: withdrawn.
    const h2 = host();
    h2.plan.actions = h2.plan.actions.slice(0, 1);
    term.instance.rerender(h(App, { ...props, vm: buildViewModel({ ...h2, meta: META }) }));
    const f = await term.waitFor('The plan changed while you were confirming');
    assert.doesNotMatch(f, /\(y\/n\)/);
    await term.press('y');
    assert.equal(calls.apply, 0);
  } finally {
    await term.close();
  }
});

test('f shows only the disks that need attention, and back', async () => {
  const { term } = setup();
  try {
    await term.waitFor('DOMAIN');
    await term.press('jjjj'); // web/xvda: healthy, synced, nothing pending
    assert.match(selectedLine(term.stdout.last()), /web\s+xvda\s+\S*web\.img/);
    let f = await term.press('f');
    assert.match(f, /showing 5 of 7 disks: those that need attention \(f: all\)/);
    assert.doesNotMatch(f, /web\.img|template\.img.*healthy/, 'the healthy, synced disks are hidden');
    assert.match(selectedLine(f), /^>/, 'a row is still selected');
    // the domain name is shown on the first visible row of each domain
    assert.match(f, /^[\s>]+web\s+xvdc/m);
    await term.press('g');
    f = await term.press('f');
    assert.doesNotMatch(f, /showing \d+ of/);
    assert.match(f, /web\.img/);
    assert.match(selectedLine(f), /build\s+xvda/, 'the selected disk stays selected');
  } finally {
    await term.close();
  }
});

test('/ filters as you type (q is text, not quit), Enter keeps it, Esc clears it; the selection follows its disk', async () => {
  const { term, calls } = setup();
  try {
    await term.waitFor('DOMAIN');
    await term.press('j'); // db/xvda
    let f = await term.press('/');
    assert.match(f, /^\/\s+Enter keep/m);
    f = await term.press('db/');
    assert.match(f, /showing 3 of 7 disks: matching "db\/"/);
    assert.doesNotMatch(f, /web\.img|build\.img/);
    assert.match(selectedLine(f), /db\s+xvda/, 'still on db/xvda');
    f = await term.press('q');
    assert.equal(calls.quit, 0, 'q typed into the filter does not quit');
    assert.match(f, /No disk matches "db\/q"\./);
    await term.press(KEY.backspace);
    f = await term.press(KEY.enter);
    assert.match(f, /showing 3 of 7 disks: matching "db\/" \(Esc: all\)/);
    f = await term.press('j');
    assert.match(selectedLine(f), /xvdb\s+\S*template\.img/, 'j moves within the filtered rows');
    f = await term.press(KEY.escape, 120);
    assert.doesNotMatch(f, /showing \d+ of/);
    assert.match(f, /web\.img/);
    assert.match(selectedLine(f), /xvdb\s+\S*template\.img/);
  } finally {
    await term.close();
  }
});

test('shift-letters sort, the selected disk stays selected; ? shows the help and Esc leaves it; unknown keys say so', async () => {
  const { term } = setup();
  try {
    let f = await term.waitFor('DOMAIN');
    f = await term.press('H');
    assert.match(f, /HEALTH↓/);
    const rows = f.split('\n').filter((l) => /\.img/.test(l));
    assert.match(rows[0]!, /db\s+xvda.*degraded/);
    assert.match(selectedLine(f), /build\s+xvda/, 'build/xvda is still the selected disk');
    f = await term.press('?');
    assert.match(f, /Disk table\n\s+↑ ↓ k j\s+select the previous \/ next disk/);
    assert.match(f, /H\s+sort by health/);
    f = await term.press(KEY.escape, 120);
    assert.match(f, /HEALTH↓/);
    f = await term.press('x');
    assert.match(f, /Key x does nothing here: \? lists the keys\./);
  } finally {
    await term.close();
  }
});

test('p shows exactly the plan with prune, y applies it with prune; a still applies without', async () => {
  const args: unknown[] = [];
  const hst = host();
  const plain = { ...hst.plan, actions: hst.plan.actions.filter((a) => a.kind === 'attach') };
  const { term } = setup({ vm: buildViewModel({ ...hst, plan: plain, prunePlan: hst.plan, meta: META }), onApply: (o) => args.push(o) });
  try {
    await term.waitFor('DOMAIN');
    let f = await term.press('p');
    assert.match(f, /Apply with prune \(1 to detach, 0 to replace, 1 loop device to free\)/);
    assert.match(f, /- detach web devid 51744/);
    assert.match(f, /- free loop7/);
    assert.match(f, /Apply with prune: 3 actions now\? \(y\/n\)/);
    f = await term.press('y');
    assert.deepEqual(args, [{ prune: true }]);
    assert.doesNotMatch(f, /\(y\/n\)/);
    await term.press('a');
    await term.press('y');
    assert.deepEqual(args, [{ prune: true }, undefined]);
  } finally {
    await term.close();
  }
});
