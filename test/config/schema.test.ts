// The JSON Schema as an editor uses it: valid 2020-12, the top-level schema accepts the
// examples and rejects what it should, its own `examples` are valid, and the YAML blocks of
// docs/config.md that are whole documents pass `xvbd validate`'s checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parseAllDocuments } from 'yaml';
import { checkConfigTexts, errorHeadline } from '../../src/config/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const schema = JSON.parse(readFileSync(join(ROOT, 'schemas/xvbd-v1.schema.json'), 'utf8')) as Record<string, unknown>;

// An editor's validator: no knowledge of our annotation keyword beyond ignoring it.
function editorAjv() {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  return ajv.compile(schema);
}

test('the schema is a valid JSON Schema 2020-12 with a description on every property', () => {
  const ajv = new Ajv2020({ strict: false });
  assert.equal(ajv.validateSchema(schema), true, JSON.stringify(ajv.errors));
  const defs = schema.$defs as Record<string, { properties?: Record<string, { description?: string; $ref?: string }> }>;
  for (const [name, def] of Object.entries(defs)) {
    for (const [prop, s] of Object.entries(def.properties ?? {})) {
      assert.ok(s.description || s.$ref, `$defs/${name}/properties/${prop} has a description`);
    }
  }
});

test('top-level schema: the host example documents are valid, broken ones are not', () => {
  const validate = editorAjv();
  const dir = join(ROOT, 'examples/host');
  let n = 0;
  for (const f of readdirSync(dir)) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      assert.ok(validate(doc.toJS()), `${f}: ${JSON.stringify(validate.errors)}`);
      n++;
    }
  }
  assert.equal(n, 5);
  const bad: unknown[] = [
    { apiVersion: 'xvbd/v1', kind: 'Domain', name: 'w' },
    { apiVersion: 'xvbd/v1', kind: 'Domain', name: 'w', disks: [{ vdev: 'xvda' }] },
    { apiVersion: 'xvbd/v1', kind: 'Domain', name: 'w', disks: [{ vdev: 'xvda0', file: '/a' }] },
    { apiVersion: 'xvbd/v1', kind: 'Domain', name: 'w', disks: [{ vdev: 'xvda', file: '/a', device: '/dev/b' }] },
    { apiVersion: 'xvbd/v1', kind: 'Domain', name: 'w', disks: [{ vdev: 'xvda', file: 'a' }] },
    { apiVersion: 'xvbd/v1', kind: 'Policy', serve: 'never' },
    { apiVersion: 'xvbd/v1', kind: 'Policy', detachTimeout: '10' },
    { apiVersion: 'xvbd/v2', kind: 'Policy' },
    { apiVersion: 'xvbd/v1', kind: 'Nope' },
    { kind: 'Policy' },
  ];
  for (const b of bad) assert.equal(validate(b), false, JSON.stringify(b));
});

test("the schema's own examples are valid", () => {
  const ajv = new Ajv2020({ strict: false });
  ajv.addSchema(schema);
  const id = schema.$id as string;
  const defs = schema.$defs as Record<string, { examples?: unknown[] }>;
  let n = 0;
  for (const [name, def] of Object.entries(defs)) {
    const v = ajv.getSchema(`${id}#/$defs/${name}`)!;
    for (const ex of def.examples ?? []) {
      assert.ok(v(ex), `$defs/${name} example ${JSON.stringify(ex)}: ${JSON.stringify(v.errors)}`);
      n++;
    }
  }
  assert.ok(n >= 6);
});

test('the YAML examples of docs/config.md that are whole documents are valid', () => {
  const md = readFileSync(join(ROOT, 'docs/config.md'), 'utf8');
  const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^apiVersion:/m.test(b));
  assert.ok(blocks.length >= 2);
  const r = checkConfigTexts(blocks.map((text, i) => ({ file: `block${i}.yaml`, text })));
  assert.deepEqual(r.errors.map(errorHeadline), []);
});
