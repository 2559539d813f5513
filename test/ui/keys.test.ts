import { test } from 'node:test';
import assert from 'node:assert/strict';
import { helpSections, hints, INITIAL_UI, reconcileSelection, reduceKey, type KeyContext, type KeyInfo, type Mode, type UiState } from '../../src/ui/keys.js';

const ctx: KeyContext = { rowKeys: ['a/xvda', 'a/xvdb', 'b/xvda', 'c/xvda'], actionCount: 2, canApply: true, applying: false, pageSize: 2 };

type Case = {
  name: string;
  from: UiState;
  input?: string;
  key?: KeyInfo;
  ctx?: Partial<KeyContext>;
  mode?: UiState['mode'];
  selected?: number;
  effect?: string;
  message?: RegExp;
};

const at = (selected: number, mode: UiState['mode'] = 'list'): UiState => ({ mode, selected, selectedKey: ctx.rowKeys[selected]! });

const cases: Case[] = [
  { name: 'j moves down', from: at(0), input: 'j', selected: 1, effect: 'none' },
  { name: 'down arrow moves down', from: at(1), key: { downArrow: true }, selected: 2 },
  { name: 'k moves up', from: at(2), input: 'k', selected: 1 },
  { name: 'up arrow at the top stays', from: at(0), key: { upArrow: true }, selected: 0 },
  { name: 'down at the bottom stays', from: at(3), input: 'j', selected: 3 },
  { name: 'page down by page size', from: at(0), key: { pageDown: true }, selected: 2 },
  { name: 'page up clamps', from: at(1), key: { pageUp: true }, selected: 0 },
  { name: 'G goes to the end', from: at(0), input: 'G', selected: 3 },
  { name: 'g goes to the start', from: at(3), input: 'g', selected: 0 },
  { name: 'Enter opens details', from: at(1), key: { return: true }, mode: 'details', selected: 1 },
  { name: 'Enter with no rows says so', from: INITIAL_UI, key: { return: true }, ctx: { rowKeys: [] }, mode: 'list', message: /No disk/ },
  { name: 'Esc closes details', from: at(1, 'details'), key: { escape: true }, mode: 'list', selected: 1 },
  { name: 'Enter closes details', from: at(1, 'details'), key: { return: true }, mode: 'list' },
  { name: 'j in details shows the next disk', from: at(1, 'details'), input: 'j', mode: 'details', selected: 2 },
  { name: 'r refreshes', from: at(1), input: 'r', effect: 'refresh', selected: 1 },
  { name: 'q quits', from: at(1), input: 'q', effect: 'quit' },
  { name: 'q in details quits', from: at(1, 'details'), input: 'q', effect: 'quit' },
  { name: 'q while applying refuses', from: at(1), input: 'q', ctx: { applying: true }, effect: 'none', message: /apply is running/ },
  { name: 'a asks for confirmation', from: at(0), input: 'a', mode: 'confirm', effect: 'none' },
  { name: 'a without apply function', from: at(0), input: 'a', ctx: { canApply: false }, mode: 'list', message: /not available/ },
  { name: 'a with an empty plan', from: at(0), input: 'a', ctx: { actionCount: 0 }, mode: 'list', message: /Nothing to apply/ },
  { name: 'a while applying', from: at(0), input: 'a', ctx: { applying: true }, mode: 'list', message: /already running/ },
  { name: 'y confirms: apply', from: at(0, 'confirm'), input: 'y', mode: 'list', effect: 'apply' },
  { name: 'y after the plan emptied: nothing', from: at(0, 'confirm'), input: 'y', ctx: { actionCount: 0 }, mode: 'list', effect: 'none', message: /plan changed/ },
  { name: 'n cancels', from: at(0, 'confirm'), input: 'n', mode: 'list', effect: 'none', message: /cancelled/ },
  { name: 'Esc cancels', from: at(0, 'confirm'), key: { escape: true }, mode: 'list', message: /cancelled/ },
  { name: 'q in confirm cancels, does not quit', from: at(0, 'confirm'), input: 'q', mode: 'list', effect: 'none' },
  { name: 'j in confirm does not move', from: at(0, 'confirm'), input: 'j', mode: 'confirm', selected: 0, message: /y or n/ },
  { name: 'r in confirm does not refresh', from: at(0, 'confirm'), input: 'r', mode: 'confirm', effect: 'none' },
  { name: 'f turns the filter on, keeps the disk', from: at(2), input: 'f', mode: 'list', selected: 2, effect: 'none' },
  { name: 'f in details stays in details', from: at(1, 'details'), input: 'f', mode: 'details' },
  { name: 'other keys: nothing', from: at(2), input: 'x', mode: 'list', selected: 2, effect: 'none' },
  { name: 'a key clears the message', from: { ...at(2), message: 'old' }, input: 'j', selected: 3 },
];

