// Table tests of the planner's index of an observation (src/plan/observed-index.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeBackend, indexObserved, ownLoop } from '../../src/plan/observed-index.js';
import type { LoopObs } from '../../src/model/observed.js';
import { backend, loop, observed } from './fixtures.js';

test('domains by name and by domid; nameless domains only run', () => {
  const ix = indexObserved(observed({ domains: [{ domid: 3, name: 'web' }, { domid: 5, name: 'web' }, { domid: 7 }] }), []);
  assert.deepEqual(ix.domidsByName.get('web'), [3, 5]);
  assert.equal(ix.nameByDomid.get(3), 'web');
  assert.equal(ix.nameByDomid.has(7), false);
  assert.deepEqual([...ix.runningDomids].sort(), [3, 5, 7]);
});

test('describeBackend: what a backend serves, by its physical-device and recorded diskseq', () => {
  const l = loop(3, 10);
  const byDev = new Map<string, LoopObs>([['7:3', l]]);
  const cases: { name: string; b: Parameters<typeof describeBackend>[0]; want: Record<string, unknown> }[] = [
    { name: 'ours, through its loop device', b: backend(3, 'xvda', {}, l), want: { loopReused: 'no', identity: 'f:2049:10', active: true } },
    { name: 'diskseq differs: reused', b: backend(3, 'xvda', { diskseq: '999' }, l), want: { loopReused: 'reused', identity: 'f:2049:10', active: false, reusedData: 'f:2049:10' } },
    { name: 'loop gone, inode recorded', b: backend(3, 'xvda', {}, loop(4, 11)), want: { loopReused: 'gone', identity: 'f:2049:11', active: false } },
    { name: 'ours, a block device as is', b: backend(3, 'xvda', { physicalDevice: '8:1' }), want: { loopReused: 'no', identity: 'b:8:1', active: true } },
    { name: "another tool's at a loop: both identities", b: backend(3, 'xvda', { ours: false, diskseq: undefined, sourceInode: undefined }, l), want: { identity: 'f:2049:10', altIdentity: 'b:7:3', active: true } },
    { name: 'no physical-device yet', b: backend(3, 'xvda'), want: { loopReused: 'no', identity: undefined, active: false } },
  ];
  for (const c of cases) {
    const i = describeBackend(c.b, byDev);
    for (const [k, v] of Object.entries(c.want)) assert.deepEqual((i as unknown as Record<string, unknown>)[k], v, `${c.name}: ${k}`);
  }
});

test('loop users, device users and sharable read-only loops: the most used, then the lowest numbered', () => {
  const l1 = loop(1, 10, { readOnly: true });
  const l2 = loop(2, 10, { readOnly: true });
  const l3 = loop(3, 10, { readOnly: true, ours: false });
  const ix = indexObserved(observed({ loops: [l3, l2, l1], backends: [backend(3, 'xvda', {}, l2), backend(4, 'xvda', {}, l2), backend(5, 'xvda', {}, l1)] }), []);
  assert.deepEqual(ix.loops.map((l) => l.name), ['loop1', 'loop2', 'loop3']);
  assert.equal(ix.loopUsers.get('loop2')?.length, 2);
  assert.equal(ix.pdUsers.get('7:2'), 2);
  assert.deepEqual([...ix.recordedDiskseqs].sort(), ['101', '102']);
  assert.deepEqual([...ix.roLoopsByKey.values()].map((ls) => ls.map((l) => l.name)), [['loop1', 'loop2']]);
  assert.equal([...ix.bestByKey.values()][0]!.name, 'loop2');
});

test('ownLoop: the marker, and with allowedRoots a backing file under them', () => {
  const cases: [LoopObs, string[], boolean][] = [
    [loop(1, 1, { backingPath: '/srv/a.img' }), [], true],
    [loop(1, 1, { backingPath: '/srv/a.img' }), ['/srv'], true],
    [loop(1, 1, { backingPath: '/home/a.img' }), ['/srv'], false],
    [loop(1, 1, { ours: false }), [], false],
  ];
  for (const [l, roots, want] of cases) assert.equal(ownLoop({ roots }, l), want, `${l.backingPath} under ${roots.join(',')}`);
});
