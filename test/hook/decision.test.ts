// hookDecision() and needsWholeHost() as tables: pure, on hand-made observations (test/plan/fixtures).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hookDecision, parseXenbusPath } from '../../src/hook/hook.js';
import { needsWholeHost } from '../../src/hook/hook-serve.js';
import type { DesiredState } from '../../src/model/desired.js';
import type { BackendObs, ObservedState } from '../../src/model/observed.js';
import { plan } from '../../src/plan/plan.js';
import { backend, desired, disk, fileSrc, loop, observed, sources } from '../plan/fixtures.js';

const SRC = '/srv/web1.img';
const T = parseXenbusPath('backend/vbd/3/51712');

/** What libxl leaves for the hook: a backend dir with no physical-device, its script ours. */
function pending(over: Partial<BackendObs> = {}): BackendObs {
  return backend(3, 'xvda', { params: SRC, mode: 'w', state: 1, frontendState: 1, hotplugStatus: undefined, ours: false, script: 'xvbd', kernelHeld: false, ...over });
}

function world(b: BackendObs | undefined, d: DesiredState = desired({ web1: [disk('xvda', SRC)] }), extra: Partial<ObservedState> = {}): { d: DesiredState; o: ObservedState } {
  return { d, o: observed({ domains: [{ domid: 3, name: 'web1' }, { domid: 7, name: 'other' }], backends: b ? [b] : [], sources: sources(fileSrc(SRC, 11)), ...extra }) };
}

function decide(w: { d: DesiredState; o: ObservedState }) {
  return hookDecision(w.d, w.o, plan(w.d, w.o, w.d.policy), T);
}

test('hookDecision: the plan serve step is executed; anything else is refused with the plan words', () => {
  const ok = decide(world(pending()));
  assert.equal(ok.kind, 'execute');
  assert.equal(ok.kind === 'execute' && ok.action.kind, 'serve');
  assert.equal(ok.kind === 'execute' && ok.action.backend.path, T.path);

  const refusals: [string, { d: DesiredState; o: ObservedState }, RegExp][] = [
    ['no backend', world(undefined), /^\/local\/domain\/0\/backend\/vbd\/3\/51712 does not exist$/],
    ['mode', world(pending({ mode: 'r' })), /^web1 xvda: the toolstack's backend mode ro, desired rw; xvbd does not serve it$/],
    ['params', world(pending({ params: '/srv/other.img' })), /^web1 xvda: the toolstack's backend names \/srv\/other\.img, desired \/srv\/web1\.img/],
    ['policy', world(pending(), desired({ web1: [disk('xvda', SRC)] }, { serve: 'attach' })), /but policy serve=attach$/],
    ['script', world(pending({ script: '/etc/xen/scripts/block' })), /belongs to another tool \(script \/etc\/xen\/scripts\/block\)/],
    ['domain', world(pending(), desired({ web2: [disk('xvda', SRC)] })), /^domain web1 \(3\) is not in the desired state$/],
    ['vdev', world(pending(), desired({ web1: [disk('xvdb', SRC)] })), /^domain web1 has no disk with devid 51712 in the desired state$/],
    ['source missing', world(pending(), undefined, { sources: {} }), /\/srv\/web1\.img does not exist/],
    ['mounted', world(pending(), undefined, { sources: sources(fileSrc(SRC, 11, { mounted: true })) }), /is mounted in dom0/],
    ['hotplug error already', world(pending({ hotplugStatus: 'error' })), /hotplug-status is "error"/],
    ['not running', { d: desired({ web1: [disk('xvda', SRC)] }), o: observed({ domains: [], backends: [pending()], sources: sources(fileSrc(SRC, 11)) }) }, /^domain 3 is not running$/],
    ['nameless', { d: desired({ web1: [disk('xvda', SRC)] }), o: observed({ domains: [{ domid: 3 }], backends: [pending()], sources: sources(fileSrc(SRC, 11)) }) }, /name of domain 3 is missing/],
  ];
  for (const [what, w, re] of refusals) {
    const r = decide(w);
    assert.equal(r.kind, 'refuse', what);
    assert.match(r.kind === 'refuse' ? r.reason : '', re, what);
  }
});

test('hookDecision: ours and synced is served (add run twice); ours but drifted is refused, never replaced', () => {
  const l = loop(4, 11, { backingPath: SRC });
  const served = backend(3, 'xvda', { params: SRC }, l);
  const w = world(served, undefined, { loops: [l] });
  assert.deepEqual(decide(w), { kind: 'served', physicalDevice: '7:4' });
  const ro = loop(4, 11, { backingPath: SRC, readOnly: true });
  const drifted = world(backend(3, 'xvda', { params: SRC, mode: 'w' }, ro), undefined, { loops: [ro] });
  const r = decide(drifted);
  assert.equal(r.kind, 'refuse');
  assert.match(r.kind === 'refuse' ? r.reason : '', /mode rw, but \/dev\/loop4 is read-only/);
});

test('needsWholeHost: only when a loop device of the disk file is bound, or the disk is a block device', () => {
  const d = desired({ web1: [disk('xvda', SRC)] });
  const o = (loops: ReturnType<typeof loop>[]) => world(pending(), d, { loops }).o;
  assert.equal(needsWholeHost(d, o([]), [T]), false);
  assert.equal(needsWholeHost(d, o([loop(2, 99)]), [T]), false, 'a loop device of another file');
  assert.equal(needsWholeHost(d, o([loop(2, 11)]), [T]), true, 'a loop device of this file');
  const blk = desired({ web1: [disk('xvda', '/dev/vg0/web1', 'rw', { sourceKind: 'block' })] });
  assert.equal(needsWholeHost(blk, o([]), [T]), true);
  assert.equal(needsWholeHost(desired({ web2: [disk('xvda', SRC)] }), o([loop(2, 11)]), [T]), false, 'not a desired disk: refused anyway');
});
