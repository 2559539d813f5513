// Loading a config directory: YAML (with positions) -> JSON Schema (ajv) -> semantic checks -> DesiredState.
// Every error of every file is collected; a broken file or document does not stop the others.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultHostName } from '../host/env.js';
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  type Document,
  type Node as YamlNode,
  type YAMLError,
  visit,
} from 'yaml';
import type { ErrorObject } from 'ajv';
import {
  DEFAULT_POLICY,
  type DesiredState,
  type DiskMode,
  type DiskOptions,
  type DiskSpec,
  type DomainSpec,
  type HostSpec,
  type Policy,
  type ServeMode,
  type SourceKind,
  type SourceLocation,
} from '../model/desired.js';
import { errorHeadline, type ConfigError, type RelatedLocation } from './errors.js';
import { isUnder, pathProblem } from './paths.js';
import { validators } from './schema.js';
import { suggest } from './suggest.js';
import { parseVdev, VdevError } from './vdev.js';

export const API_VERSION = 'xvbd/v1';
export const KINDS = ['Domain', 'Policy', 'Host'] as const;
type Kind = (typeof KINDS)[number];
/** Files larger than this are refused (a config file is a few kilobytes). */
export const MAX_FILE_BYTES = 1 << 20;

export interface ConfigFileText {
  /** The path to print in errors and positions (e.g. `dir/web.yaml`). */
  file: string;
  text: string;
}

export interface ConfigCheck {
  desired?: DesiredState;
  errors: ConfigError[];
  files: string[];
  /** Domains and disks found (also when there are errors: what could be read). */
  domains: number;
  disks: number;
  /** In a fleet directory: the host whose view this is (also in `desired.host`). */
  host?: HostSpec;
  /** In a fleet directory: every host it declares. */
  hosts?: HostSpec[];
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

interface Loc extends SourceLocation {
  sourceLine?: string;
}

/** One parsed file: its lines (for excerpts) and how to turn offsets into positions. */
class FileCtx {
  readonly lines: string[];
  constructor(
    readonly file: string,
    readonly index: number,
    text: string,
    readonly lc: LineCounter,
  ) {
    this.lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  }
  at(offset: number): Loc {
    const { line, col } = this.lc.linePos(offset);
    return { file: this.file, line, column: col, sourceLine: this.lines[line - 1] };
  }
}

export interface DocCtx {
  fc: FileCtx;
  doc: Document.Parsed;
  js: JsonObject;
}

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'empty';
  if (typeof v === 'string') return v.length > 40 ? 'a string' : `the string \`${v}\``;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return `\`${v}\``;
  if (Array.isArray(v)) return 'a list';
  return 'a mapping';
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: '`true` or `false`',
  array: 'a list',
  object: 'a mapping',
  null: 'empty',
};

function orList(items: string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

const fmtValue = (v: unknown) => (typeof v === 'string' ? `\`${v}\`` : String(v));

/** Resolves a JSON pointer in the YAML AST: the value node and, for map entries, the key node. */
function findNode(doc: Document.Parsed, pointer: string): { node?: YamlNode; key?: YamlNode } {
  const segs = pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let node: unknown = doc.contents;
  let key: YamlNode | undefined;
  for (const seg of segs) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg);
      if (!pair) return { node: node as YamlNode };
      key = pair.key as YamlNode;
      node = pair.value ?? undefined;
      if (node === undefined || node === null) return { key, node: key };
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)];
      if (item === undefined || item === null) return { node: node as YamlNode };
      key = undefined;
      node = item;
    } else {
      return { node: node as YamlNode, key };
    }
  }
  return { node: node as YamlNode, key };
}

function nodeOffset(n: YamlNode | undefined): number | undefined {
  return n?.range ? n.range[0] : undefined;
}

export class Checker {
  readonly errors: { e: ConfigError; fileIndex: number; seq: number }[] = [];
  private seq = 0;

  add(at: Loc, message: string, related?: (Loc & { message: string })[], fileIndex = 0, hosts?: string[]): void {
    const e: ConfigError = { file: at.file, line: at.line, column: at.column, message };
    if (hosts) e.hosts = hosts;
    if (at.sourceLine !== undefined) e.sourceLine = at.sourceLine;
    if (related?.length) {
      e.related = related.map((r) => {
        const o: RelatedLocation = { file: r.file, line: r.line, column: r.column, message: r.message };
        if (r.sourceLine !== undefined) o.sourceLine = r.sourceLine;
        return o;
      });
    }
    this.errors.push({ e, fileIndex, seq: this.seq++ });
  }

  sorted(): ConfigError[] {
    return [...this.errors]
      .sort((a, b) => a.fileIndex - b.fileIndex || a.e.line - b.e.line || a.e.column - b.e.column || a.seq - b.seq)
      .map((x) => x.e);
  }
}

const where = (l: SourceLocation) => `${l.file}:${l.line}:${l.column}`;
const plainLoc = (l: Loc): SourceLocation => ({ file: l.file, line: l.line, column: l.column });

/** Locates a JSON pointer of a document: the value (or the key, with `preferKey`). */
function locate(d: DocCtx, pointer: string, preferKey = false): Loc {
  const { node, key } = findNode(d.doc, pointer);
  const off = (preferKey ? nodeOffset(key) : undefined) ?? nodeOffset(node) ?? nodeOffset(key) ?? nodeOffset(d.doc.contents ?? undefined) ?? 0;
  return d.fc.at(off);
}

/** How an object at a pointer is called in messages. */
function objectName(kind: string, pointer: string): string {
  if (pointer === '') return kind === 'Policy' ? 'the Policy document' : kind === 'Host' ? 'a Host document' : 'a Domain document';
  const segs = pointer.split('/');
  const last = segs[segs.length - 1]!;
  if (/^\d+$/.test(last) && segs[segs.length - 2] === 'disks') return 'a disk';
  return `\`${last}\``;
}

/** How a value at a pointer is called in messages. */
function valueName(pointer: string): string {
  const segs = pointer.split('/');
  const last = segs[segs.length - 1]!;
  if (/^\d+$/.test(last)) return `an item of \`${segs[segs.length - 2]}\``;
  return `\`${last}\``;
}

const SUPERSEDED = /(^|\/)(vdev|file|device|allowedRoots\/\d+)$/;

/** The keys that only mean something in a fleet directory (one with `kind: Host` documents). */
const FLEET_KEYS = new Set(['hosts', 'migratable']);

/**
 * Turns ajv's errors for one document into our sentences, dropping those the semantic pass reports better.
 * Outside a fleet, "expected ..." does not list the fleet's keys (they are errors there).
 */
