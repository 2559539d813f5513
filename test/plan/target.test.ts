// -target (a pure filter over the plan's actions) and -replace (an input of plan(): one disk's repair
// without prune, through prune's guards), table-tested.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/index.js';
import { checkAddresses, parseAddress, replaceKey, targetActions, type DiskAddress } from '../../src/plan/target.js';
import type { Policy } from '../../src/model/desired.js';
import type { ObservedState } from '../../src/model/observed.js';
import type { Plan } from '../../src/model/plan.js';
import { actionLines, backend, desired, disk, fileSrc, findingLines, loop, observed, policy, sources, xvd } from './fixtures.js';

const A = '/srv/a.img';
const B = '/srv/b.img';
const C = '/srv/c.img';
const DOMS = [
  { domid: 0, name: 'Domain-0' },
  { domid: 3, name: 'web' },
  { domid: 4, name: 'db' },
];

const addr = (s: string, needDisk = false): DiskAddress => {
  const a = parseAddress(s, { needDisk });
  if ('error' in a) throw new Error(a.error);
  return a;
};

test('parseAddress: DOMAIN or DOMAIN/VDEV; the vdev checked as the config checks it', () => {
  assert.deepEqual(parseAddress('web'), { domain: 'web' });
  assert.deepEqual(parseAddress('web/xvdb'), { domain: 'web', vdev: 'xvdb', devid: xvd('xvdb') });
  assert.deepEqual(parseAddress('web/XVDA'), { domain: 'web', vdev: 'xvda', devid: xvd('xvda') });
  assert.deepEqual(parseAddress('web', { needDisk: true }), { error: '"web" names no disk: write DOMAIN/VDEV (e.g. web/xvda)' });
  for (const bad of ['', '/xvda', 'web/', 'a/b/c']) assert.ok('error' in parseAddress(bad), bad);
  const v = parseAddress('web/floppy');
  assert.ok('error' in v && v.error.startsWith('"web/floppy": '), JSON.stringify(v));
});

// two domains with work, a loop of ours nobody uses, a dangling backend of web's
const la = loop(0, 11, { backingPath: A });
const gone = loop(7, 77, { backingPath: C });
const orphan = loop(9, 99, { backingPath: '/srv/orphan.img' });
const busyHost = (): { d: ReturnType<typeof desired>; o: ObservedState } => ({
  d: desired({ web: [disk('xvda', A, 'ro'), disk('xvdb', B)], db: [disk('xvda', C)] }),
  o: observed({
    domains: DOMS,
    sources: sources(fileSrc(A, 11), fileSrc(B, 12), fileSrc(C, 13)),
    loops: [la, orphan],
    // web xvda: mode differs; db xvda: its loop device is gone (dangling physical-device)
    backends: [backend(3, 'xvda', {}, la), backend(4, 'xvda', { params: C }, gone)],
  }),
});

interface TCase {
  name: string;
  targets: string[];
  actions: string[];
  left: number;
}
const full = (): Plan => {
  const { d, o } = busyHost();
  return plan(d, o, policy({ prune: true, allowedRoots: ['/srv'] }));
};

test('the plan the -target cases filter', () => {
  assert.deepEqual(actionLines(full()), ['close db 51712', 'replace db xvda', 'replace web xvda', 'attach web xvdb', 'free-loop loop9']);
});

const tcases: TCase[] = [
  { name: 'no target: everything', targets: [], actions: ['close db 51712', 'replace db xvda', 'replace web xvda', 'attach web xvdb', 'free-loop loop9'], left: 0 },
  { name: 'a domain: its actions, the offline of another kept (before any allocation), no loop frees', targets: ['web'], actions: ['close db 51712', 'replace web xvda', 'attach web xvdb'], left: 2 },
  { name: 'one disk', targets: ['web/xvdb'], actions: ['close db 51712', 'attach web xvdb'], left: 3 },
  { name: 'repeatable', targets: ['web/xvdb', 'db'], actions: ['close db 51712', 'replace db xvda', 'attach web xvdb'], left: 2 },
  { name: 'a domain with nothing to do: nothing at all (an offline alone is not kept)', targets: ['Domain-0'], actions: [], left: 5 },
  { name: 'a disk with nothing to do', targets: ['web/xvdc'], actions: [], left: 5 },
];
for (const c of tcases) {
  test(`-target: ${c.name}`, () => {
    const p = full();
    const r = targetActions(p.actions, c.targets.map((t) => addr(t)));
    assert.deepEqual(actionLines({ ...p, actions: r.actions }), c.actions);
    assert.equal(r.left, c.left);
  });
}

