// The pieces of checkConfigTexts' rules across documents, each alone: the Policy, its allowed roots,
// a domain, a vdev, the wording of a source used twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Checker, checkDomain, checkHeader, checkVdev, parseDocuments, readAllowedRoots, readPolicy, sourceConflictMessage, type DomainsCtx } from '../../src/config/load.js';
import { DEFAULT_POLICY } from '../../src/model/desired.js';

function parse(text: string) {
  const ck = new Checker();
  const parsed = parseDocuments([{ file: 't.yaml', text }], ck);
  assert.deepEqual(ck.sorted(), [], 'the fixture parses');
  return { ck, ...parsed };
}

const messages = (ck: Checker) => ck.sorted().map((e) => `${e.line}:${e.column} ${e.message}`);

test('readPolicy: no Policy is the default one', () => {
  const { ck } = parse('');
  const r = readPolicy([], ck);
  assert.deepEqual(r.policy, DEFAULT_POLICY);
  assert.equal(r.rootsLoc, undefined);
});

test('readPolicy: the first Policy applies, a second is an error naming the first (and the host in a fleet)', () => {
  const { ck, policyDocs } = parse('apiVersion: xvbd/v1\nkind: Policy\nprune: true\n---\napiVersion: xvbd/v1\nkind: Policy\nprune: false\n');
  const r = readPolicy(policyDocs, ck, 'h1');
  assert.equal(r.policy.prune, true);
  assert.deepEqual(messages(ck), ['6:7 a second Policy for host `h1`; a host has at most one Policy whose `hosts` selects it, and the first is at t.yaml:2:7']);
});

test('readPolicy: detachTimeout over 1h is an error and keeps the default; defaults are read (table)', () => {
  const { ck, policyDocs } = parse('apiVersion: xvbd/v1\nkind: Policy\ndetachTimeout: 90m\ndefaults:\n  mode: ro\n  backendDomain: 3\n');
  const r = readPolicy(policyDocs, ck);
  assert.equal(r.policy.detachTimeoutMs, DEFAULT_POLICY.detachTimeoutMs);
  assert.deepEqual([r.policy.defaults.mode, r.policy.defaults.backendDomid], ['ro', 3]);
  assert.deepEqual(messages(ck), ['3:16 `detachTimeout` 90m is longer than the maximum, 1h']);
});

test('readAllowedRoots: all of them, or none once one is broken', () => {
  const { ck, policyDocs } = parse('apiVersion: xvbd/v1\nkind: Policy\nallowedRoots: [/srv/a, /srv/b]\n');
  assert.deepEqual(readAllowedRoots(policyDocs[0]!, ['/srv/a', '/srv/b'], ck), ['/srv/a', '/srv/b']);
  assert.deepEqual(readAllowedRoots(policyDocs[0]!, ['/srv/a', 'rel'], ck), []);
  assert.equal(ck.sorted().length, 1);
  assert.match(ck.sorted()[0]!.message, /^allowed root `rel` /);
  // a root that is no string is no error here (the schema reports it) but still drops them all
  assert.deepEqual(readAllowedRoots(policyDocs[0]!, ['/srv/a', 3], new Checker()), []);
  const r = readPolicy(policyDocs, new Checker());
  assert.deepEqual([r.rootsLoc?.line, r.rootsLoc?.column], [3, 1]);
});

test('checkVdev: a name or a number; two names of one devid are an error (table)', () => {
  const { domainDocs } = parse('apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - {vdev: xvda, file: /a}\n  - {vdev: 51712, file: /b}\n');
  const d = domainDocs[0]!;
  const ck = new Checker();
  const byDevid = new Map<number, { vdev: string; loc: never }>();
  assert.deepEqual(checkVdev(d, 'XVDA', '/disks/0', 'web', byDevid, ck), { vdev: 'xvda', devid: 51712 });
  assert.deepEqual(checkVdev(d, 51712, '/disks/1', 'web', byDevid, ck), { vdev: '51712', devid: 51712 });
  assert.deepEqual(checkVdev(d, true, '/disks/1', 'web', byDevid, ck), {});
  assert.deepEqual(checkVdev(d, 'xvd1', '/disks/1', 'web', byDevid, ck), {});
  const m = messages(ck);
  assert.equal(m.length, 2);
  assert.equal(m[0], '6:12 vdev `51712` is devid 51712, the same device as `xvda` at t.yaml:5:12 in domain `web`');
});

