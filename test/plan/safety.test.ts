// Prune never destroys data (letGoVerdict, src/plan/safety.ts), frees only under allowedRoots, and a
// foreign loop device of a source is reported (source-in-use) instead of planning an attach that fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { plan } from '../../src/plan/index.js';
import { letGoVerdict, type LetGo } from '../../src/plan/safety.js';
import { ConfigInvalidError, loadDesired } from '../../src/config/index.js';
import type { Policy } from '../../src/model/desired.js';
import type { Inode, LoopObs, ObservedState } from '../../src/model/observed.js';
import type { Plan } from '../../src/model/plan.js';
import { actionLines, backend, desired, disk, fileSrc, findingLines, loop, observed, policy, sources } from './fixtures.js';

const A = '/srv/a.img';
const B = '/srv/b.img';
const DOMS = [
  { domid: 0, name: 'Domain-0' },
  { domid: 3, name: 'web' },
  { domid: 4, name: 'db' },
];
const ino = (n: number): Inode => ({ dev: '2049', ino: String(n) });

// ---- the decision alone ------------------------------------------------------------------------
const deleted = loop(0, 11, { backingPath: `${A} (deleted)`, backingDeleted: true });
const intact = loop(1, 11, { backingPath: A });
const verdicts: [string, LetGo, LoopObs | undefined, Inode | undefined, boolean, 'allowed' | 'refused' | 'allowed with loss'][] = [
  ['no loop device (gone, or another diskseq): nothing of ours holds data', 'detach', undefined, ino(11), false, 'allowed'],
  ['backing intact, the recorded inode', 'detach', intact, ino(11), false, 'allowed'],
  ['backing intact, nothing recorded (a block device source)', 'replace', intact, undefined, false, 'allowed'],
  ['backing deleted: detach', 'detach', deleted, ino(11), false, 'refused'],
  ['backing deleted: replace', 'replace', deleted, ino(11), false, 'refused'],
  ['backing deleted: free-loop', 'free-loop', deleted, undefined, false, 'refused'],
  ['another inode than recorded: detach', 'detach', intact, ino(12), false, 'refused'],
  ['another inode than recorded: replace', 'replace', intact, ino(12), false, 'refused'],
  ['a free has no recorded inode to compare: intact backing', 'free-loop', intact, ino(12), false, 'allowed'],
  ['backing deleted, --allow-data-loss: detach', 'detach', deleted, ino(11), true, 'allowed with loss'],
  ['backing deleted, --allow-data-loss: free-loop', 'free-loop', deleted, undefined, true, 'allowed with loss'],
  ['another inode, --allow-data-loss: replace', 'replace', intact, ino(12), true, 'allowed with loss'],
];
for (const [name, what, l, recorded, allow, want] of verdicts) {
  test(`letGoVerdict: ${name} -> ${want}`, () => {
    const v = letGoVerdict(what, l, recorded, allow);
    const got = !v.allowed ? 'refused' : v.loss !== undefined ? 'allowed with loss' : 'allowed';
    assert.equal(got, want);
    if (!v.allowed) {
      assert.match(v.save, new RegExp(`dd if=/dev/${l!.name} of=\\S+ `), 'says how to copy the data out');
      assert.match(v.save, /--allow-data-loss/, 'says how to go on once it is saved');
      assert.ok(v.why.includes(`/dev/${l!.name}`));
    }
  });
}

test('saveCommand writes next to the deleted file, not over the path the new file took', () => {
  const v = letGoVerdict('free-loop', deleted, undefined, false);
  assert.ok(!v.allowed);
  assert.match(v.save, /of=\/srv\/a\.img\.rescued /);
});

// ---- in the planner ----------------------------------------------------------------------------
interface Case {
  name: string;
  pol: Partial<Policy>;
  observed: ObservedState;
  desired?: ReturnType<typeof desired>;
  actions: string[];
  findings: string[];
  check?: (p: Plan) => void;
}

// The issue's case: web's read-write image deleted while attached (loop0 holds the only copy), and a
// new empty file at the same path (another inode).
const issueObs = (): ObservedState => {
  const l = loop(0, 11, { backingPath: `${A} (deleted)`, backingDeleted: true });
  return observed({ domains: DOMS, sources: sources(fileSrc(A, 21)), loops: [l], backends: [backend(3, 'xvda', { params: A }, l)] });
};
const onWeb = desired({ web: [disk('xvda', A)] });
const refusedOf = (p: Plan) => p.findings.find((f) => f.kind === 'data-loss-refused');

