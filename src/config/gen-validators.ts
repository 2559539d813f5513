// Build step (`npm run build`, after tsc): the schema's validators as ajv standalone code, written next
// to the compiled schema.js as validators.generated.cjs with the hash of the schema they were made from
// (schema.ts uses them only while that hash matches the schema file).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { GENERATED_FILE, KIND_DEFS, SCHEMA_URL, schemaAjv, schemaHash } from './schema.js';

const text = readFileSync(SCHEMA_URL, 'utf8');
const ajv = schemaAjv(JSON.parse(text) as Record<string, unknown>, { standalone: true });
const code = standaloneCode.default(ajv, { ...KIND_DEFS });
const out = fileURLToPath(new URL(`./${GENERATED_FILE}`, import.meta.url));
writeFileSync(`${out}.tmp`, `${code}\nexports.schemaHash = ${JSON.stringify(schemaHash(text))};\n`);
renameSync(`${out}.tmp`, out);
