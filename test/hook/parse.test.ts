import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HookError, parseHookInvocation, parseXenbusPath } from '../../src/hook/hook.js';

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
