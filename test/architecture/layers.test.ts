// The layers of src/ (docs/architecture.md): each folder imports only folders below it, no folder or
// file imports another that imports it back, and the simulator is only for the `sim` command, the demo
// and the tests. Read from the TypeScript sources (static imports, `export ... from`, `import type` and
// dynamic `import()` alike), so that a violation fails here, naming the import, before anyone trips on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * Bottom to top. A folder may import its own files and those of the folders on LOWER lines only; folders
 * on one line are peers and do not import each other. `src/version.ts` counts as the folder `version`.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['model', 'log', 'version'], // the data types of desired state, observation and plan; logging; the version
  ['xen'], // Xen's vocabulary: the vbd schema (node names, permissions, strict parsers, limits)
  ['host'], // the environment read once: run dir and instance, config dir, host name, xenstore paths
  ['linux', 'xenstore'], // loop devices (LOOP_CONFIGURE, diskseq, markers); the xenstore client and libxl's vbd layout
  ['config'], // the YAML desired state: schema, cross-file rules, file:line:column errors
  ['observe'], // the host as ObservedState
  ['plan'], // the pure planner: actions, findings, status per disk
  ['render'], // plans and status as text (the CLI and the TUI)
  ['ipc'], // local sockets: JSON lines, the daemon's control socket, systemd's notify and fd store
  ['hold'], // who keeps a loop device's fd: the keepers, the fd store, the holders
  ['apply'], // the executor: actions into loop devices and xenstore transactions
  ['hook'], // libxl's hotplug script: the decision, the serve path, the one-shot server
  ['daemon'], // the reconciler: watches, queue, passes, metrics
  ['wire'], // the composition root: a host's registry, holders, clients; apply sessions; snapshots
  ['sim'], // the embedded xenstore simulator with blkback
  ['demo', 'ui'], // the README's demo and the example host; the terminal UI
  ['cli'], // the commands: nothing imports them
];

/** Besides the tests, only these may import src/sim. */
const SIM_USERS = [/^src\/demo\//, /^src\/cli\/commands\/sim\.ts$/];

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const src = join(root, 'src');

interface Import {
  from: string;
  to: string;
  line: number;
  spec: string;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (/\.tsx?$/.test(e) && !e.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** `./x.js` as written in an import, as the source file it names (x.ts or x.tsx). */
function resolveSpec(fromFile: string, spec: string): string | undefined {
  const base = normalize(join(dirname(fromFile), spec)).replace(/\.js$/, '');
  return ['.ts', '.tsx'].map((x) => base + x).find((p) => existsSync(p));
}

function imports(): Import[] {
  const out: Import[] = [];
  for (const file of sources(src)) {
    const text = readFileSync(file, 'utf8');
    const info = ts.preProcessFile(text, true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const to = resolveSpec(file, ref.fileName);
      const line = text.slice(0, ref.pos).split('\n').length;
      const rel = relative(root, file);
      if (!to) assert.fail(`${rel}:${line} imports ${ref.fileName}, which is no source file`);
      out.push({ from: rel, to: relative(root, to), line, spec: ref.fileName });
    }
  }
  return out;
}

function folderOf(file: string): string {
  const parts = file.split('/');
  return parts.length === 2 ? parts[1]!.replace(/\.tsx?$/, '') : parts[1]!;
}

const rank = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i] as const)));
const order = LAYERS.map((l) => l.join(', ')).join(' -> ');
const all = imports();
const where = (i: Import) => `${i.from}:${i.line} imports '${i.spec}' (${i.to})`;