// Long: one case per ajv keyword, each wording its error in our terms; the cases share the filters above them.
function schemaErrors(d: DocCtx, kind: string, errs: ErrorObject[], ck: Checker, fleet: boolean): void {
  const seen = new Set<string>();
  // "unknown key `vdv`; did you mean `vdev`?" already says that `vdev` is missing.
  const suggested = new Set<string>();
  for (const err of errs) {
    if (err.keyword !== 'additionalProperties') continue;
    const known = Object.keys(((err.parentSchema ?? {}) as { properties?: object }).properties ?? {});
    const s = suggest(String(err.params.additionalProperty), known);
    if (s !== undefined) suggested.add(`${err.instancePath}/${s}`);
  }
  for (const err of errs) {
    if (err.keyword === 'propertyNames') continue; // its inner error, with propertyName, says which key
    if (err.keyword === 'required' && suggested.has(`${err.instancePath}/${String(err.params.missingProperty)}`)) continue;
    const p = err.instancePath;
    if (p === '/apiVersion' || p === '/kind') continue;
    if (err.keyword === 'required' && ['apiVersion', 'kind'].includes(String(err.params.missingProperty))) continue;
    if (err.schemaPath.includes('/oneOf/')) continue;
    if ((err.keyword === 'pattern' || err.keyword === 'minLength') && SUPERSEDED.test(p)) continue;
    if (err.keyword === 'if') continue;
    let at: Loc;
    let msg: string;
    switch (err.keyword) {
      case 'additionalProperties': {
        const prop = String(err.params.additionalProperty);
        const known = Object.keys(((err.parentSchema ?? {}) as { properties?: object }).properties ?? {});
        const s = suggest(prop, known);
        at = locate(d, `${p}/${prop.replace(/~/g, '~0').replace(/\//g, '~1')}`, true);
        const listed = fleet || p !== '' ? known : known.filter((k) => !FLEET_KEYS.has(k));
        msg = `unknown key \`${prop}\` in ${objectName(kind, p)}; ${s !== undefined ? `did you mean \`${s}\`?` : `expected ${orList(listed.map((k) => `\`${k}\``))}`}`;
        break;
      }
      case 'required': {
        const prop = String(err.params.missingProperty);
        at = locate(d, p);
        const hint =
          prop === 'disks' ? ' (a list, possibly empty)' : prop === 'name' ? (kind === 'Host' && p === '' ? ' (the host\'s name, as `uname -n` prints it)' : ' (the name of the Xen domain)') : '';
        msg = `${objectName(kind, p)} needs \`${prop}\`${hint}`;
        break;
      }
      case 'oneOf': {
        if (!isObject(err.data as Json)) continue; // not a mapping: its type error says it
        const passing = err.params.passingSchemas;
        if (Array.isArray(passing)) {
          // Point at whichever of the two keys comes second.
          const a = locate(d, `${p}/file`, true);
          const b = locate(d, `${p}/device`, true);
          at = a.line > b.line || (a.line === b.line && a.column > b.column) ? a : b;
        } else at = locate(d, p);
        msg = Array.isArray(passing)
          ? 'a disk has both `file` and `device`; give exactly one source'
          : 'a disk needs a source: `file: /path/to/image` or `device: /dev/...`';
        break;
      }
      case 'type': {
        at = locate(d, p);
        const t = err.params.type;
        const want = Array.isArray(t) ? orList(t.map((x: string) => TYPE_WORDS[x] ?? x)) : (TYPE_WORDS[String(t)] ?? String(t));
        const ex = (err.parentSchema as { examples?: unknown[] } | undefined)?.examples?.[0];
        const eg = typeof ex === 'string' || typeof ex === 'number' ? `, such as ${fmtValue(ex)}` : '';
        msg = `${valueName(p)} must be ${want}${eg}, not ${describe(err.data)}`;
        break;
      }
      case 'enum':
      case 'const': {
        at = locate(d, p);
        const allowed = err.keyword === 'enum' ? (err.params.allowedValues as unknown[]) : [err.params.allowedValue];
        const words = allowed.filter((a): a is string => typeof a === 'string');
        const s = typeof err.data === 'string' ? suggest(err.data, words) : undefined;
        msg = `${valueName(p)} must be ${orList(allowed.map(fmtValue))}, not ${describe(err.data)}${s !== undefined ? `; did you mean \`${s}\`?` : ''}`;
        break;
      }
      case 'pattern': {
        const key = (err as { propertyName?: string }).propertyName;
        if (key !== undefined) {
          at = locate(d, `${p}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, true);
          msg = `${p.endsWith('/labels') ? 'label key' : 'key'} \`${key}\` is not valid: ${p.endsWith('/labels') ? 'a label key is letters, digits, `.`, `_`, `-` and `/`, starting and ending with a letter or digit' : `it must match ${String(err.params.pattern)}`}`;
          break;
        }
        at = locate(d, p);
        const m = (err.parentSchema as { 'x-patternMessage'?: string } | undefined)?.['x-patternMessage'];
        const last = p.split('/').pop() ?? '';
        const shown = /^\d+$/.test(last) ? `${valueName(p)} \`${String(err.data)}\`` : `\`${last}: ${String(err.data)}\``;
        msg = `${shown} is not valid: ${m ?? `it must match ${String(err.params.pattern)}`}`;
        break;
      }
      case 'minimum':
      case 'maximum':
        at = locate(d, p);
        msg = `${valueName(p)} must be ${err.keyword === 'minimum' ? 'at least' : 'at most'} ${String(err.params.limit)}, not ${String(err.data)}`;
        break;
      case 'minLength':
      case 'minItems':
        at = locate(d, p);
        msg = `${valueName(p)} must not be empty`;
        break;
      case 'minProperties':
        at = locate(d, p);
        msg = p.endsWith('/hosts') ? '`hosts` needs `names` (a list of hosts) or `labels` (a mapping), or both' : `${valueName(p)} must not be empty`;
        break;
      case 'maxLength':
        if ((err as { propertyName?: string }).propertyName !== undefined) {
          const key = (err as { propertyName?: string }).propertyName!;
          at = locate(d, `${p}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, true);
          msg = `${p.endsWith('/labels') ? 'label key' : 'key'} \`${key.slice(0, 80)}\` is longer than ${String(err.params.limit)} characters`;
          break;
        }
        at = locate(d, p);
        msg = `${valueName(p)} is longer than ${String(err.params.limit)} characters`;
        break;
      default:
        at = locate(d, p);
        msg = `${valueName(p) || 'the document'} ${err.message ?? 'is not valid'}`;
    }
    const k = `${at.line}:${at.column}:${msg}`;
    if (seen.has(k)) continue;
    seen.add(k);
    ck.add(at, msg, undefined, d.fc.index);
  }
}

/** A duration such as `10s`, `1500ms`, `2m`, in milliseconds. */
export function parseDuration(s: string): number | undefined {
  const m = /^(0|[1-9][0-9]*)(\.[0-9]+)?(ms|s|m)$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]! + (m[2] ?? ''));
  return Math.round(n * (m[3] === 'ms' ? 1 : m[3] === 's' ? 1000 : 60_000));
}

const MAX_DETACH_TIMEOUT_MS = 3_600_000;

