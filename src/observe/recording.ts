// `xvbd status --json` as a recording: the versioned document (schemas/xvbd-status-v1.schema.json) a
// host prints, and reading one back so that `xvbd plan --observed FILE` plans against it elsewhere (CI).
import { readFile, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import type { DesiredState } from '../model/desired.js';
import type { DomainObs, ObservedState } from '../model/observed.js';
import type { Plan } from '../model/plan.js';

/** Where the status schema lives: <repo>/schemas, found from dist/src/observe/ (or src/observe/). */
export const STATUS_SCHEMA_URL = new URL('../../../schemas/xvbd-status-v1.schema.json', import.meta.url);
export const STATUS_API_VERSION = 'xvbd/v1';
export const STATUS_KIND = 'Status';
/** A recording is a few megabytes at 1,000 disks; refuse anything far beyond. */
export const MAX_RECORDING_BYTES = 256 << 20;

export interface StatusDocument {
  apiVersion: typeof STATUS_API_VERSION;
  kind: typeof STATUS_KIND;
  hostName: string;
  generatedAt: string;
  configDir: string;
  disks: Plan['disks'];
  findings: Plan['findings'];
  host: { domains: DomainObs[]; backends: number; loops: number; xvbdLoops: number };
  observed: ObservedState;
  /** Only when the config is invalid or missing: then disks and findings are the observed host's alone. */
  config?: { valid: false; missing: boolean; errors: unknown[] };
  /** The keepers of the run dir that answered (status only; absent from older recordings). */
  keepers?: KeeperStatus[];
}

export interface KeeperStatus {
  slot: 'a' | 'b';
  pid: number;
  fds: number;
  xenstore?: string[];
  xsConnected?: boolean;
  xenstoreMismatch?: boolean;
}

/** The document `xvbd status --json` prints. */
export function statusDocument(o: { hostName: string; configDir: string; plan: Plan; observed: ObservedState; now?: Date; config?: StatusDocument['config']; keepers?: KeeperStatus[] }): StatusDocument {
  const { plan, observed } = o;
  return {
    apiVersion: STATUS_API_VERSION,
    kind: STATUS_KIND,
    hostName: o.hostName.toLowerCase(),
    generatedAt: (o.now ?? new Date()).toISOString(),
    configDir: o.configDir,
    disks: plan.disks,
    findings: plan.findings,
    host: {
      domains: observed.domains,
      backends: observed.backends.length,
      loops: observed.loops.length,
      xvbdLoops: observed.loops.filter((l) => l.ours).length,
    },
    observed,
    ...(o.config ? { config: o.config } : {}),
    ...(o.keepers ? { keepers: o.keepers } : {}),
  };
}

let validator: ValidateFunction | undefined;

/** The status schema's validator (compiled on first use: only `plan --observed` and tests read recordings). */
export function statusValidator(): ValidateFunction {
  if (!validator) {
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    validator = ajv.compile(JSON.parse(readFileSync(STATUS_SCHEMA_URL, 'utf8')) as Record<string, unknown>);
  }
  return validator;
}

export class RecordingError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'RecordingError';
  }
}

/** Reads and checks a recorded `xvbd status --json`; throws RecordingError with what is wrong. */
export async function readRecording(file: string): Promise<StatusDocument> {
  let text: string;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new RecordingError(file, 'not a regular file');
    if (st.size > MAX_RECORDING_BYTES) throw new RecordingError(file, `larger than ${MAX_RECORDING_BYTES >> 20} MiB; a recording of \`xvbd status --json\` is a few megabytes`);
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof RecordingError) throw err;
    throw new RecordingError(file, `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new RecordingError(file, `not JSON (${(err as Error).message})`);
  }
  const o = doc as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new RecordingError(file, 'not an `xvbd status --json` document (not a JSON object)');
  if (o.kind !== STATUS_KIND || o.apiVersion !== STATUS_API_VERSION) {
    const old = Array.isArray(o.disks) && Array.isArray(o.findings) && o.observed === undefined;
    throw new RecordingError(
      file,
      old
        ? 'recorded by an xvbd from before status documents had `apiVersion` and `observed`; record it again with `xvbd status --json`'
        : `not an \`xvbd status --json\` document (it needs \`apiVersion: ${STATUS_API_VERSION}\` and \`kind: ${STATUS_KIND}\`)`,
    );
  }
  const v = statusValidator();
  if (!v(doc)) {
    const errs = (v.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is not valid'}`);
    const more = (v.errors?.length ?? 0) > 5 ? `; and ${(v.errors?.length ?? 0) - 5} more` : '';
    throw new RecordingError(file, `does not match schemas/xvbd-status-v1.schema.json: ${errs.join('; ')}${more}`);
  }
  return doc as StatusDocument;
}

/** The sources the desired state names that the recording did not look at (it was made before the config named them). */
export function unobservedSources(desired: DesiredState, observed: ObservedState): string[] {
  const want = new Set(desired.domains.flatMap((d) => d.disks.map((k) => k.source)));
  return [...want].filter((s) => !Object.hasOwn(observed.sources, s)).sort();
}
