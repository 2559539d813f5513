// The saved plan format (src/plan/saved.ts): what its digests cover and what a damaged file says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/index.js';
import { desiredDigest, observedDigest, parseSavedPlan, SavedPlanError } from '../../src/plan/saved.js';
import { backend, desired, disk, fileSrc, loop, observed, policy, sources } from './fixtures.js';

const A = '/srv/a.img';
const B = '/srv/b.img';
const DOMS = [
  { domid: 0, name: 'Domain-0' },
  { domid: 3, name: 'web' },
  { domid: 4, name: 'db' },
];
const d = desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', B)] });
const la = loop(0, 11, { backingPath: A });
const host = (over: { aIno?: number; bIno?: number; state?: number; dbName?: string } = {}) =>
  observed({
    domains: [DOMS[0]!, DOMS[1]!, { domid: 4, name: over.dbName ?? 'db' }],
    sources: sources(fileSrc(A, over.aIno ?? 11), fileSrc(B, over.bIno ?? 12)),
    loops: [la],
    backends: [backend(3, 'xvda', { state: over.state ?? 4 }, la)],
  });

test('observedDigest: what the actions touch, not the rest of the host, not xenbus states', () => {
  const base = host();
  const p = plan(d, base, policy({ prune: true }));
  assert.deepEqual(p.actions.map((a) => a.kind), ['attach', 'replace']);
  const dig = observedDigest(p.actions, base);
  assert.equal(observedDigest(p.actions, host({ state: 3 })), dig, 'a backend state moving on its own');
  assert.notEqual(observedDigest(p.actions, host({ bIno: 99 })), dig, "the attached disk's source replaced");
  assert.notEqual(observedDigest(p.actions, host({ dbName: 'db2' })), dig, 'the domain renamed');
  // only the attach: web's backend and loop are not looked at
  const attachOnly = p.actions.filter((a) => a.kind === 'attach');
  assert.equal(observedDigest(attachOnly, host({ aIno: 77 })), observedDigest(attachOnly, base));
  assert.notEqual(observedDigest(p.actions, host({ aIno: 77 })), dig);
});

test('desiredDigest: the same config, the same digest; any change, another', () => {
  assert.equal(desiredDigest(d), desiredDigest(desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', B)] })));
  assert.notEqual(desiredDigest(d), desiredDigest(desired({ web: [disk('xvda', A)], db: [disk('xvda', B)] })));
  assert.notEqual(desiredDigest(d), desiredDigest(desired({ web: [disk('xvda', A, 'ro')], db: [disk('xvda', B)] }, { prune: true })));
});

test('parseSavedPlan: not JSON, not a plan, another version, damaged: one sentence each', () => {
  const ok = { format: 'xvbd-plan', version: 1, createdAt: 'x', configDir: '/c', host: 'h', observedOn: 'h', flags: { prune: false, allowDataLoss: false, targets: [], replace: [] }, desiredDigest: 's', observedDigest: 's', actions: [], findings: [], disks: [] };
  assert.equal(parseSavedPlan(JSON.stringify(ok), 'f').host, 'h');
  const msg = (text: string) => {
    try {
      parseSavedPlan(text, 'f');
    } catch (err) {
      assert.ok(err instanceof SavedPlanError);
      return err.message;
    }
    return 'accepted';
  };
  assert.match(msg('{'), /^f is not a saved plan: not JSON/);
  assert.equal(msg('{"apiVersion":"xvbd/v1"}'), 'f is not a saved plan (made by `xvbd plan -out FILE`)');
  assert.equal(msg(JSON.stringify({ ...ok, version: 2 })), 'f is a saved plan of version 2; this xvbd reads version 1: plan again');
  assert.match(msg(JSON.stringify({ ...ok, flags: { prune: false } })), /^f is a damaged saved plan/);
  assert.match(msg(JSON.stringify({ ...ok, actions: 'none' })), /^f is a damaged saved plan/);
});