function yamlErrorMessage(err: YAMLError, text: string): string {
  if (err.code === 'DUPLICATE_KEY') {
    const m = /^[^:\n]*/.exec(text.slice(err.pos[0], err.pos[0] + 200));
    const key = m?.[0].trim().replace(/^["']|["']$/g, '');
    return key ? `key \`${key}\` appears twice in this mapping` : 'a key appears twice in this mapping';
  }
  if (err.code === 'TAB_AS_INDENT') return 'YAML syntax error: tabs cannot indent YAML; use spaces';
  if (err.code === 'BLOCK_AS_IMPLICIT_KEY') {
    return 'YAML syntax error: a nested mapping cannot follow a value on the same key; check the indentation of the next line, or quote a value that contains `: `';
  }
  let m = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '').replace(/\.$/, '');
  m = m.charAt(0).toLowerCase() + m.slice(1);
  return `YAML syntax error: ${m}`;
}

/** For a duplicate key at `offset`: the offset of the first key of the same mapping with that name. */
function firstKeyOf(doc: Document.Parsed, offset: number): number | undefined {
  let found: number | undefined;
  visit(doc, {
    Map(_, map) {
      const keyText = (k: unknown) => (isScalar(k) ? String(k.value) : undefined);
      const dup = map.items.find((p) => isScalar(p.key) && p.key.range?.[0] === offset);
      if (!dup) return undefined;
      const first = map.items.find((p) => p !== dup && keyText(p.key) === keyText(dup.key));
      if (first && isScalar(first.key) && first.key.range) found = first.key.range[0];
      return visit.BREAK;
    },
  });
  return found;
}

interface DiskUse {
  source: string;
  domain: string;
  vdev: string;
  mode: DiskMode;
  at: SourceLocation;
  loc: Loc;
  /** The Domain document and the index of the disk in it. */
  doc: DocCtx;
  index: number;
}

/**
 * Checks the given files (already read) and builds the desired state when there are no errors. In a
 * fleet directory (one with `kind: Host` documents) it is the desired state of one host, `opts.host`
 * (default: defaultHostName()): the documents that select it, and its Policy.
 */
export function checkConfigTexts(inputs: readonly ConfigFileText[], extraErrors: ConfigError[] = [], opts: CheckOptions = {}): ConfigCheck {
  const ck = new Checker();
  for (const e of extraErrors) ck.errors.push({ e, fileIndex: -1, seq: -1 });
  const parsed = parseDocuments(inputs, ck);
  const files = inputs.map((i) => i.file);
  const fleet = readFleet(parsed, ck);
  if (!fleet) {
    const v = checkView(parsed.domainDocs, parsed.policyDocs, ck);
    const errors = ck.sorted();
    const result: ConfigCheck = { errors, files, domains: parsed.domainDocs.length, disks: v.diskCount };
    if (errors.length === 0) result.desired = { domains: v.domains, policy: v.policy };
    return result;
  }
  const wanted = (opts.host ?? defaultHostName()).toLowerCase();
  const host = fleet.hosts.find((h) => h.name === wanted);
  if (!host) {
    const names = fleet.hosts.map((h) => h.name);
    const s = suggest(wanted, names);
    ck.add(
      { file: opts.dir ?? inputs[0]?.file ?? '.', line: 0, column: 0 },
      `host \`${wanted}\` is not one of the fleet's hosts (${names.length ? listNames(names) : 'no Host document has a valid name'}); ${s !== undefined ? `did you mean \`${s}\`? ` : ''}add a \`kind: Host\` document with \`name: ${wanted}\`, or pass --host NAME`,
    );
    const errors = ck.sorted();
    return { errors, files, domains: 0, disks: 0, hosts: fleet.hosts.map(hostSpec) };
  }
  const view = viewOf(fleet, parsed, host);
  if (view.domainDocs.length === 0 && !fleet.domainSelectorBroken) ck.add(host.nameLoc, selectsNothing(host), undefined, host.d.fc.index);
  const v = checkView(view.domainDocs, view.policyDocs, ck, view.explicitPolicy ? host.name : undefined);
  const errors = ck.sorted();
  const result: ConfigCheck = { errors, files, domains: view.domainDocs.length, disks: v.diskCount, host: hostSpec(host), hosts: fleet.hosts.map(hostSpec) };
  if (errors.length === 0) result.desired = { domains: v.domains, policy: v.policy, host: hostSpec(host) };
  return result;
}

/** The parser's errors of one document, one per line (its follow-up errors on the same line are noise). */
function reportYamlErrors(doc: Document.Parsed, text: string, fc: FileCtx, ck: Checker): void {
  const lines = new Set<number>();
  for (const err of doc.errors) {
    let off = err.pos[0];
    while (text[off] === ' ') off++; // point at the token, not at the indentation before it
    const at = fc.at(off);
    if (lines.has(at.line)) continue;
    lines.add(at.line);
    const first = err.code === 'DUPLICATE_KEY' ? firstKeyOf(doc, err.pos[0]) : undefined;
    const related = first !== undefined ? [{ ...fc.at(first), message: 'the first one is here' }] : undefined;
    const msg = yamlErrorMessage(err, text) + (first !== undefined ? `; the first is at ${where(fc.at(first))}` : '');
    ck.add(at, msg, related, fc.index);
  }
}

/** A document's header: `apiVersion` (an error, the document still read) and `kind` (undefined: not read further). */
export function checkHeader(d: DocCtx, rootLoc: Loc, ck: Checker): Kind | undefined {
  const { js } = d;
  const index = d.fc.index;
  if (!Object.hasOwn(js, 'apiVersion')) {
    ck.add(rootLoc, `the document has no \`apiVersion\`; add \`apiVersion: ${API_VERSION}\``, undefined, index);
  } else if (js.apiVersion !== API_VERSION) {
    ck.add(locate(d, '/apiVersion'), `unsupported apiVersion ${describe(js.apiVersion).replace(/^the string /, '')}; this xvbd reads \`${API_VERSION}\``, undefined, index);
  }
  if (!Object.hasOwn(js, 'kind')) {
    ck.add(rootLoc, 'the document has no `kind`; add `kind: Domain` or `kind: Policy`', undefined, index);
    return undefined;
  }
  const kind = js.kind;
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) {
    const s = typeof kind === 'string' ? suggest(kind, KINDS) : undefined;
    ck.add(
      locate(d, '/kind'),
      typeof kind === 'string'
        ? `unknown kind \`${kind}\`; ${s !== undefined ? `did you mean \`${s}\`?` : 'expected `Domain` or `Policy`'}`
        : `\`kind\` must be \`Domain\` or \`Policy\`, not ${describe(kind)}`,
      undefined,
      index,
    );
    return undefined;
  }
  return kind as Kind;
}

/** YAML texts already parsed (the documents are only read afterwards, never changed), by text. */
const PARSED = new Map<string, { docs: Document.Parsed[]; lc: LineCounter }>();
const PARSED_MAX = 4096;

