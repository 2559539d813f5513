// The status document's schema (schemas/xvbd-status-v1.schema.json): a valid JSON Schema 2020-12
// with a description on every property, which accepts what statusDocument() builds and rejects
// documents with a missing, mistyped or unknown field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { STATUS_SCHEMA_URL, statusDocument, statusValidator, unobservedSources } from '../../src/observe/recording.js';
import type { ObservedState } from '../../src/model/observed.js';
import type { Plan } from '../../src/model/plan.js';
import { DEFAULT_POLICY } from '../../src/model/desired.js';

const schema = JSON.parse(readFileSync(STATUS_SCHEMA_URL, 'utf8')) as { properties: Record<string, { description?: string }>; $defs: Record<string, { properties?: Record<string, { description?: string }> }> };

test('the status schema is valid JSON Schema 2020-12 with a description on every property', () => {
  const ajv = new Ajv2020({ strict: true });
  assert.equal(ajv.validateSchema(schema), true, JSON.stringify(ajv.errors));
  for (const [name, s] of Object.entries(schema.properties)) assert.ok(s.description, name);
  for (const [def, d] of Object.entries(schema.$defs)) for (const [name, s] of Object.entries(d.properties ?? {})) assert.ok(s.description, `${def}.${name}`);
});

const observed: ObservedState = {
  takenAt: 12.5,
  domains: [{ domid: 0, name: 'Domain-0' }, { domid: 3, name: 'web' }],
  backends: [
    {
      backendDomid: 0,
      frontendDomid: 3,
      devid: 51712,
      path: '/local/domain/0/backend/vbd/3/51712',
      params: '/srv/web.img',
      mode: 'w',
      physicalDevice: '7:3',
      diskseq: '41',
      sourceInode: { dev: '2049', ino: '131' },
      state: 4,
      online: true,
      ours: true,
      frontendState: 4,
      kernelHeld: true,
      malformed: ['frontend-id'],
    },
  ],
  loops: [
    {
      name: 'loop3', number: 3, major: 7, minor: 3, diskseq: '41', backing: { dev: '2049', ino: '131' }, backingPath: '/srv/web.img', backingDeleted: false,
      readOnly: false, autoclear: true, directIo: false, blockSize: 512, offset: '0', sizeLimit: '0', ours: true, mounted: false, holders: [], heldByUs: false, keptBy: ['keeper-a', 'keeper-b'],
    },
  ],
  sources: { '/srv/web.img': { path: '/srv/web.img', exists: true, kind: 'file', inode: { dev: '2049', ino: '131' }, mounted: false } },
};
const plan: Plan = {
  actions: [],
  findings: [{ kind: 'domain-not-running', severity: 'info', message: 'db is not running', fix: 'start it', domain: 'db', at: { file: 'db.yaml', line: 3, column: 7 } }],
  disks: [
    { domain: 'web', domid: 3, vdev: 'xvda', devid: 51712, source: '/srv/web.img', mode: 'rw', sync: 'synced', health: 'healthy', sharedBy: 1, backend: { path: '/local/domain/0/backend/vbd/3/51712', backendDomid: 0, frontendDomid: 3, devid: 51712, diskseq: '41' }, loop: { name: 'loop3', diskseq: '41', backing: { dev: '2049', ino: '131' } }, backendState: 4, frontendState: 4 },
  ],
};

test('statusDocument() is valid; a missing, mistyped or unknown field is not', () => {
  const doc = statusDocument({ hostName: 'Xen-A1', configDir: '/etc/xvbd', plan, observed, now: new Date(Date.UTC(2026, 11, 4, 18, 30)) });
  assert.equal(doc.hostName, 'xen-a1');
  assert.equal(doc.generatedAt, '2026-12-04T18:30:00.000Z');
  assert.deepEqual(doc.host, { domains: observed.domains, backends: 1, loops: 1, xvbdLoops: 1 });
  const v = statusValidator();
  assert.ok(v(JSON.parse(JSON.stringify(doc))), JSON.stringify(v.errors));
  const broken: [string, (d: Record<string, any>) => void][] = [
    ['no observed', (d) => delete d.observed],
    ['no hostName', (d) => delete d.hostName],
    ['kind', (d) => (d.kind = 'Plan')],
    ['diskseq a number', (d) => (d.observed.loops[0].diskseq = 41)],
    ['unknown sync', (d) => (d.disks[0].sync = 'fine')],
    ['unknown finding kind', (d) => (d.findings[0].kind = 'gremlins')],
    ['an unknown field in a backend', (d) => (d.observed.backends[0].colour = 'red')],
    ['generatedAt not ISO', (d) => (d.generatedAt = 'yesterday')],
    ['a source without exists', (d) => delete d.observed.sources['/srv/web.img'].exists],
  ];
  // an invalid config: the host still recorded, the trouble under `config`
  const bad = statusDocument({ hostName: 'xen-a1', configDir: '/etc/xvbd', plan, observed, config: { valid: false, missing: true, errors: [] } });
  assert.ok(v(JSON.parse(JSON.stringify(bad))), JSON.stringify(v.errors));
  broken.push(['config.valid true', (d) => (d.config = { valid: true, missing: false, errors: [] })]);
  for (const [what, f] of broken) {
    const d = JSON.parse(JSON.stringify(doc)) as Record<string, any>;
    f(d);
    assert.equal(v(d), false, what);
  }
});

test('unobservedSources: the desired sources a recording did not look at', () => {
  const disk = (source: string) => ({ vdev: 'xvda', devid: 51712, source, sourceKind: 'file' as const, mode: 'rw' as const, options: { directIo: false, discard: false }, backendDomid: 0, at: { file: 'a', line: 1, column: 1 } });
  const desired = { domains: [{ name: 'web', disks: [disk('/srv/web.img'), { ...disk('/srv/new.img'), vdev: 'xvdb', devid: 51728 }], at: { file: 'a', line: 1, column: 1 } }], policy: DEFAULT_POLICY };
  assert.deepEqual(unobservedSources(desired, observed), ['/srv/new.img']);
});
