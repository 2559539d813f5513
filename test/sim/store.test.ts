// xenstored's permission rules for unprivileged domains (what simulated guests are), on the
// store directly: perm_for_conn, errno_from_parents, construct_node ownership, set_perms rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store, StoreError, WatchTable, type Caller } from '../../src/sim/store.js';
import type { XsPerm } from '../../src/xenstore/api.js';

const dom0: Caller = { domid: 0, privileged: true };
const g = (domid: number): Caller => ({ domid, privileged: false });
const B = (s: string) => Buffer.from(s);

function fresh(): Store {
  const s = new Store();
  s.domainExists = (d) => d === 0 || d === 1 || d === 2 || d === 3;
  const m = s.main;
  s.write(m, dom0, '/p/none', B('n'));
  s.setPerms(m, dom0, '/p/none', [{ domid: 0, perm: 'n' }]);
  s.write(m, dom0, '/p/ro1', B('r'));
  s.setPerms(m, dom0, '/p/ro1', [{ domid: 0, perm: 'n' }, { domid: 1, perm: 'r' }]);
  s.write(m, dom0, '/p/rw1', B('w'));
  s.setPerms(m, dom0, '/p/rw1', [{ domid: 0, perm: 'n' }, { domid: 1, perm: 'b' }]);
  s.write(m, dom0, '/p/own1', B('o'));
  s.setPerms(m, dom0, '/p/own1', [{ domid: 1, perm: 'n' }, { domid: 0, perm: 'r' }]);
  s.write(m, dom0, '/p/allread', B('a'));
  s.setPerms(m, dom0, '/p/allread', [{ domid: 0, perm: 'r' }]);
  s.write(m, dom0, '/p/wonly1', B('x'));
  s.setPerms(m, dom0, '/p/wonly1', [{ domid: 0, perm: 'n' }, { domid: 1, perm: 'w' }]);
  return s;
}

function errno(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof StoreError) return e.errno;
    throw e;
  }
}

test('read/write permissions for an unprivileged domain (table)', () => {
  const s = fresh();
  const m = s.main;
  // [caller, op, path, expected]
  const table: [Caller, 'read' | 'write' | 'rm' | 'dir', string, string][] = [
    [g(1), 'read', '/p/none', 'EACCES'],
    [g(1), 'read', '/p/ro1', 'ok'],
    [g(2), 'read', '/p/ro1', 'EACCES'],
    [g(1), 'write', '/p/ro1', 'EACCES'],
    [g(1), 'write', '/p/rw1', 'ok'],
    [g(1), 'read', '/p/wonly1', 'EACCES'],
    [g(1), 'write', '/p/wonly1', 'ok'],
    [g(1), 'read', '/p/own1', 'ok'],
    [g(1), 'write', '/p/own1', 'ok'],
    [g(2), 'read', '/p/allread', 'ok'],
    [g(2), 'write', '/p/allread', 'EACCES'],
    [dom0, 'read', '/p/none', 'ok'],
    // missing nodes: ENOENT only if the nearest existing ancestor allows it, else EACCES
    [g(1), 'read', '/p/ro1/missing', 'ENOENT'],
    [g(1), 'read', '/p/none/missing/deeper', 'EACCES'],
    [g(1), 'dir', '/p/none', 'EACCES'],
    [g(1), 'write', '/p/none/child', 'EACCES'],
    [g(1), 'write', '/p/ro1/child', 'EACCES'],
    [g(1), 'write', '/p/own1/child/deeper', 'ok'],
    [g(1), 'rm', '/p/ro1', 'EACCES'],
    [g(1), 'rm', '/p/own1/missing', 'ok'],
    [g(1), 'rm', '/p/none/missing', 'EACCES'],
    [dom0, 'rm', '/p/ro1/missing/deeper', 'ENOENT'],
  ];
  for (const [c, op, path, want] of table) {
    const got = errno(() => {
      if (op === 'read') s.read(m, c, path);
      else if (op === 'write') s.write(m, c, path, B('v'));
      else if (op === 'rm') s.rm(m, c, path);
      else s.directory(m, c, path);
    });
    assert.equal(got, want, `dom${c.domid} ${op} ${path}`);
  }
});

