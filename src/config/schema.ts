// The JSON Schema (schemas/xvbd-v1.schema.json), compiled once per process with ajv.
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv';

/** Where the schema file lives: <repo>/schemas, found from dist/src/config/ (or src/config/). */
export const SCHEMA_URL = new URL('../../../schemas/xvbd-v1.schema.json', import.meta.url);
export const SCHEMA_ID = 'https://xvbd.dev/schemas/xvbd-v1.schema.json';

export interface Validators {
  Domain: ValidateFunction;
  Policy: ValidateFunction;
  schema: Record<string, unknown>;
}

let compiled: Validators | undefined;

/** The compiled validators; the schema is read and compiled on the first call only. */
export function validators(): Validators {
  if (compiled) return compiled;
  const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Record<string, unknown>;
  const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, strictRequired: false, allowUnionTypes: true });
  // Our own annotation: the sentence to print when a `pattern` does not match.
  ajv.addKeyword({ keyword: 'x-patternMessage', schemaType: 'string' });
  ajv.addSchema(schema);
  const get = (def: string): ValidateFunction => {
    const v = ajv.getSchema(`${SCHEMA_ID}#/$defs/${def}`);
    if (!v) throw new Error(`schema has no $defs/${def}`);
    return v;
  };
  compiled = { Domain: get('Domain'), Policy: get('Policy'), schema };
  return compiled;
}

export type { ErrorObject };