/** The documents of every file, each checked alone: YAML, header, schema. */
export function parseDocuments(inputs: readonly ConfigFileText[], ck: Checker): ParsedDocs {
  const domainDocs: DocCtx[] = [];
  const policyDocs: DocCtx[] = [];
  const hostDocs: DocCtx[] = [];
  // Schema errors are worded once it is known whether this is a fleet.
  const pending: { d: DocCtx; kind: string; errs: ErrorObject[] }[] = [];
  inputs.forEach((input, index) => {
    // a text parsed before (the daemon reloading a directory where one file of 100 changed) is not parsed again
    const known = PARSED.get(input.text);
    const lc = known?.lc ?? new LineCounter();
    const fc = new FileCtx(input.file, index, input.text, lc);
    let docs: Document.Parsed[];
    try {
      docs = known?.docs ?? ([...parseAllDocuments(input.text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, logLevel: 'error' })] as Document.Parsed[]);
    } catch (err) {
      ck.add({ file: input.file, line: 0, column: 0 }, `cannot parse: ${(err as Error).message}`, undefined, index);
      return;
    }
    if (!known) {
      if (PARSED.size >= PARSED_MAX) PARSED.clear();
      PARSED.set(input.text, { docs, lc });
    }
    for (const doc of docs) {
      if (doc.errors.length) {
        reportYamlErrors(doc, input.text, fc, ck);
        continue;
      }
      // An empty document (`---` alone, or only comments).
      if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
      const rootLoc = fc.at(nodeOffset(doc.contents as YamlNode) ?? 0);
      if (!isMap(doc.contents)) {
        ck.add(rootLoc, 'a document must be a mapping with `apiVersion` and `kind`', undefined, index);
        continue;
      }
      let js: Json;
      try {
        js = doc.toJS({ maxAliasCount: 100 }) as Json;
      } catch (err) {
        ck.add(rootLoc, `cannot read this document: ${(err as Error).message.split('\n')[0]}`, undefined, index);
        continue;
      }
      if (!isObject(js)) continue;
      const d: DocCtx = { fc, doc, js };
      const kind = checkHeader(d, rootLoc, ck);
      if (kind === undefined) continue;
      const v = validators()[kind];
      if (!v(js)) pending.push({ d, kind, errs: [...(v.errors ?? [])] });
      (kind === 'Domain' ? domainDocs : kind === 'Policy' ? policyDocs : hostDocs).push(d);
    }
  });
  for (const x of pending) schemaErrors(x.d, x.kind, x.errs, ck, hostDocs.length > 0);
  return { domainDocs, policyDocs, hostDocs };
}

/** A domid a config may name: 0 to 32751 (DOMID_FIRST_RESERVED - 1). */
const isConfigDomid = (v: Json | undefined): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 32751;

/**
 * The rules across documents, for one host's view (or the whole directory without Host documents): the
 * Policy, then every domain and disk. `forHost` names the host in the messages of a fleet.
 */
function checkView(domainDocs: readonly DocCtx[], policyDocs: readonly DocCtx[], ck: Checker, forHost?: string): ViewResult {
  const { policy, rootsLoc } = readPolicy(policyDocs, ck, forHost);
  const ctx: DomainsCtx = { policy, rootsLoc, ck, byName: new Map(), sources: new Map() };
  const domains: DomainSpec[] = [];
  let diskCount = 0;
  for (const d of domainDocs) {
    const r = checkDomain(d, ctx);
    domains.push(r.spec);
    diskCount += r.diskCount;
  }
  return { domains, policy, uses: [...ctx.sources.values()].flat(), diskCount };
}

/**
 * The Policy of a view: at most one (`forHost` names the host in a fleet's message); its values (what
 * is well-typed) apply to every domain. `rootsLoc`: where `allowedRoots` is set, if it is.
 */
export function readPolicy(policyDocs: readonly DocCtx[], ck: Checker, forHost?: string): { policy: Policy; rootsLoc?: Loc } {
  const policy: Policy = structuredClone(DEFAULT_POLICY);
  const first = policyDocs[0];
  for (const extra of policyDocs.slice(1)) {
    const firstAt = locate(first!, '/kind');
    ck.add(
      locate(extra, '/kind'),
      forHost
        ? `a second Policy for host \`${forHost}\`; a host has at most one Policy whose \`hosts\` selects it, and the first is at ${where(firstAt)}`
        : `a second Policy; a config directory has at most one, and the first is at ${where(firstAt)}`,
      [{ ...firstAt, message: 'the first Policy is here' }],
      extra.fc.index,
    );
  }
  if (!first) return { policy };
  const p = first.js;
  policy.at = plainLoc(first.fc.at(nodeOffset(first.doc.contents as YamlNode) ?? 0));
  if (typeof p.prune === 'boolean') policy.prune = p.prune;
  if (typeof p.serve === 'string' && ['attach', 'hook', 'both'].includes(p.serve)) policy.serve = p.serve as ServeMode;
  if (typeof p.detachTimeout === 'string') {
    const ms = parseDuration(p.detachTimeout);
    if (ms !== undefined && ms > MAX_DETACH_TIMEOUT_MS) {
      ck.add(locate(first, '/detachTimeout'), `\`detachTimeout\` ${p.detachTimeout} is longer than the maximum, 1h`, undefined, first.fc.index);
    } else if (ms !== undefined) policy.detachTimeoutMs = ms;
  }
  let rootsLoc: Loc | undefined;
  if (Array.isArray(p.allowedRoots)) {
    rootsLoc = locate(first, '/allowedRoots', true);
    policy.allowedRoots = readAllowedRoots(first, p.allowedRoots, ck);
  }
  if (isObject(p.defaults)) {
    const df = p.defaults;
    if (df.mode === 'ro' || df.mode === 'rw') policy.defaults.mode = df.mode;
    if (isConfigDomid(df.backendDomain)) policy.defaults.backendDomid = df.backendDomain;
    if (isObject(df.options)) policy.defaults.options = readOptions(df.options, policy.defaults.options);
  }
  return rootsLoc ? { policy, rootsLoc } : { policy };
}

/**
 * The Policy's `allowedRoots`. With a broken root none: "outside the allowed roots" would only be
 * noise, sources are checked once it is fixed.
 */
export function readAllowedRoots(doc: DocCtx, roots: Json[], ck: Checker): string[] {
  const ok: string[] = [];
  let rootsOk = true;
  roots.forEach((r, i) => {
    if (typeof r !== 'string') return void (rootsOk = false);
    const problem = pathProblem(r);
    if (problem) {
      rootsOk = false;
      ck.add(locate(doc, `/allowedRoots/${i}`), `allowed root \`${r}\` ${problem}`, undefined, doc.fc.index);
    } else ok.push(r);
  });
  return rootsOk ? ok : [];
}

/** What the domains of one view share: the Policy, the names seen, every source's uses so far. */
export interface DomainsCtx {
  policy: Policy;
  rootsLoc: Loc | undefined;
  ck: Checker;
  byName: Map<string, Loc>;
  sources: Map<string, DiskUse[]>;
}