function ctxOf(ck: Checker): DomainsCtx {
  return { policy: structuredClone(DEFAULT_POLICY), rootsLoc: undefined, ck, byName: new Map(), sources: new Map() };
}

test('checkDomain: a name twice in one view, disks counted also when broken, uses recorded', () => {
  const { domainDocs } = parse(
    'apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks:\n  - {vdev: xvda, file: /srv/web.img}\n  - {vdev: xvdb, file: rel.img}\n---\napiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks: []\n',
  );
  const ck = new Checker();
  const ctx = ctxOf(ck);
  const a = checkDomain(domainDocs[0]!, ctx);
  const b = checkDomain(domainDocs[1]!, ctx);
  assert.deepEqual([a.diskCount, a.spec.disks.map((k) => k.vdev), b.diskCount], [2, ['xvda'], 0]);
  assert.deepEqual([...ctx.sources.keys()], ['/srv/web.img']);
  const m = messages(ck);
  assert.equal(m.length, 2);
  assert.match(m[0]!, /^6:\d+ source path `rel.img` /);
  assert.equal(m[1], '10:7 domain `web` is defined twice; the first definition is at t.yaml:3:7');
});

test('sourceConflictMessage: worded by which side writes (table)', () => {
  const other = (mode: 'ro' | 'rw') => ({ domain: 'db', vdev: 'xvda', mode, at: { file: 't.yaml', line: 4, column: 9 } });
  const who = 'domain `db` vdev `xvda` at t.yaml:4:9';
  const cases: ['ro' | 'rw', 'ro' | 'rw', string][] = [
    ['rw', 'rw', `source \`/s\` is already used read-write by ${who}; a read-write source can back only one disk`],
    ['rw', 'ro', `source \`/s\` is used read-write here but read-only by ${who}; make both read-only or give each its own image`],
    ['ro', 'rw', `source \`/s\` is used read-only here but read-write by ${who}; make both read-only or give each its own image`],
  ];
  for (const [here, there, msg] of cases) assert.equal(sourceConflictMessage('/s', here, other(there)), msg, `${here}/${there}`);
});

test('checkHeader: apiVersion wrong or missing is an error yet the document is read; kind decides (table)', () => {
  // a broken header does not parse cleanly: each case is the good document with other values
  const { domainDocs } = parse('apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks: []\n');
  const good = domainDocs[0]!;
  const root = { file: 't.yaml', line: 1, column: 1 };
  const cases: [Record<string, unknown>, string | undefined, RegExp[]][] = [
    [{ apiVersion: 'xvbd/v1', kind: 'Domain' }, 'Domain', []],
    [{ kind: 'Policy' }, 'Policy', [/has no `apiVersion`/]],
    [{ apiVersion: 'v0', kind: 'Host' }, 'Host', [/unsupported apiVersion `v0`/]],
    [{ apiVersion: 'xvbd/v1' }, undefined, [/has no `kind`/]],
    [{ apiVersion: 'xvbd/v1', kind: 'Domian' }, undefined, [/unknown kind `Domian`; did you mean `Domain`\?/]],
    [{ apiVersion: 'xvbd/v1', kind: 3 }, undefined, [/`kind` must be `Domain` or `Policy`, not the number 3/]],
  ];
  for (const [js, kind, errs] of cases) {
    const ck = new Checker();
    assert.equal(checkHeader({ ...good, js: js as never }, root, ck), kind, JSON.stringify(js));
    const got = ck.sorted().map((e) => e.message);
    assert.equal(got.length, errs.length, JSON.stringify(js));
    errs.forEach((re, i) => assert.match(got[i]!, re));
  }
});