const cases: Case[] = [
  {
    name: 'image deleted while attached, new file at the path, prune: no replace, data-loss-refused',
    pol: { prune: true },
    observed: issueObs(),
    actions: [],
    findings: ['data-loss-refused error web xvda', 'loop-backing-deleted warning'],
    check: (p) => {
      const f = refusedOf(p)!;
      assert.match(f.message, /not replaced/);
      assert.match(f.fix, /dd if=\/dev\/loop0 of=\/srv\/a\.img\.rescued/);
      assert.deepEqual(f.loops?.map((l) => l.name), ['loop0']);
      assert.equal(p.disks[0]!.syncReason, 'data-loss-refused');
    },
  },
  {
    name: 'the same with --allow-data-loss: replace, its reason says what is lost',
    pol: { prune: true, allowDataLoss: true },
    observed: issueObs(),
    actions: ['replace web xvda'],
    findings: ['loop-backing-deleted warning'],
    check: (p) => {
      const a = p.actions[0]!;
      assert.ok(a.kind === 'replace' && /--allow-data-loss discards it/.test(a.reason), JSON.stringify(a));
    },
  },
  {
    name: 'the same without prune: nothing to refuse (a source-mismatch warning, as before)',
    pol: { prune: false },
    observed: issueObs(),
    actions: [],
    findings: ['source-mismatch warning web xvda', 'loop-backing-deleted warning'],
  },
  {
    name: 'a backend nobody desires, its backing deleted, prune: no detach',
    pol: { prune: true },
    desired: desired({}),
    observed: issueObs(),
    actions: [],
    findings: ['data-loss-refused error web xvda', 'loop-backing-deleted warning'],
    check: (p) => assert.match(refusedOf(p)!.message, /not detached/),
  },
  {
    name: 'a backend nobody desires, intact backing, prune: detached',
    pol: { prune: true },
    desired: desired({}),
    observed: (() => {
      const l = loop(0, 11, { backingPath: A });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', { params: A }, l)] });
    })(),
    actions: ['detach web 51712'],
    findings: [],
  },
  {
    name: 'a second backend of ours on the vdev whose device backs a deleted file: not detached',
    pol: { prune: true },
    observed: (() => {
      const good = loop(1, 11, { backingPath: A });
      const gone = loop(2, 12, { backingPath: `${B} (deleted)`, backingDeleted: true });
      return observed({
        domains: DOMS,
        sources: sources(fileSrc(A, 11)),
        loops: [good, gone],
        backends: [backend(3, 'xvda', { params: A }, good), backend(3, 'xvda', { backendDomid: 5, params: B }, gone)],
      });
    })(),
    actions: [],
    findings: ['data-loss-refused error web xvda', 'loop-backing-deleted warning'],
  },
  {
    name: 'the device now backs another inode than xvbd-inode (same diskseq): replace refused',
    pol: { prune: true },
    observed: (() => {
      const l = loop(0, 12, { backingPath: '/srv/other.img' });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', { params: A, sourceInode: ino(11) }, l)] });
    })(),
    actions: [],
    findings: ['data-loss-refused error web xvda'],
    check: (p) => assert.match(refusedOf(p)!.message, /xvbd-inode 2049:11/),
  },
  {
    name: 'an unused loop of ours with a deleted backing file, prune: not freed',
    pol: { prune: true, allowedRoots: ['/srv'] },
    desired: desired({}),
    observed: observed({ domains: DOMS, loops: [loop(5, 15, { backingPath: `${A} (deleted)`, backingDeleted: true }), loop(6, 16)] }),
    actions: ['free-loop loop6'],
    findings: ['data-loss-refused error'],
    check: (p) => assert.match(refusedOf(p)!.message, /\/dev\/loop5 .*not freed/),
  },
  {
    name: 'the same with --allow-data-loss: freed',
    pol: { prune: true, allowedRoots: ['/srv'], allowDataLoss: true },
    desired: desired({}),
    observed: observed({ domains: DOMS, loops: [loop(5, 15, { backingPath: `${A} (deleted)`, backingDeleted: true })] }),
    actions: ['free-loop loop5'],
    findings: [],
  },
  {
    name: 'the same without prune: loop-leaked, whose fix saves the data first',
    pol: { prune: false, allowedRoots: ['/srv'] },
    desired: desired({}),
    observed: observed({ domains: DOMS, loops: [loop(5, 15, { backingPath: `${A} (deleted)`, backingDeleted: true })] }),
    actions: [],
    findings: ['loop-leaked warning'],
    check: (p) => assert.match(p.findings[0]!.fix, /dd if=\/dev\/loop5 .*--allow-data-loss/),
  },
  {
    name: 'no allowedRoots: an unused loop of ours is not freed, even with prune (another instance may own it)',
    pol: { prune: true, allowedRoots: [] },
    desired: desired({}),
    observed: observed({ domains: DOMS, loops: [loop(6, 16)] }),
    actions: [],
    findings: ['loop-leaked warning'],
    check: (p) => assert.match(p.findings[0]!.fix, /allowedRoots/),
  },
  // ---- source-in-use -------------------------------------------------------------------------
  {
    name: 'a read-write disk whose file has a loop device xvbd did not make: source-in-use, no attach',
    pol: {},
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [loop(7, 11, { ours: false, backingPath: A })] }),
    actions: [],
    findings: ['source-in-use error web xvda'],
    check: (p) => {
      const f = p.findings[0]!;
      assert.match(f.message, /\/dev\/loop7 \(rw\)/);
      assert.match(f.fix, /losetup -d \/dev\/loop7/);
      assert.match(p.disks[0]!.healthReason ?? '', /source in use by \/dev\/loop7/);
    },
  },
  {
    name: 'a read-write disk, the foreign device read-only: still in use',
    pol: {},
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [loop(7, 11, { ours: false, readOnly: true, backingPath: A })] }),
    actions: [],
    findings: ['source-in-use error web xvda'],
  },
  {
    name: 'a read-only disk next to a read-only foreign device: attached (xvbd makes its own)',
    pol: {},
    desired: desired({ web: [disk('xvda', A, 'ro')] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [loop(7, 11, { ours: false, readOnly: true, backingPath: A })] }),
    actions: ['attach web xvda'],
    findings: [],
  },
  {
    name: 'a read-only disk next to a writable foreign device: source-in-use',
    pol: {},
    desired: desired({ web: [disk('xvda', A, 'ro')] }),
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [loop(7, 11, { ours: false, backingPath: A })] }),
    actions: [],
    findings: ['source-in-use error web xvda'],
  },
  {
    name: 'a foreign device of another file: no finding, attached',
    pol: {},
    observed: observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [loop(7, 12, { ours: false, backingPath: B })] }),
    actions: ['attach web xvda'],
    findings: [],
  },
  {
    name: "the foreign device is what this disk's own (toolstack) backend serves: no source-in-use",
    pol: {},
    observed: (() => {
      const l = loop(7, 11, { ours: false, backingPath: A });
      return observed({ domains: DOMS, sources: sources(fileSrc(A, 11)), loops: [l], backends: [backend(3, 'xvda', { ours: false, params: A, script: '/etc/xen/scripts/block', diskseq: undefined, sourceInode: undefined }, l)] });
    })(),
    actions: [],
    findings: ['unexpected-backend info web xvda'],
  },
];

