import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INITIAL_UI, reconcileSelection, reduceKey, type KeyContext, type KeyInfo, type UiState } from '../../src/ui/keys.js';

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
