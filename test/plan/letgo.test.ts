// When a loop device may be let go of (src/plan/letgo.ts): one table for every holder and the planner.
// The safety rule: no served disk without a holder in dom0; only proven devices freed; in doubt, keep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { letGo, type LetGoQuestion } from '../../src/plan/letgo.js';

const present = (diskseq?: string) => ({ seen: 'present' as const, diskseq });
const gone = { seen: 'gone' as const };
const unknown = { seen: 'unknown' as const };
const none = { expired: false, giverGone: false };

const rows: [string, LetGoQuestion, 'keep' | 'release', RegExp?][] = [
  // a held fd (Keeper.check, sweepRegistry, detachBackend)
  ['live, the backend records this device', { of: 'held-fd', diskseq: '42', live: true, backend: present('42') }, 'keep'],
  ['live, the backend now records another device', { of: 'held-fd', diskseq: '42', live: true, backend: present('43') }, 'release', /now records diskseq 43/],
  ['live, the backend dir is gone', { of: 'held-fd', diskseq: '42', live: true, backend: gone }, 'release', /backend removed/],
  // the daemon kept these and the keeper let go: in doubt, keep (blkback may still use the device)
  ['live, the backend records no diskseq', { of: 'held-fd', diskseq: '42', live: true, backend: present(undefined) }, 'keep', /no diskseq/],
  ['live, the backend records a malformed diskseq', { of: 'held-fd', diskseq: '42', live: true, backend: present('042') }, 'keep', /malformed/],
  ['live, xenstore could not be read', { of: 'held-fd', diskseq: '42', live: true, backend: unknown }, 'keep'],
  ['held for the dir whatever it records, dir there', { of: 'held-fd', live: true, backend: present('7') }, 'keep'],
  ['held for the dir whatever it records, dir gone', { of: 'held-fd', live: true, backend: gone }, 'release'],
  ['pending, within its grace, giver alive', { of: 'held-fd', diskseq: '42', live: false, backend: gone, pending: none }, 'keep', /waiting/],
  ['pending, the backend exists without our diskseq yet', { of: 'held-fd', diskseq: '42', live: false, backend: present(undefined), pending: none }, 'keep'],
  ['pending, grace over', { of: 'held-fd', diskseq: '42', live: false, backend: gone, pending: { expired: true, giverGone: false } }, 'release', /grace period/],
  ['pending, the giver died and its transaction can no longer commit', { of: 'held-fd', diskseq: '42', live: false, backend: present('41'), pending: { expired: false, giverGone: true } }, 'release', /giver died/],
  ['pending, grace over but xenstore unreadable', { of: 'held-fd', diskseq: '42', live: false, backend: unknown, pending: { expired: true, giverGone: true } }, 'keep'],
  // the giver's word (the hook's remove, a failed transaction)
  ['the giver drops it', { of: 'giver-drop' }, 'release'],
  // a device taken back from systemd's fd store or the keepers
  ['unclaimed, a backend of ours records its diskseq', { of: 'unclaimed-fd', users: 1 }, 'keep'],
  ['unclaimed, no backend records it', { of: 'unclaimed-fd', users: 0 }, 'release', /no backend uses it/],
  // the executor's own fd after a step (settle)
  ['step failed', { of: 'step-fd', committed: false, loop: true, holderHasOwnFd: false }, 'release'],
  ['step committed, the keepers have their own fd', { of: 'step-fd', committed: true, loop: true, holderHasOwnFd: true }, 'release'],
  ['step committed, this fd is the daemon\'s hold', { of: 'step-fd', committed: true, loop: true, holderHasOwnFd: false }, 'keep'],
  ['step committed, a block device source', { of: 'step-fd', committed: true, loop: false, holderHasOwnFd: false }, 'release'],
  // the planner's free-loop
  ['loop device: not ours', { of: 'loop-device', ours: false, referenced: false, usedInDom0: false, scoped: true, prune: true }, 'keep'],
  ['loop device: a backend names it', { of: 'loop-device', ours: true, referenced: true, usedInDom0: false, scoped: true, prune: true }, 'keep'],
  ['loop device: mounted in dom0', { of: 'loop-device', ours: true, referenced: false, usedInDom0: true, scoped: true, prune: true }, 'keep'],
  ['loop device: no allowedRoots', { of: 'loop-device', ours: true, referenced: false, usedInDom0: false, scoped: false, prune: true }, 'keep', /allowedRoots/],
  ['loop device: prune off', { of: 'loop-device', ours: true, referenced: false, usedInDom0: false, scoped: true, prune: false }, 'keep', /prune/],
  ['loop device: ours, unused, scoped, prune', { of: 'loop-device', ours: true, referenced: false, usedInDom0: false, scoped: true, prune: true }, 'release', /no backend uses it/],
];

for (const [name, q, want, reason] of rows) {
  test(`letGo: ${name} -> ${want}`, () => {
    const a = letGo(q);
    assert.equal(a.keep ? 'keep' : 'release', want);
    assert.ok(a.reason.length > 0, 'every answer says why');
    if (reason) assert.match(a.reason, reason);
  });
}

test('letGo: an unused device of ours kept by policy is reported as leaked; one dom0 uses is not', () => {
  const base = { of: 'loop-device' as const, ours: true, referenced: false, usedInDom0: false, scoped: true, prune: true };
  const leaked = (q: LetGoQuestion) => {
    const a = letGo(q);
    return a.keep ? a.leaked : 'freed';
  };
  assert.equal(leaked({ ...base, scoped: false }), 'unscoped');
  assert.equal(leaked({ ...base, scoped: false, prune: false }), 'unscoped');
  assert.equal(leaked({ ...base, prune: false }), 'no-prune');
  assert.equal(leaked({ ...base, usedInDom0: true, prune: false }), undefined);
  assert.equal(leaked({ ...base, referenced: true }), undefined);
  assert.equal(leaked(base), 'freed');
});

test('letGo: a keeper and the daemon judge every backend state of a live fd alike (one function, same facts)', () => {
  // the keeper reads the raw node; the daemon's observation has it parsed (malformed -> undefined)
  for (const raw of [undefined, '42', '43', '042', 'x']) {
    const parsed = raw !== undefined && /^(0|[1-9]\d*)$/.test(raw) ? raw : undefined;
    const k = letGo({ of: 'held-fd', diskseq: '42', live: true, backend: present(raw) });
    const d = letGo({ of: 'held-fd', diskseq: '42', live: true, backend: present(parsed) });
    assert.equal(k.keep, d.keep, String(raw));
  }
});