test('key reducer (table)', () => {
  for (const c of cases) {
    const { state, effect } = reduceKey(c.from, c.input ?? '', c.key ?? {}, { ...ctx, ...c.ctx });
    if (c.mode !== undefined) assert.equal(state.mode, c.mode, c.name);
    if (c.selected !== undefined) {
      assert.equal(state.selected, c.selected, c.name);
      assert.equal(state.selectedKey, ctx.rowKeys[c.selected], c.name);
    }
    if (c.effect !== undefined) assert.equal(effect, c.effect, c.name);
    if (c.message !== undefined) assert.match(state.message ?? '', c.message, c.name);
    if (c.input === 'f') assert.equal(state.filter, !c.from.filter, c.name);
    else if (c.name === 'a key clears the message') assert.equal(state.message, undefined, c.name);
  }
});

test('selection follows its disk across refreshes (table)', () => {
  const cases: [UiState, string[], number, string | undefined, string][] = [
    [at(1), ['a/xvda', 'a/xvdb', 'b/xvda', 'c/xvda'], 1, 'a/xvdb', 'unchanged'],
    [at(1), ['0/new', 'a/xvda', 'a/xvdb', 'b/xvda'], 2, 'a/xvdb', 'a row inserted above'],
    [at(3), ['a/xvda', 'a/xvdb'], 1, 'a/xvdb', 'selected row gone: clamped'],
    [at(1), [], 0, undefined, 'no rows'],
  ];
  for (const [from, keys, sel, key, name] of cases) {
    const s = reconcileSelection(from, keys);
    assert.equal(s.selected, sel, name);
    assert.equal(s.selectedKey, key, name);
  }
  const same = at(1);
  assert.equal(reconcileSelection(same, ctx.rowKeys), same, 'no change: same object (no re-render)');
  assert.equal(reconcileSelection(at(1, 'details'), []).mode, 'list', 'details closes when its disk is gone');
});

test('f toggles back off; moving keeps the filter', () => {
  const on = reduceKey(at(1), 'f', {}, ctx).state;
  assert.equal(on.filter, true);
  const moved = reduceKey(on, 'j', {}, ctx).state;
  assert.equal(moved.filter, true);
  const off = reduceKey(moved, 'f', {}, ctx).state;
  assert.equal(off.filter, undefined);
});

const run = (from: UiState, keys: (string | KeyInfo)[], c: Partial<KeyContext> = {}) => {
  let s = from;
  const effects: string[] = [];
  for (const k of keys) {
    const r = typeof k === 'string' ? reduceKey(s, k, {}, { ...ctx, ...c }) : reduceKey(s, '', k, { ...ctx, ...c });
    s = r.state;
    effects.push(r.effect);
  }
  return { s, effects };
};