/** One Domain document: its name (once per view) and its disks (each vdev once per domain). */
export function checkDomain(d: DocCtx, ctx: DomainsCtx): { spec: DomainSpec; diskCount: number } {
  const js = d.js;
  const idx = d.fc.index;
  const name = typeof js.name === 'string' ? js.name : undefined;
  const domainAt = d.fc.at(nodeOffset(d.doc.contents as YamlNode) ?? 0);
  if (name !== undefined) {
    const nameLoc = locate(d, '/name');
    const prev = ctx.byName.get(name);
    if (prev) {
      ctx.ck.add(nameLoc, `domain \`${name}\` is defined twice; the first definition is at ${where(prev)}`, [{ ...prev, message: `the first definition of \`${name}\` is here` }], idx);
    } else ctx.byName.set(name, nameLoc);
  }
  const spec: DomainSpec = { name: name ?? '', disks: [], at: plainLoc(domainAt) };
  const byDevid = new Map<number, { vdev: string; loc: Loc }>();
  const items = Array.isArray(js.disks) ? js.disks : [];
  let diskCount = 0;
  items.forEach((item, i) => {
    if (!isObject(item)) return;
    diskCount++;
    const disk = checkDisk(d, item, i, name, byDevid, ctx);
    if (disk) spec.disks.push(disk);
  });
  return { spec, diskCount };
}

/** One disk of a domain: undefined when its vdev or source has an error. */
function checkDisk(d: DocCtx, item: JsonObject, i: number, name: string | undefined, byDevid: Map<number, { vdev: string; loc: Loc }>, ctx: DomainsCtx): DiskSpec | undefined {
  const { policy } = ctx;
  const base = `/disks/${i}`;
  const diskAt = plainLoc(locate(d, base));
  const { vdev, devid } = checkVdev(d, item.vdev, base, name, byDevid, ctx.ck);
  const mode: DiskMode = item.mode === 'ro' || item.mode === 'rw' ? item.mode : policy.defaults.mode;
  const options = isObject(item.options) ? readOptions(item.options, policy.defaults.options) : { ...policy.defaults.options };
  const backendDomid = isConfigDomid(item.backendDomain) ? item.backendDomain : policy.defaults.backendDomid;
  const src = checkSource(d, item, i, { domain: name ?? '?', vdev: vdev ?? String(item.vdev), mode }, ctx);
  if (vdev === undefined || devid === undefined || src === undefined) return undefined;
  return { vdev, devid, source: src.source, sourceKind: src.sourceKind, mode, options, backendDomid, at: diskAt } satisfies DiskSpec;
}

/** A disk's vdev and devid; an error for an invalid one, or one whose devid the domain already uses. */
export function checkVdev(d: DocCtx, rawVdev: Json | undefined, base: string, name: string | undefined, byDevid: Map<number, { vdev: string; loc: Loc }>, ck: Checker): { vdev?: string; devid?: number } {
  if (!(typeof rawVdev === 'string' || (typeof rawVdev === 'number' && Number.isInteger(rawVdev) && rawVdev >= 0))) return {};
  const vloc = locate(d, `${base}/vdev`);
  let vdev: string;
  let devid: number;
  try {
    const info = parseVdev(String(rawVdev));
    vdev = String(rawVdev).toLowerCase();
    devid = info.devid;
  } catch (err) {
    if (!(err instanceof VdevError)) throw err;
    ck.add(vloc, err.message, undefined, d.fc.index);
    return {};
  }
  const prev = byDevid.get(devid);
  if (prev) {
    const same = prev.vdev === vdev;
    const msg = same
      ? `vdev \`${vdev}\` is used twice in domain \`${name ?? '?'}\`; the first use is at ${where(prev.loc)}`
      : `vdev \`${vdev}\` is devid ${devid}, the same device as \`${prev.vdev}\` at ${where(prev.loc)} in domain \`${name ?? '?'}\``;
    ck.add(vloc, msg, [{ ...prev.loc, message: `\`${prev.vdev}\` is here` }], d.fc.index);
  } else byDevid.set(devid, { vdev, loc: vloc });
  return { vdev, devid };
}

/**
 * A disk's source (`file` or `device`, exactly one): a clean path, a device under /dev, inside the
 * allowed roots; recorded as a use, with an error when it conflicts with an earlier use.
 */
function checkSource(d: DocCtx, item: JsonObject, i: number, use: { domain: string; vdev: string; mode: DiskMode }, ctx: DomainsCtx): { source: string; sourceKind: SourceKind } | undefined {
  const { ck, policy, rootsLoc } = ctx;
  const idx = d.fc.index;
  const hasFile = Object.hasOwn(item, 'file');
  const hasDevice = Object.hasOwn(item, 'device');
  if (hasFile === hasDevice) return undefined;
  const key = hasFile ? 'file' : 'device';
  const raw = item[key];
  if (typeof raw !== 'string') return undefined;
  const sloc = locate(d, `/disks/${i}/${key}`);
  const problem = pathProblem(raw);
  if (problem) {
    ck.add(sloc, `source path \`${raw}\` ${problem}`, undefined, idx);
    return undefined;
  }
  if (key === 'device' && !raw.startsWith('/dev/')) {
    ck.add(sloc, `device \`${raw}\` is not under \`/dev/\`; a \`device\` source is a block device node (use \`file:\` for an image)`, undefined, idx);
    return undefined;
  }
  if (policy.allowedRoots.length && !policy.allowedRoots.some((r) => isUnder(raw, r))) {
    ck.add(
      sloc,
      `source \`${raw}\` is outside the allowed roots (${policy.allowedRoots.map((r) => `\`${r}\``).join(', ')}) set at ${where(rootsLoc!)}`,
      [{ ...rootsLoc!, message: '`allowedRoots` is set here' }],
      idx,
    );
    return undefined;
  }
  const uses = ctx.sources.get(raw) ?? [];
  const conflict = use.mode === 'rw' ? uses[0] : uses.find((u) => u.mode === 'rw');
  if (conflict) {
    ck.add(sloc, sourceConflictMessage(raw, use.mode, conflict), [{ ...conflict.loc, message: `the other use of \`${raw}\` (${conflict.mode}) is here` }], idx);
  }
  uses.push({ ...use, at: plainLoc(sloc), loc: sloc, doc: d, index: i, source: raw });
  ctx.sources.set(raw, uses);
  return { source: raw, sourceKind: key === 'file' ? 'file' : 'block' };
}

/** Why a source used with `mode` here conflicts with an earlier use (on one host: read-write is exclusive). */
export function sourceConflictMessage(raw: string, mode: DiskMode, conflict: Pick<DiskUse, 'domain' | 'vdev' | 'mode' | 'at'>): string {
  const who = `domain \`${conflict.domain}\` vdev \`${conflict.vdev}\` at ${where(conflict.at)}`;
  return mode === 'rw' && conflict.mode === 'rw'
    ? `source \`${raw}\` is already used read-write by ${who}; a read-write source can back only one disk`
    : mode === 'rw'
      ? `source \`${raw}\` is used read-write here but read-only by ${who}; make both read-only or give each its own image`
      : `source \`${raw}\` is used read-only here but read-write by ${who}; make both read-only or give each its own image`;
}

// ---------------------------------------------------------------------------------------------------
// Fleets: one directory (one repository) for many hosts. `kind: Host` documents declare the hosts and
// their labels; a Domain or Policy selects hosts with `hosts: {names, labels}` (none: every host).