interface RCase {
  name: string;
  observed: ObservedState;
  desired?: ReturnType<typeof desired>;
  pol?: Partial<Policy>;
  replace: string[];
  actions: string[];
  findings: string[];
  check?: (p: Plan) => void;
}
const modeDiffers = (): ObservedState =>
  observed({
    domains: DOMS,
    sources: sources(fileSrc(A, 11), fileSrc(B, 12)),
    loops: [la, loop(1, 12, { backingPath: B })],
    backends: [backend(3, 'xvda', {}, la), backend(4, 'xvda', { params: B, mode: 'r' }, loop(1, 12, { backingPath: B }))],
  });
const twoDiffer = desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', B)] });
const deletedUnder = (): ObservedState => {
  const l = loop(0, 11, { backingPath: `${A} (deleted)`, backingDeleted: true });
  return observed({ domains: DOMS, sources: sources(fileSrc(A, 21)), loops: [l], backends: [backend(3, 'xvda', { params: A }, l)] });
};
const rcases: RCase[] = [
  {
    name: 'two disks differ, no prune, no -replace: two warnings, nothing done (as before)',
    desired: twoDiffer,
    observed: modeDiffers(),
    replace: [],
    actions: [],
    findings: ['mode-mismatch warning db xvda', 'mode-mismatch warning web xvda'],
  },
  {
    name: '-replace web/xvda: that one replaced, the other still only reported',
    desired: twoDiffer,
    observed: modeDiffers(),
    replace: ['web/xvda'],
    actions: ['replace web xvda'],
    findings: ['mode-mismatch warning db xvda'],
    check: (p) => {
      const a = p.actions[0]!;
      assert.ok(a.kind === 'replace' && /mode rw, desired ro/.test(a.reason));
    },
  },
  {
    name: '-replace a disk that matches the config: nothing (never a forced replace)',
    desired: twoDiffer,
    observed: modeDiffers(),
    replace: ['web/xvdb'],
    actions: [],
    findings: ['mode-mismatch warning db xvda', 'mode-mismatch warning web xvda'],
  },
  {
    name: '-replace over a deleted backing file: refused, data-loss-refused (the same guard as prune)',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: deletedUnder(),
    replace: ['web/xvda'],
    actions: [],
    findings: ['data-loss-refused error web xvda', 'loop-backing-deleted warning'],
    check: (p) => assert.match(p.findings[0]!.message, /not replaced: the backing file of \/dev\/loop0 \(\/srv\/a\.img\) was deleted/),
  },
  {
    name: '-replace with --allow-data-loss: replaced, the reason says what is lost',
    desired: desired({ web: [disk('xvda', A)] }),
    observed: deletedUnder(),
    pol: { allowDataLoss: true },
    replace: ['web/xvda'],
    actions: ['replace web xvda'],
    findings: ['loop-backing-deleted warning'],
    check: (p) => {
      const a = p.actions[0]!;
      assert.ok(a.kind === 'replace' && /--allow-data-loss discards it/.test(a.reason));
    },
  },
  {
    name: '-replace onto a read-write file another domain also wants: refused (rw-shared), nothing replaced',
    desired: desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvdb', A)] }),
    observed: modeDiffers(),
    replace: ['web/xvda'],
    actions: [],
    findings: ['unexpected-backend warning db xvda', 'rw-shared error', 'mode-mismatch warning web xvda'],
  },
];
for (const c of rcases) {
  test(`-replace: ${c.name}`, () => {
    const d = c.desired!;
    const keys = new Set(c.replace.map((s) => {
      const a = addr(s, true);
      return replaceKey(a.domain, a.devid!);
    }));
    const p = plan(d, c.observed, policy({ ...c.pol, replace: keys }));
    assert.deepEqual(actionLines(p), c.actions, 'actions');
    assert.deepEqual(findingLines(p), c.findings, `findings: ${JSON.stringify(p.findings.map((f) => f.message))}`);
    c.check?.(p);
  });
}

test('checkAddresses: a -target names a domain of the config or of the host; a -replace a disk of the config', () => {
  const d = desired({ web: [disk('xvda', A)] });
  const o = observed({ domains: [...DOMS, { domid: 9, name: 'old' }] });
  assert.equal(checkAddresses(d, o, [addr('web'), addr('old'), addr('web/xvdz')], [addr('web/xvda')]), undefined);
  assert.equal(checkAddresses(d, o, [addr('webb')], []), '-target webb: no domain webb in the config or on the host');
  assert.equal(checkAddresses(d, o, [], [addr('old/xvda')]), '-replace old/xvda: no domain old in the config');
  assert.equal(checkAddresses(d, o, [], [addr('web/xvdb')]), '-replace web/xvdb: domain web has no disk xvdb in the config');
});