test('nodes a guest creates are its own, with the rest of the parent perms; dom0-created inherit as is', () => {
  const s = fresh();
  s.write(s.main, g(1), '/p/own1/a/b', B('v'));
  const want: XsPerm[] = [{ domid: 1, perm: 'n' }, { domid: 0, perm: 'r' }];
  assert.deepEqual(s.getPerms(s.main, dom0, '/p/own1/a'), want);
  assert.deepEqual(s.getPerms(s.main, dom0, '/p/own1/a/b'), want);
  s.write(s.main, g(1), '/p/rw1/x', B('v'));
  assert.deepEqual(s.getPerms(s.main, dom0, '/p/rw1/x'), [{ domid: 1, perm: 'n' }, { domid: 1, perm: 'b' }], 'owner becomes the creator (construct_node)');
  s.write(s.main, dom0, '/p/ro1/y', B('v'));
  assert.deepEqual(s.getPerms(s.main, dom0, '/p/ro1/y'), [{ domid: 0, perm: 'n' }, { domid: 1, perm: 'r' }]);
});

test('set_perms: owner or privileged only; unprivileged may not change the owner; owner must exist', () => {
  const s = fresh();
  const m = s.main;
  assert.equal(errno(() => s.setPerms(m, g(1), '/p/rw1', [{ domid: 0, perm: 'b' }])), 'EACCES', 'write access is not ownership');
  assert.equal(errno(() => s.setPerms(m, g(1), '/p/own1', [{ domid: 1, perm: 'r' }])), 'ok');
  assert.equal(errno(() => s.setPerms(m, g(1), '/p/own1', [{ domid: 2, perm: 'r' }])), 'EPERM');
  assert.equal(errno(() => s.setPerms(m, dom0, '/p/own1', [{ domid: 9, perm: 'r' }])), 'ENOENT');
  assert.equal(errno(() => s.setPerms(m, dom0, '/p/own1', [{ domid: 2, perm: 'r' }, { domid: 9, perm: 'b' }])), 'ok', 'non-owner entries may name absent domains');
  assert.equal(errno(() => s.read(m, g(9), '/p/own1')), 'ok', 'default perm r applies; the entry for an absent domain is ignored');
  assert.equal(errno(() => s.setPerms(m, dom0, '@releaseDomain', [{ domid: 0, perm: 'r' }])), 'ok', 'special nodes take perms');
  assert.deepEqual(s.nodes.get('@releaseDomain')?.perms, [{ domid: 0, perm: 'r' }]);
  assert.equal(errno(() => s.getPerms(m, dom0, '@releaseDomain')), 'EINVAL', 'GET_PERMS of a special node (recorded)');
});

test('watch events reach an unprivileged watcher only for nodes it may read', () => {
  const s = fresh();
  const got: string[] = [];
  s.watchers.add({
    caller: g(2),
    watches: new WatchTable().set('/p\0t', { node: '/p', token: 't', relativeTo: undefined }),
    deliver: (p) => got.push(p),
  });
  s.write(s.main, dom0, '/p/allread', B('1'));
  s.write(s.main, dom0, '/p/ro1', B('2'));
  s.rm(s.main, dom0, '/p/ro1');
  s.rm(s.main, dom0, '/p/allread');
  assert.deepEqual(got, ['/p/allread', '/p/allread']);
});

test('relative paths resolve under the caller\'s home; path limits as xenstored', () => {
  const s = fresh();
  assert.equal(s.canonical(g(3), 'device/vbd'), '/local/domain/3/device/vbd');
  const table: [string, string][] = [
    ['/a b', 'EINVAL'],
    ['/a//b', 'EINVAL'],
    ['/a/', 'EINVAL'],
    [`/${'a'.repeat(2047)}`, 'ok'],
    [`/${'a'.repeat(2048)}`, 'EINVAL'],
    [`/local/domain/1/${'a'.repeat(2048)}`, 'ok'],
    [`/local/domain/1/${'a'.repeat(2049)}`, 'EINVAL'],
    ['@introduceDomain', 'EINVAL'],
  ];
  for (const [p, want] of table) assert.equal(errno(() => s.canonical(dom0, p)), want, p.slice(0, 40));
});
