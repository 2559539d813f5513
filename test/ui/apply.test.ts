import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sameActions, stepLine } from '../../src/ui/apply.js';
import { host } from './fixtures.js';

test('the confirmed plan must be the one applied (table)', () => {
  const p = host().plan;
  const q = host().plan;
  const reordered = [...q.actions].reverse();
  const fewer = q.actions.slice(1);
  const otherReason = q.actions.map((a) => (a.kind === 'detach' ? { ...a, reason: 'other' } : a));
  const cases: [string, boolean, typeof p.actions][] = [
    ['same plan, new objects', true, q.actions],
    ['reordered', false, reordered],
    ['one action fewer', false, fewer],
    ['a field differs', false, otherReason],
    ['empty vs not', false, []],
  ];
  for (const [name, want, b] of cases) assert.equal(sameActions(p.actions, b), want, name);
  assert.equal(sameActions([], []), true);
});

test('step lines (table)', () => {
  const a = host().plan.actions[0]!;
  const cases: [Parameters<typeof stepLine>[0], string][] = [
    [{ type: 'step-start', index: 0, total: 3, action: a, summary: 'attach db xvdc' }, '[1] attach db xvdc …'],
    [{ type: 'step-progress', index: 1, message: 'using /dev/loop4' }, '[2]   using /dev/loop4'],
    [{ type: 'step-done', index: 2, action: a, summary: 's', ms: 12.4, detail: 'ok' }, '[3] done in 12 ms: ok'],
    [{ type: 'step-done', index: 2, action: a, summary: 's', ms: 3 }, '[3] done in 3 ms'],
    [{ type: 'step-failed', index: 0, action: a, summary: 's', ms: 5, error: 'EACCES' }, '[1] FAILED after 5 ms: EACCES'],
  ];
  for (const [e, want] of cases) assert.equal(stepLine(e), want);
});
