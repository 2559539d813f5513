// The build's precompiled validators (ajv standalone, src/config/gen-validators.ts) are what every
// process uses, and they judge exactly as the schema compiled at run time does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { schemaAjv, SCHEMA_URL, validators, KIND_DEFS } from '../../src/config/schema.js';

const docs: Record<string, unknown>[] = [
  { apiVersion: 'xvbd/v1', kind: 'Domain', name: 'web1', disks: [{ vdev: 'xvda', file: '/srv/a.img', mode: 'ro' }] },
  { apiVersion: 'xvbd/v1', kind: 'Domain', name: 'web 1', disks: [{ vdv: 'xvda', file: 'rel.img', mode: 'rx', options: { blockSize: 3 } }] },
  { apiVersion: 'xvbd/v1', kind: 'Domain', name: 'x'.repeat(200), disks: 7 },
  { apiVersion: 'xvbd/v1', kind: 'Policy', prune: 'yes', allowedRoots: ['/srv', 3], serve: 'sometimes', detachTimeout: '10 parsecs' },
  { apiVersion: 'xvbd/v1', kind: 'Policy', allowDataLoss: true },
];

test('the build precompiled the validators from the schema as it is now', () => {
  assert.equal(validators().precompiled, true, 'npm run build writes dist/src/config/validators.generated.cjs');
});

test('precompiled and run-time compiled validators give the same verdicts and the same errors', () => {
  const ajv = schemaAjv(JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Record<string, unknown>);
  const pre = validators();
  for (const doc of docs) {
    const kind = doc.kind as keyof typeof KIND_DEFS;
    const runtime = ajv.getSchema(KIND_DEFS[kind])!;
    const a = runtime(doc);
    const ra = JSON.stringify(runtime.errors ?? null);
    const b = pre[kind](doc);
    const rb = JSON.stringify(pre[kind].errors ?? null);
    assert.equal(b, a, JSON.stringify(doc));
    assert.equal(rb, ra, JSON.stringify(doc));
  }
});