interface ParsedDocs {
  domainDocs: DocCtx[];
  policyDocs: DocCtx[];
  hostDocs: DocCtx[];
}

interface ViewResult {
  domains: DomainSpec[];
  policy: Policy;
  /** Every source use the view resolved (for the fleet's rules across hosts). */
  uses: DiskUse[];
  diskCount: number;
}

interface HostEntry {
  name: string;
  labels: Record<string, string>;
  /** Directories on the host's own disks (`localRoots`). */
  localRoots: string[];
  d: DocCtx;
  nameLoc: Loc;
}

/** A document's `hosts`: the hosts it selects; `broken` when the selector itself has errors (it then selects none). */
interface Selection {
  hosts: Set<string>;
  broken: boolean;
}

interface Fleet {
  hosts: HostEntry[];
  /** Per Domain/Policy document with `hosts`: what it selects. Documents without `hosts` select every host. */
  selections: Map<DocCtx, Selection>;
  /** The Policy documents without `hosts` (the fleet's default; a second one is an error already reported). */
  defaultPolicies: DocCtx[];
  /** A Domain's selector has errors: which hosts have no Domain is not known until it is fixed. */
  domainSelectorBroken: boolean;
}

export interface CheckOptions {
  /** In a fleet directory: the host whose view to build (default defaultHostName()); folded to lower case. */
  host?: string;
  /** Where an error about the directory as a whole is reported (the config dir). */
  dir?: string;
}

const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

const hostSpec = (h: HostEntry): HostSpec => ({ name: h.name, labels: { ...h.labels }, at: plainLoc(h.nameLoc) });

/** `a`, `b` and `c` / `a`, `b`, `c` and 7 more. */
function listNames(names: readonly string[], max = 3): string {
  const q = names.map((n) => `\`${n}\``);
  if (q.length <= max) return orList(q).replace(/ or ([^ ]+)$/, ' and $1');
  return `${q.slice(0, max).join(', ')} and ${q.length - max} more`;
}

const selectsNothing = (h: HostEntry) =>
  `host \`${h.name}\` is selected by no Domain document; a host of the fleet has at least one (a Domain without \`hosts\`, or whose \`hosts\` names it or matches its labels), or remove this Host document`;

const labelText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `\`${k}: ${v}\``)
    .join(', ');

/** The Host documents and every selector; undefined when the directory declares no host (one host's directory, as before fleets). */
// Long: Host documents, then every document's selector, then the default Policy, in that order (each needs the one before).
function readFleet(parsed: ParsedDocs, ck: Checker): Fleet | undefined {
  const selectable = [...parsed.domainDocs, ...parsed.policyDocs];
  if (parsed.hostDocs.length === 0) {
    for (const d of selectable) {
      if (Object.hasOwn(d.js, 'hosts')) {
        ck.add(
          locate(d, '/hosts', true),
          '`hosts` selects hosts of a fleet, but this directory declares none; declare each host with a `kind: Host` document (see docs/config.md, Fleets), or remove `hosts`',
          undefined,
          d.fc.index,
        );
      }
      if (parsed.domainDocs.includes(d) && Object.hasOwn(d.js, 'migratable')) {
        ck.add(
          locate(d, '/migratable', true),
          '`migratable` lets a domain move between hosts of a fleet, but this directory declares none; declare each host with a `kind: Host` document (see docs/config.md, Fleets), or remove `migratable`',
          undefined,
          d.fc.index,
        );
      }
    }
    return undefined;
  }
  const hosts: HostEntry[] = [];
  for (const d of parsed.hostDocs) {
    const name = d.js.name;
    if (typeof name !== 'string' || !HOST_NAME.test(name) || name.length > 253) continue; // the schema said why
    const nameLoc = locate(d, '/name');
    const prev = hosts.find((h) => h.name === name);
    if (prev) {
      ck.add(nameLoc, `host \`${name}\` is declared twice; the first Host document is at ${where(prev.nameLoc)}`, [{ ...prev.nameLoc, message: `the first declaration of \`${name}\` is here` }], d.fc.index);
      continue;
    }
    const labels: Record<string, string> = {};
    if (isObject(d.js.labels)) for (const [k, v] of Object.entries(d.js.labels)) if (typeof v === 'string') labels[k] = v;
    const localRoots: string[] = [];
    if (Array.isArray(d.js.localRoots)) {
      d.js.localRoots.forEach((r, i) => {
        if (typeof r !== 'string' || !r.startsWith('/')) return; // the schema said why
        const problem = pathProblem(r);
        if (problem) ck.add(locate(d, `/localRoots/${i}`), `local root \`${r}\` ${problem}`, undefined, d.fc.index);
        else localRoots.push(r);
      });
    }
    hosts.push({ name, labels, localRoots, d, nameLoc });
  }
  const names = hosts.map((h) => h.name);
  const selections = new Map<DocCtx, Selection>();
  const defaultPolicies: DocCtx[] = [];
  for (const d of selectable) {
    if (!Object.hasOwn(d.js, 'hosts')) {
      if (parsed.policyDocs.includes(d)) defaultPolicies.push(d);
      continue;
    }
    const sel: Selection = { hosts: new Set(), broken: false };
    selections.set(d, sel);
    const h = d.js.hosts;
    if (!isObject(h) || Object.keys(h).length === 0 || Object.keys(h).some((k) => k !== 'names' && k !== 'labels')) {
      sel.broken = true; // the schema said why
      continue;
    }
    if (h.names !== undefined) {
      if (!Array.isArray(h.names) || h.names.length === 0 || h.names.some((n) => typeof n !== 'string' || !HOST_NAME.test(n))) sel.broken = true;
      else {
        h.names.forEach((n, i) => {
          const known = hosts.find((x) => x.name === n);
          if (known) return void sel.hosts.add(known.name);
          sel.broken = true;
          const s = suggest(n as string, names);
          ck.add(
            locate(d, `/hosts/names/${i}`),
            `no Host document declares host \`${String(n)}\`; ${s !== undefined ? `did you mean \`${s}\`?` : `the fleet's hosts are ${listNames(names)}`}`,
            undefined,
            d.fc.index,
          );
        });
      }
    }
    if (h.labels !== undefined) {
      if (!isObject(h.labels) || Object.values(h.labels).some((v) => typeof v !== 'string')) sel.broken = true;
      else {
        const want = h.labels as Record<string, string>;
        const matched = hosts.filter((x) => Object.entries(want).every(([k, v]) => x.labels[k] === v));
        for (const x of matched) sel.hosts.add(x.name);
        if (matched.length === 0 && Object.keys(want).length > 0) {
          sel.broken = true;
          ck.add(locate(d, '/hosts/labels', true), `\`hosts.labels\` selects no host: no Host document has ${labelText(want)}`, undefined, d.fc.index);
        }
      }
    }
    if (sel.broken) sel.hosts.clear();
  }
  const [firstDefault, ...extraDefaults] = defaultPolicies;
  for (const extra of extraDefaults) {
    const firstAt = locate(firstDefault!, '/kind');
    ck.add(
      locate(extra, '/kind'),
      `a second Policy without \`hosts\`; a fleet has at most one default Policy, and the first is at ${where(firstAt)}`,
      [{ ...firstAt, message: 'the first Policy is here' }],
      extra.fc.index,
    );
  }
  const domainSelectorBroken = parsed.domainDocs.some((d) => selections.get(d)?.broken === true);
  return { hosts, selections, defaultPolicies, domainSelectorBroken };
}