test('? opens the help from the table or the details; Esc, ? or q closes it where it was opened', () => {
  const cases: [string, UiState, (string | KeyInfo)[], UiState['mode'], RegExp | undefined][] = [
    ['? in the table', at(1), ['?'], 'help', undefined],
    ['? in the details', at(1, 'details'), ['?'], 'help', undefined],
    ['Esc back to the table', at(1), ['?', { escape: true }], 'list', undefined],
    ['? back to the details', at(1, 'details'), ['?', '?'], 'details', undefined],
    ['q closes the help, does not quit', at(1), ['?', 'q'], 'list', undefined],
    ['another key in the help says how to close it', at(1), ['?', 'x'], 'help', /Esc, \? or q closes the help/],
  ];
  for (const [name, from, keys, mode, message] of cases) {
    const { s, effects } = run(from, keys);
    assert.equal(s.mode, mode, name);
    assert.ok(!effects.includes('quit'), name);
    if (message) assert.match(s.message ?? '', message, name);
  }
  // j/k scroll the help within its length; closing it forgets the scroll
  const scroll = (keys: string[]) => run(at(1), ['?', ...keys], { helpMaxScroll: 2 }).s;
  assert.equal(scroll(['j']).scroll, 1);
  assert.equal(scroll(['j', 'j', 'j', 'j']).scroll, 2, 'not past the end');
  assert.equal(scroll(['j', 'k', 'k']).scroll, 0, 'not above the start');
  assert.equal(scroll(['j', 'q']).scroll, undefined);
  assert.equal(scroll(['j', 'q']).selected, 1, 'j in the help does not move the selection');
});

test('e shows the daemon events and Esc, e or q goes back where it was; other keys say how', () => {
  assert.equal(run(at(1), ['e']).s.mode, 'events');
  assert.equal(run(at(1), ['e', { escape: true }]).s.mode, 'list');
  assert.equal(run(at(1, 'details'), ['e', 'e']).s.mode, 'details');
  const q = run(at(1), ['e', 'q']);
  assert.deepEqual([q.s.mode, q.effects.at(-1)], ['list', 'none'], 'q closes the events, does not quit');
  assert.match(run(at(1), ['e', 'x']).s.message ?? '', /Esc, e or q closes the events/);
});

test(': runs a k9s-style command: views by name, quit; unknown ones say which exist (table)', () => {
  const cases: [string, (string | KeyInfo)[], Partial<KeyContext>, UiState['mode'], string, RegExp | undefined][] = [
    [': opens the prompt', [':'], {}, 'command', 'none', undefined],
    [':events', [':', 'events', { return: true }], {}, 'events', 'none', undefined],
    [':ev', [':', 'ev', { return: true }], {}, 'events', 'none', undefined],
    [':help', [':', 'help', { return: true }], {}, 'help', 'none', undefined],
    [':disks from the details', [':', 'disks', { return: true }], {}, 'list', 'none', undefined],
    [':q quits', [':', 'q', { return: true }], {}, 'list', 'quit', undefined],
    [':quit while applying refuses', [':', 'quit', { return: true }], { applying: true }, 'list', 'none', /apply is running/],
    ['unknown', [':', 'pods', { return: true }], {}, 'list', 'none', /Unknown command :pods \(:disks :events :help :quit\)\./],
    ['Backspace edits', [':', 'evx', { backspace: true }, { return: true }], {}, 'events', 'none', undefined],
    ['Esc cancels', [':', 'q', { escape: true }], {}, 'list', 'none', undefined],
    ['empty: back', [':', { return: true }], {}, 'list', 'none', undefined],
  ];
  for (const [name, keys, c, mode, effect, message] of cases) {
    const split = keys.flatMap((k): (string | KeyInfo)[] => (typeof k === 'string' ? [...k] : [k]));
    const { s, effects } = run(at(1, name.includes('details') ? 'details' : 'list'), split, c);
    assert.equal(s.mode, mode, name);
    assert.equal(effects.at(-1), effect, name);
    if (s.mode !== 'command') assert.equal(s.command, undefined, `${name}: the prompt is gone`);
    if (message) assert.match(s.message ?? '', message, name);
  }
  assert.equal(run(at(1), [':', 'e', 'v']).s.command, 'ev');
});