/** The strongly connected components of more than one node, or with an edge to itself (Tarjan). */
function cycles(edges: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || edges.get(v)?.has(v)) out.push(c.sort());
    }
  };
  for (const v of [...edges.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** One cycle through `start` inside its component, as the imports that make it. */
function cycleThrough(start: string, members: Set<string>, edge: (a: string, b: string) => Import | undefined, next: (a: string) => Iterable<string>): Import[] {
  const seen = new Set<string>();
  const path: Import[] = [];
  const dfs = (v: string): boolean => {
    for (const w of next(v)) {
      if (!members.has(w)) continue;
      const e = edge(v, w)!;
      if (w === start) {
        path.push(e);
        return true;
      }
      if (seen.has(w)) continue;
      seen.add(w);
      path.push(e);
      if (dfs(w)) return true;
      path.pop();
    }
    return false;
  };
  dfs(start);
  return path;
}

test('layers: every folder of src/ has its place in the order', () => {
  const folders = readdirSync(src).map((e) => (statSync(join(src, e)).isDirectory() ? e : e.replace(/\.tsx?$/, '')));
  const missing = folders.filter((f) => !rank.has(f));
  assert.deepEqual(missing, [], `src/${missing[0]} is in no layer: give it its line in LAYERS (test/architecture/layers.test.ts) and docs/architecture.md`);
});

test('layers: each folder imports only folders below it (order: ' + order + ')', () => {
  const bad = all.filter((i) => {
    const a = folderOf(i.from);
    const b = folderOf(i.to);
    return a !== b && !(rank.get(b)! < rank.get(a)!);
  });
  const why = (i: Import) => {
    const a = folderOf(i.from);
    const b = folderOf(i.to);
    return `${where(i)}: ${a} may not import ${b} (${rank.get(a) === rank.get(b) ? 'peers on one layer' : `${b} is above ${a}`})`;
  };
  assert.deepEqual(bad.map(why), [], `imports against the layer order ${order}:\n  ${bad.map(why).join('\n  ')}`);
});

test('layers: no cycle between folders', () => {
  const edges = new Map<string, Set<string>>();
  const via = new Map<string, Import>();
  for (const i of all) {
    const a = folderOf(i.from);
    const b = folderOf(i.to);
    if (a === b) continue;
    (edges.get(a) ?? edges.set(a, new Set()).get(a)!).add(b);
    if (!via.has(`${a}>${b}`)) via.set(`${a}>${b}`, i);
  }
  const found = cycles(edges).map((c) => cycleThrough(c[0]!, new Set(c), (a, b) => via.get(`${a}>${b}`), (a) => edges.get(a) ?? []));
  const text = found.map((p) => p.map(where).join('\n    then '));
  assert.deepEqual(text, [], `folders that import each other:\n  ${text.join('\n  ')}`);
});

test('layers: no cycle between files (type-only and dynamic imports included)', () => {
  const edges = new Map<string, Set<string>>();
  const via = new Map<string, Import>();
  for (const i of all) {
    (edges.get(i.from) ?? edges.set(i.from, new Set()).get(i.from)!).add(i.to);
    if (!via.has(`${i.from}>${i.to}`)) via.set(`${i.from}>${i.to}`, i);
  }
  const found = cycles(edges).map((c) => cycleThrough(c[0]!, new Set(c), (a, b) => via.get(`${a}>${b}`), (a) => edges.get(a) ?? []));
  const text = found.map((p) => p.map(where).join('\n    then '));
  assert.deepEqual(text, [], `files that import each other:\n  ${text.join('\n  ')}`);
});

test('layers: src/sim is imported only by the sim command and the demo (and the tests)', () => {
  const bad = all.filter((i) => folderOf(i.to) === 'sim' && folderOf(i.from) !== 'sim' && !SIM_USERS.some((re) => re.test(i.from)));
  assert.deepEqual(bad.map(where), [], `the simulator imported outside the sim command and the demo:\n  ${bad.map(where).join('\n  ')}`);
});

test('layers: the checks see every kind of import (a self-test of the parser)', () => {
  const info = ts.preProcessFile(
    "import a from './a.js';\nimport type { B } from './b.js';\nexport { c } from './c.js';\nconst d = await import('./d.js');\n// import('./not-this.js')\n",
    true,
    true,
  );
  assert.deepEqual(info.importedFiles.map((f) => f.fileName).sort(), ['./a.js', './b.js', './c.js', './d.js']);
});