const selects = (fleet: Fleet, d: DocCtx, host: HostEntry) => {
  const s = fleet.selections.get(d);
  return s ? s.hosts.has(host.name) : true;
};

/** One host's documents: the Domains that select it; its Policy (those selecting it by `hosts`, else the default). */
function viewOf(fleet: Fleet, parsed: ParsedDocs, host: HostEntry): { domainDocs: DocCtx[]; policyDocs: DocCtx[]; explicitPolicy: boolean } {
  const domainDocs = parsed.domainDocs.filter((d) => selects(fleet, d, host));
  const explicit = parsed.policyDocs.filter((d) => fleet.selections.get(d)?.hosts.has(host.name));
  const policyDocs = explicit.length ? explicit : fleet.defaultPolicies.slice(0, 1);
  return { domainDocs, policyDocs, explicitPolicy: explicit.length > 0 };
}

export interface FleetHostCheck {
  name: string;
  labels: Record<string, string>;
  /** The domains this host's agent has (names, in file order). */
  domains: string[];
  disks: number;
  /** Where its Policy is (none: the defaults). */
  policy?: SourceLocation;
}

export interface FleetCheck {
  errors: ConfigError[];
  files: string[];
  /** False for a directory without Host documents (checked as one host's directory). */
  fleet: boolean;
  hosts: FleetHostCheck[];
  /** Domain documents and disks of the whole directory. */
  domains: number;
  disks: number;
}

const useHostsKey = (u: DiskUse) => `${u.doc.fc.index}:${nodeOffset(u.doc.doc.contents as YamlNode) ?? 0}:${u.index}`;

/**
 * Every host's view at once (`xvbd validate --fleet`): each host's own rules, and the rules no single host
 * can check: a domain defined for two hosts without `migratable: true`, a read-write source given to domains
 * on two hosts, a host that selects nothing. An error of some hosts' views only names them.
 */
// Long: the rules across hosts share one checker and each host's view; each rule is a short loop over them.
export function checkFleetTexts(inputs: readonly ConfigFileText[], extraErrors: ConfigError[] = []): FleetCheck {
  const ck = new Checker();
  for (const e of extraErrors) ck.errors.push({ e, fileIndex: -1, seq: -1 });
  const parsed = parseDocuments(inputs, ck);
  const files = inputs.map((i) => i.file);
  const diskTotal = parsed.domainDocs.reduce((n, d) => n + (Array.isArray(d.js.disks) ? d.js.disks.filter(isObject).length : 0), 0);
  const fleet = readFleet(parsed, ck);
  if (!fleet) {
    checkView(parsed.domainDocs, parsed.policyDocs, ck);
    return { errors: ck.sorted(), files, fleet: false, hosts: [], domains: parsed.domainDocs.length, disks: diskTotal };
  }
  // Each host's view, with its own checker: the same error found by several views is reported once.
  const viewErrors = new Map<string, { e: ConfigError; fileIndex: number; seq: number; hosts: string[] }>();
  const hostsOut: FleetHostCheck[] = [];
  const uses: (DiskUse & { host: string })[] = [];
  const byName = new Map<string, { host: string; d: DocCtx }[]>();
  for (const host of fleet.hosts) {
    const view = viewOf(fleet, parsed, host);
    if (view.domainDocs.length === 0 && !fleet.domainSelectorBroken) ck.add(host.nameLoc, selectsNothing(host), undefined, host.d.fc.index, [host.name]);
    const hk = new Checker();
    const v = checkView(view.domainDocs, view.policyDocs, hk, view.explicitPolicy ? host.name : undefined);
    for (const x of hk.errors) {
      const key = `${x.fileIndex}\0${errorHeadline(x.e)}`;
      const prev = viewErrors.get(key);
      if (prev) prev.hosts.push(host.name);
      else viewErrors.set(key, { ...x, hosts: [host.name] });
    }
    for (const u of v.uses) uses.push({ ...u, host: host.name });
    for (const d of view.domainDocs) {
      if (typeof d.js.name !== 'string') continue;
      const l = byName.get(d.js.name) ?? [];
      l.push({ host: host.name, d });
      byName.set(d.js.name, l);
    }
    const out: FleetHostCheck = { name: host.name, labels: { ...host.labels }, domains: v.domains.map((x) => x.name), disks: v.diskCount };
    const pd = view.policyDocs[0];
    if (pd) out.policy = plainLoc(locate(pd, '/kind'));
    hostsOut.push(out);
  }
  for (const x of viewErrors.values()) {
    const e: ConfigError = { ...x.e, hosts: x.hosts };
    if (x.hosts.length < fleet.hosts.length) e.message = `${x.hosts.length === 1 ? 'host' : 'hosts'} ${listNames(x.hosts)}: ${e.message}`;
    ck.errors.push({ e, fileIndex: x.fileIndex, seq: x.seq });
  }

  const localTo = new Map(fleet.hosts.map((h) => [h.name, h.localRoots]));
  const isLocal = (src: string, host: string) => (localTo.get(host) ?? []).some((r) => isUnder(src, r));

  // A domain runs on one host, unless it may migrate between those its one document selects.
  for (const [name, defs] of byName) {
    const docs = [...new Set(defs.map((x) => x.d))];
    const hostsOf = (d: DocCtx) => [...new Set(defs.filter((x) => x.d === d).map((x) => x.host))];
    const first = docs[0]!;
    if (docs.length === 1) {
      const hs = hostsOf(first);
      if (hs.length >= 2 && first.js.migratable === true) {
        // It moves between them: a read-write disk on one host's own disks would not move with it.
        const seen = new Set<number>();
        for (const u of uses) {
          if (u.doc !== first || u.mode !== 'rw' || seen.has(u.index) || !isLocal(u.source, u.host)) continue;
          seen.add(u.index);
          ck.add(
            u.loc,
            `domain \`${name}\` may migrate between hosts ${listNames(hs)}, but its read-write source \`${u.source}\` is under the \`localRoots\` of host \`${u.host}\`: after a migration it would find another disk; put it on storage every one of these hosts shares`,
            undefined,
            u.doc.fc.index,
            hs,
          );
        }
      }
      if (hs.length < 2 || first.js.migratable === true) continue;
      const viaHosts = Object.hasOwn(first.js, 'hosts');
      ck.add(
        viaHosts ? locate(first, '/hosts', true) : locate(first, '/name'),
        viaHosts
          ? `domain \`${name}\` is selected for hosts ${listNames(hs)} and is not \`migratable: true\`; a domain runs on one host: select one, or say \`migratable: true\` if it moves between these`
          : `domain \`${name}\` has no \`hosts\`, so every host (${listNames(hs)}) has it, and it is not \`migratable: true\`; select its host with \`hosts\`, or say \`migratable: true\` if it moves between them`,
        undefined,
        first.fc.index,
        hs,
      );
      continue;
    }
    const firstLoc = locate(first, '/name');
    const firstHosts = hostsOf(first);
    for (const d of docs.slice(1)) {
      const hs = hostsOf(d);
      // Two documents of one name for the same host: that host's view reports the duplicate.
      if (hs.every((h) => firstHosts.includes(h))) continue;
      const other = hs.find((h) => !firstHosts.includes(h))!;
      ck.add(
        locate(d, '/name'),
        `domain \`${name}\` is defined for host \`${other}\` here and for ${firstHosts.length === 1 ? 'host' : 'hosts'} ${listNames(firstHosts)} at ${where(firstLoc)}; a domain that may run on several hosts is one Domain document whose \`hosts\` selects them all, with \`migratable: true\``,
        [{ ...firstLoc, message: `the other definition of \`${name}\` is here` }],
        d.fc.index,
        [...firstHosts, other],
      );
    }
  }

  // A source used read-write backs one disk in the whole fleet: not disks of domains on two hosts
  // (unless the path is on a host's own disks: then the two hosts have two files).
  const bySource = new Map<string, Map<string, (DiskUse & { host: string })[]>>();
  for (const u of uses) {
    const src = u.source;
    const m = bySource.get(src) ?? new Map<string, (DiskUse & { host: string })[]>();
    const k = useHostsKey(u);
    m.set(k, [...(m.get(k) ?? []), u]);
    bySource.set(src, m);
  }
  for (const [src, disks] of bySource) {
    const list = [...disks.values()].sort((a, b) => a[0]!.doc.fc.index - b[0]!.doc.fc.index || a[0]!.loc.line - b[0]!.loc.line || a[0]!.loc.column - b[0]!.loc.column);
    for (let j = 1; j < list.length; j++) {
      const b = list[j]!;
      for (const a of list.slice(0, j)) {
        const aHosts = new Set(a.map((u) => u.host));
        // On a common host, that host's view has judged the pair already.
        if (b.some((u) => aHosts.has(u.host))) continue;
        const ua = a.find((u) => u.mode === 'rw') ?? a[0]!;
        const ub = b.find((u) => u.mode === 'rw') ?? b[0]!;
        if (ua.mode !== 'rw' && ub.mode !== 'rw') continue;
        if (isLocal(src, ua.host) || isLocal(src, ub.host)) continue;
        const who = `domain \`${ua.domain}\` on host \`${ua.host}\` at ${where(ua.at)}`;
        const msg =
          ua.mode === 'rw' && ub.mode === 'rw'
            ? `source \`${src}\` is given read-write to domain \`${ub.domain}\` on host \`${ub.host}\` here and to ${who}; two hosts writing one image (on shared storage) corrupt it: give each its own image, or make one Domain document with \`migratable: true\` for a domain that moves between hosts`
            : ub.mode === 'rw'
              ? `source \`${src}\` is used read-write by domain \`${ub.domain}\` on host \`${ub.host}\` here but read-only by ${who}; the read-only guest would see it change under it: make both read-only or give each its own image`
              : `source \`${src}\` is used read-only by domain \`${ub.domain}\` on host \`${ub.host}\` here but read-write by ${who}; the read-only guest would see it change under it: make both read-only or give each its own image`;
        ck.add(ub.loc, msg, [{ ...ua.loc, message: `the use of \`${src}\` (${ua.mode}) on host \`${ua.host}\` is here` }], ub.doc.fc.index, [ua.host, ub.host]);
        break;
      }
    }
  }
  return { errors: ck.sorted(), files, fleet: true, hosts: hostsOut, domains: parsed.domainDocs.length, disks: diskTotal };
}