for (const c of cases) {
  test(`plan, data safety: ${c.name}`, () => {
    const d = c.desired ?? onWeb;
    const pol = policy({ ...d.policy, ...c.pol });
    const p = plan(d, c.observed, pol);
    assert.deepEqual(actionLines(p), c.actions, 'actions');
    assert.deepEqual(findingLines(p), c.findings, `findings: ${JSON.stringify(p.findings.map((f) => f.message))}`);
    for (const f of p.findings) assert.ok(f.message.length > 0 && f.fix.length > 0);
    c.check?.(p);
  });
}

test('allowDataLoss cannot come from the config: the schema refuses the key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-safety-cfg-'));
  try {
    writeFileSync(join(dir, 'policy.yaml'), 'apiVersion: xvbd/v1\nkind: Policy\nprune: true\nallowDataLoss: true\n');
    await assert.rejects(loadDesired(dir), (e: unknown) => e instanceof ConfigInvalidError && e.errors.some((x) => /allowDataLoss/.test(x.message)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('renderPlan: no actions but an error finding does not say the host matches', async () => {
  const { renderPlan } = await import('../../src/render/plan.js');
  const p = plan(onWeb, issueObs(), policy({ prune: true }));
  const text = renderPlan(p, { color: false });
  assert.match(text, /^No changes\. Nothing to do here, but an error finding needs you \(see the findings\)\./m);
  assert.doesNotMatch(text, /matches the desired state/);
  assert.match(text, /the backing file of \/dev\/loop0 \(\/srv\/a\.img\) was deleted/);
});
