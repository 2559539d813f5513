// The JSON Schema (schemas/xvbd-v1.schema.json) as validators. `npm run build` compiles it ahead of time
// into dist/src/config/validators.generated.cjs (gen-validators.ts: ajv's standalone code), so that a
// process that loads a config (the hook server at a domain's start, every CLI command) does not compile
// it; the generated file records the schema's hash and is used only while it matches the schema file.
// Otherwise (a source checkout run without a build, a schema edited since) it is compiled here, once.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';

/** Where the schema file lives: <repo>/schemas, found from dist/src/config/ (or src/config/). */
export const SCHEMA_URL = new URL('../../../schemas/xvbd-v1.schema.json', import.meta.url);
export const SCHEMA_ID = 'https://xvbd.dev/schemas/xvbd-v1.schema.json';
/** The definitions a document is validated against, by kind. */
export const KIND_DEFS = { Domain: `${SCHEMA_ID}#/$defs/Domain`, Policy: `${SCHEMA_ID}#/$defs/Policy`, Host: `${SCHEMA_ID}#/$defs/Host` } as const;
export const GENERATED_FILE = 'validators.generated.cjs';

export interface Validators {
  Domain: ValidateFunction;
  Policy: ValidateFunction;
  Host: ValidateFunction;
  schema: Record<string, unknown>;
  /** Whether they came precompiled from the build. */
  precompiled: boolean;
}

let compiled: Validators | undefined;

export function schemaHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The ajv instance with the schema, as both the build and the fallback compile it. */
export function schemaAjv(schema: Record<string, unknown>, opts: { standalone?: boolean } = {}): Ajv2020 {
  const ajv = new Ajv2020({
    allErrors: true,
    verbose: true,
    strict: true,
    strictRequired: false,
    allowUnionTypes: true,
    ...(opts.standalone ? { code: { source: true } } : {}),
  });
  // Our own annotation: the sentence to print when a `pattern` does not match.
  ajv.addKeyword({ keyword: 'x-patternMessage', schemaType: 'string' });
  ajv.addSchema(schema);
  return ajv;
}

/** The build's validators, if they were made from this very schema text. */
function precompiledFor(hash: string): { Domain: ValidateFunction; Policy: ValidateFunction; Host: ValidateFunction } | undefined {
  try {
    const m = createRequire(import.meta.url)(`./${GENERATED_FILE}`) as { schemaHash?: string; Domain?: ValidateFunction; Policy?: ValidateFunction; Host?: ValidateFunction };
    if (m.schemaHash === hash && typeof m.Domain === 'function' && typeof m.Policy === 'function' && typeof m.Host === 'function') {
      return { Domain: m.Domain, Policy: m.Policy, Host: m.Host };
    }
  } catch {
    // not built (tests run from a fresh tsc, a source tree): compile below
  }
  return undefined;
}

/** The validators; the schema is read (and compiled when no matching precompiled ones exist) on the first call only. */
export function validators(): Validators {
  if (compiled) return compiled;
  const text = readFileSync(SCHEMA_URL, 'utf8');
  const schema = JSON.parse(text) as Record<string, unknown>;
  const pre = precompiledFor(schemaHash(text));
  if (pre) {
    compiled = { ...pre, schema, precompiled: true };
    return compiled;
  }
  const ajv = schemaAjv(schema);
  const get = (kind: keyof typeof KIND_DEFS): ValidateFunction => {
    const v = ajv.getSchema(KIND_DEFS[kind]);
    if (!v) throw new Error(`schema has no ${KIND_DEFS[kind]}`);
    return v;
  };
  compiled = { Domain: get('Domain'), Policy: get('Policy'), Host: get('Host'), schema, precompiled: false };
  return compiled;
}

export type { ErrorObject };