function readOptions(o: JsonObject, base: DiskOptions): DiskOptions {
  const out: DiskOptions = { ...base };
  if (typeof o.directIo === 'boolean') out.directIo = o.directIo;
  if (typeof o.discard === 'boolean') out.discard = o.discard;
  if (typeof o.blockSize === 'number' && [512, 1024, 2048, 4096].includes(o.blockSize)) out.blockSize = o.blockSize;
  return out;
}

/** The config files of a directory: `*.yaml` and `*.yml`, not hidden, not recursive, sorted by name (code points). */
export function isConfigFileName(name: string): boolean {
  return !name.startsWith('.') && /\.ya?ml$/.test(name);
}

/** Reads and checks a config directory (for one host of a fleet: `opts.host`). Paths in errors are `join(dir, name)`. */
export async function checkConfigDir(dir: string, opts: Omit<CheckOptions, 'dir'> = {}): Promise<ConfigCheck> {
  return readConfigDir(dir, (inputs, readErrors) => checkConfigTexts(inputs, readErrors, { ...opts, dir }), (e) => ({ errors: [e], files: [], domains: 0, disks: 0 }));
}

/** checkFleetTexts for a directory: every host's view at once (`xvbd validate --fleet`). */
export async function checkFleetDir(dir: string): Promise<FleetCheck> {
  return readConfigDir(dir, (inputs, readErrors) => checkFleetTexts(inputs, readErrors), (e) => ({ errors: [e], files: [], fleet: false, hosts: [], domains: 0, disks: 0 }));
}

async function readConfigDir<R extends { errors: ConfigError[]; files: string[] }>(
  dir: string,
  check: (inputs: ConfigFileText[], readErrors: ConfigError[]) => R,
  onDirError: (e: ConfigError) => R,
): Promise<R> {
  const dirError = (message: string): R => onDirError({ file: dir, line: 0, column: 0, message });
  let names: string[];
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) return dirError('the config path is not a directory');
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return dirError('the config directory does not exist');
    return dirError(`cannot read the config directory (${code ?? (err as Error).message})`);
  }
  names = names.filter(isConfigFileName).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const inputs: ConfigFileText[] = [];
  const readErrors: ConfigError[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      const st = await stat(file);
      if (!st.isFile()) continue;
      if (st.size > MAX_FILE_BYTES) {
        readErrors.push({ file, line: 0, column: 0, message: `the file is larger than ${MAX_FILE_BYTES >> 20} MiB; a config file is a few kilobytes` });
        continue;
      }
      inputs.push({ file, text: await readFile(file, 'utf8') });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      readErrors.push({ file, line: 0, column: 0, message: `cannot read the file (${code ?? (err as Error).message})` });
    }
  }
  if (inputs.length === 0 && readErrors.length === 0) return dirError('the config directory has no *.yaml or *.yml files');
  const res = check(inputs, readErrors);
  res.files = names.map((n) => join(dir, n)).filter((f) => inputs.some((i) => i.file === f) || readErrors.some((e) => e.file === f));
  // Files that could not be read take their place in name order (the sort is stable).
  const order = new Map(res.files.map((f, i) => [f, i]));
  res.errors.sort((a, b) => (order.get(a.file) ?? -1) - (order.get(b.file) ?? -1) || a.line - b.line || a.column - b.column);
  return res;
}
