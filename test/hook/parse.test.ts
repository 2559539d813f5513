import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HookError, matchDesired, parseHookInvocation, parseXenbusPath, type BackendFacts } from '../../src/apply/hook.js';
import { DEFAULT_POLICY, type DesiredState } from '../../src/model/desired.js';

test('XENBUS_PATH: only backend/vbd/<domid>/<devid>, strictly', () => {
  assert.deepEqual(parseXenbusPath('backend/vbd/5/51712'), {
    backendDomid: 0,
    frontendDomid: 5,
    devid: 51712,
    path: '/local/domain/0/backend/vbd/5/51712',
  });
  assert.equal(parseXenbusPath('backend/vbd/0/768', 3).path, '/local/domain/3/backend/vbd/0/768');
  const bad: [string, RegExp][] = [
    ['', /must begin with backend\/vbd\//],
    ['/local/domain/0/backend/vbd/5/51712', /must begin with/],
    ['backend/vif/5/0', /must begin with/],
    ['backend/vbd/5', /expected backend\/vbd\/DOMID\/DEVID/],
    ['backend/vbd/5/51712/', /expected/],
    ['backend/vbd/5/51712/x', /expected/],
    ['backend/vbd/05/51712', /not a decimal number/],
    ['backend/vbd/5/051712', /not a decimal number/],
    ['backend/vbd/+5/51712', /not a decimal number/],
    ['backend/vbd/ 5/51712', /not a decimal number/],
    ['backend/vbd/5/51712 ', /not a decimal number/],
    ['backend/vbd/-1/51712', /not a decimal number/],
    ['backend/vbd/5/0x10', /not a decimal number/],
    ['backend/vbd/32752/51712', /too large \(limit 32751\)/],
    ['backend/vbd/5/4294967296', /too large/],
    ['backend/vbd/5/99999999999', /not a decimal number/],
    ['backend/vbd/../51712', /not a decimal number/],
    ['backend/vbd//51712', /not a decimal number/],
  ];
  for (const [p, re] of bad) assert.throws(() => parseXenbusPath(p), (e: unknown) => e instanceof HookError && re.test(e.message), p);
});

test('hook invocation: add|remove, XENBUS_PATH from env or argument, both must agree', () => {
  assert.equal(parseHookInvocation(['add'], { XENBUS_PATH: 'backend/vbd/1/768' }).op, 'add');
  assert.equal(parseHookInvocation(['remove', 'XENBUS_PATH=backend/vbd/1/768'], {}).target.devid, 768);
  assert.throws(() => parseHookInvocation([], {}), /usage/);
  assert.throws(() => parseHookInvocation(['online'], { XENBUS_PATH: 'backend/vbd/1/768' }), /bad command/);
  assert.throws(() => parseHookInvocation(['add'], {}), /XENBUS_PATH is not set/);
  assert.throws(() => parseHookInvocation(['add', 'backend/vbd/1/768'], {}), /second argument/);
  assert.throws(
    () => parseHookInvocation(['add', 'XENBUS_PATH=backend/vbd/1/768'], { XENBUS_PATH: 'backend/vbd/2/768' }),
    /different values/,
  );
  assert.throws(() => parseHookInvocation(['add', 'x', 'y'], {}), /usage/);
});

function desired(serve: 'attach' | 'hook' | 'both' = 'both'): DesiredState {
  const at = { file: 'a.yaml', line: 1, column: 1 };
  return {
    policy: { ...DEFAULT_POLICY, serve },
    domains: [
      {
        name: 'web1',
        at,
        disks: [
          {
            vdev: 'xvda',
            devid: 51712,
            source: '/srv/web1.img',
            sourceKind: 'file',
            mode: 'rw',
            options: { directIo: false, discard: false },
            backendDomid: 0,
            at,
          },
        ],
      },
    ],
  };
}

test('hook mapping: backend facts must match a desired disk exactly', () => {
  const t = parseXenbusPath('backend/vbd/3/51712');
  const ok: BackendFacts = { params: '/srv/web1.img', mode: 'w', frontendId: 3, dev: 'xvda', domainName: 'web1' };
  const vdevToDevid = (v: string) => {
    const m = /^xvd([a-z])$/.exec(v);
    if (!m) throw new Error('bad');
    return 51712 + (m[1]!.charCodeAt(0) - 97) * 16;
  };
  assert.equal(matchDesired(desired(), t, ok, vdevToDevid).disk.vdev, 'xvda');
  const bad: [Partial<BackendFacts> | 'attach' | 'devid', RegExp][] = [
    [{ domainName: 'web2' }, /domain web2 \(3\) is not in the desired state/],
    [{ params: '/srv/other.img' }, /params \/srv\/other.img is not the desired source/],
    [{ mode: 'r' }, /mode r differs from the desired rw/],
    [{ dev: 'xvdb' }, /dev xvdb is not devid 51712/],
    [{ dev: 'zzz' }, /dev zzz is not devid/],
    ['attach', /serve: attach/],
    ['devid', /no disk with devid 51728/],
  ];
  for (const [change, re] of bad) {
    if (change === 'attach') assert.throws(() => matchDesired(desired('attach'), t, ok, vdevToDevid), re);
    else if (change === 'devid') assert.throws(() => matchDesired(desired(), parseXenbusPath('backend/vbd/3/51728'), ok, vdevToDevid), re);
    else assert.throws(() => matchDesired(desired(), t, { ...ok, ...change }, vdevToDevid), re, JSON.stringify(change));
  }
  assert.throws(() => matchDesired(desired(), parseXenbusPath('backend/vbd/3/51712', 1), ok, vdevToDevid), /from backend domain 0, not 1/);
});