test('/ types a filter: characters (q and j too) edit it, Backspace deletes, Enter keeps, Esc clears (table)', () => {
  const cases: [string, (string | KeyInfo)[], UiState['mode'], string | undefined][] = [
    ['/ opens an empty prompt', ['/'], 'filter', ''],
    ['typing edits it', ['/', 'd', 'b'], 'filter', 'db'],
    ['q and j are text in the prompt', ['/', 'q', 'j'], 'filter', 'qj'],
    ['Backspace deletes', ['/', 'd', 'b', { backspace: true }], 'filter', 'd'],
    ["Ink's delete (the DEL byte) deletes too", ['/', 'd', 'b', { delete: true }], 'filter', 'd'],
    ['Enter keeps it', ['/', 'd', 'b', { return: true }], 'list', 'db'],
    ['Enter on an empty prompt: no filter', ['/', { return: true }], 'list', undefined],
    ['Esc in the prompt clears it', ['/', 'd', { escape: true }], 'list', undefined],
    ['Esc in the table clears a kept filter', ['/', 'd', { return: true }, { escape: true }], 'list', undefined],
    ['/ again edits the kept filter', ['/', 'd', { return: true }, '/', 'b'], 'filter', 'db'],
  ];
  for (const [name, keys, mode, query] of cases) {
    const { s, effects } = run(at(1), keys);
    assert.equal(s.mode, mode, name);
    assert.equal(s.query, query, name);
    assert.ok(effects.every((e) => e === 'none'), name);
  }
});

test('shift-letters sort by a column; the same letter again reverses; N twice more restores the order (table)', () => {
  const cases: [string, string[], UiState['sort']][] = [
    ['S: sync', ['S'], { col: 'sync' }],
    ['S S: sync reversed', ['S', 'S'], { col: 'sync', desc: true }],
    ['S S S: sync again', ['S', 'S', 'S'], { col: 'sync' }],
    ['H: health', ['H'], { col: 'health' }],
    ['S then H: health', ['S', 'H'], { col: 'health' }],
    ['O: source', ['O'], { col: 'source' }],
    ['L: loop', ['L'], { col: 'loop' }],
    ['N: domain', ['N'], { col: 'domain' }],
    ['N N N: back to the plan order', ['N', 'N', 'N'], undefined],
  ];
  for (const [name, keys, sort] of cases) assert.deepEqual(run(at(1), keys).s.sort, sort, name);
  // moving keeps the sort and the filter
  const s = run(at(1), ['S', '/', 'd', { return: true }, 'j']).s;
  assert.deepEqual(s.sort, { col: 'sync' });
  assert.equal(s.query, 'd');
  assert.equal(s.selected, 2);
});

test('p: apply with prune after its own confirmation; never without one (table)', () => {
  const cases: [string, (string | KeyInfo)[], Partial<KeyContext>, UiState['mode'], string, RegExp | undefined][] = [
    ['p asks', ['p'], { pruneActionCount: 3 }, 'confirm-prune', 'none', undefined],
    ['p y applies with prune', ['p', 'y'], { pruneActionCount: 3 }, 'list', 'apply-prune', undefined],
    ['p n cancels', ['p', 'n'], { pruneActionCount: 3 }, 'list', 'none', /cancelled/],
    ['p Esc cancels', ['p', { escape: true }], { pruneActionCount: 3 }, 'list', 'none', /cancelled/],
    ['p x repeats the question', ['p', 'x'], { pruneActionCount: 3 }, 'confirm-prune', 'none', /Apply with prune\? Press y or n/],
    ['p with nothing to prune', ['p'], { pruneActionCount: 0 }, 'list', 'none', /Nothing to apply, even with prune/],
    ['p without a config', ['p'], {}, 'list', 'none', /no valid config/],
    ['p without apply', ['p'], { canApply: false, pruneActionCount: 3 }, 'list', 'none', /not available/],
    ['p while applying', ['p'], { applying: true, pruneActionCount: 3 }, 'list', 'none', /already running/],
    ['a with an empty plan points at p', ['a'], { actionCount: 0, pruneActionCount: 3 }, 'list', 'none', /plan is empty\. With prune: 3 actions \(p shows them\)/],
  ];
  for (const [name, keys, c, mode, effect, message] of cases) {
    const { s, effects } = run(at(0), keys, c);
    assert.equal(s.mode, mode, name);
    assert.equal(effects.at(-1), effect, name);
    if (message) assert.match(s.message ?? '', message, name);
  }
  const emptied = reduceKey(at(0, 'confirm-prune'), 'y', {}, { ...ctx, pruneActionCount: 0 });
  assert.deepEqual([emptied.state.mode, emptied.effect], ['list', 'none'], 'y after the prune plan emptied');
  assert.match(emptied.state.message ?? '', /plan changed/);
  // j/k scroll the list with prune, within its length; y or n forgets the scroll
  const sc = (keys: (string | KeyInfo)[]) => run(at(0), ['p', ...keys], { pruneActionCount: 30, pruneMaxScroll: 2 });
  assert.equal(sc(['j']).s.scroll, 1);
  assert.equal(sc(['j', 'j', 'j']).s.scroll, 2, 'not past the end');
  assert.equal(sc([{ downArrow: true }, 'k', 'k']).s.scroll, 0, 'not above the start');
  assert.equal(sc(['j']).s.mode, 'confirm-prune');
  assert.deepEqual([sc(['j', 'y']).s.scroll, sc(['j', 'y']).effects.at(-1)], [undefined, 'apply-prune']);
  assert.equal(sc(['j', 'n']).s.scroll, undefined);
  // y in the plain confirmation is still the plain apply
  assert.deepEqual(run(at(0), ['a', 'y'], { pruneActionCount: 3 }).effects, ['none', 'apply']);
});

test('a key that does nothing says so, and points at ?', () => {
  for (const k of ['x', 'z', ' ']) {
    const { s } = run(at(1), [k]);
    assert.match(s.message ?? '', /does nothing here: \? lists the keys/, JSON.stringify(k));
    assert.equal(s.mode, 'list');
  }
  assert.match(run(at(1, 'details'), ['x']).s.message ?? '', /Key x does nothing here/);
});

test('the help cannot lie: every key it lists acts, every key that acts is listed (from the one table)', () => {
  const listed = new Map<Mode, Set<string>>();
  for (const [title, rows] of helpSections(true)) {
    const mode: Mode = /table/.test(title) ? 'list' : /Details/.test(title) ? 'details' : /filter/.test(title) ? 'filter' : /command/.test(title) ? 'command' : /events/.test(title) ? 'events' : /Confirming/.test(title) ? 'confirm' : 'help';
    const set = new Set<string>();
    for (const [keys] of rows) for (const k of keys.split(' ')) set.add(k);
    listed.set(mode, set);
  }
  const full: KeyContext = { ...ctx, pruneActionCount: 2 };
  for (const mode of ['list', 'details'] as const) {
    const from = at(1, mode);
    for (let c = 0x21; c < 0x7f; c++) {
      const ch = String.fromCharCode(c);
      const r = reduceKey(from, ch, {}, full);
      const acts = !/does nothing/.test(r.state.message ?? '');
      assert.equal(listed.get(mode)!.has(ch), acts, `${mode}: ${ch} ${acts ? 'acts but is not in the help' : 'is in the help but does nothing'}`);
    }
  }
  // the status line's hints are keys of the same table
  for (const h of hints('list', true).split('  ')) assert.ok(listed.get('list')!.has(h.split(' ')[0]!), h);
  assert.doesNotMatch(hints('list', false), /a apply|p prune/);
  assert.ok(!helpSections(false).some(([, rows]) => rows.some(([k]) => k === 'a' || k === 'p')), 'no apply keys in the help of --no-apply');
  assert.ok(!helpSections(false).some(([title]) => /Confirming/.test(title)), 'nor the confirmation');
  assert.ok(helpSections(true).some(([title]) => /Confirming/.test(title)));
});
