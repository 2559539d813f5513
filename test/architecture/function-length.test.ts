// No function in src/ over MAX_LINES lines without a line above it saying why it is long (a comment
// starting "Long:"), so that what can be tested alone is. Counted with the TypeScript parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const MAX_LINES = 80;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** Every folder of src/ (src/version.ts is one line). */
const FOLDERS = readdirSync(join(root, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : /\.tsx?$/.test(e.name) ? [p] : [];
  });
}

/** Every function of `file` longer than MAX_LINES with no "// Long:" line right above it (or its doc comment). */
export function longFunctions(file: string, text: string): string[] {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const lines = text.split('\n');
  const out: string[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isFunctionLike(n) && 'body' in n && n.body) {
      const start = src.getLineAndCharacterOfPosition(n.getStart()).line;
      const end = src.getLineAndCharacterOfPosition(n.getEnd()).line;
      if (end - start + 1 > MAX_LINES) {
        // the statement that holds it: `const f = () => ...`, a method, a declaration
        let holder: ts.Node = n;
        while (holder.parent && !ts.isSourceFile(holder.parent) && !ts.isClassLike(holder.parent) && !ts.isBlock(holder.parent)) holder = holder.parent;
        const first = src.getLineAndCharacterOfPosition(holder.getStart()).line;
        const full = src.getLineAndCharacterOfPosition(holder.getFullStart()).line;
        const above = lines.slice(full, first + 1).join('\n');
        if (!/\/\/ Long: \S/.test(above)) out.push(`${relative(root, file)}:${start + 1} (${end - start + 1} lines)`);
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return out;
}

test(`no function over ${MAX_LINES} lines without a reason, in src/{${FOLDERS.join(',')}}`, () => {
  const found = FOLDERS.flatMap((f) => sources(join(root, 'src', f))).flatMap((f) => longFunctions(f, readFileSync(f, 'utf8')));
  assert.deepEqual(found, [], 'split these, or write `// Long: why` above them');
});

test('longFunctions: a long function is found, a reason above it (or above its doc comment) is accepted', () => {
  const body = Array.from({ length: MAX_LINES }, (_, i) => `  const x${i} = ${i};`).join('\n');
  const fn = (name: string) => `function ${name}() {\n${body}\n}\n`;
  const f = join(root, 'src/x.ts');
  assert.deepEqual(longFunctions(f, fn('a')), ['src/x.ts:1 (82 lines)']);
  assert.deepEqual(longFunctions(f, `// Long: a table\n${fn('b')}`), []);
  assert.deepEqual(longFunctions(f, `/** Doc. */\n// Long: a table\n${fn('c')}`), []);
  assert.deepEqual(longFunctions(f, `// Long: a table\n/** Doc. */\n${fn('d')}`), []);
  assert.deepEqual(longFunctions(f, `class K {\n  // Long: one case per op\n  m() {\n${body}\n  }\n}\n`), []);
  assert.deepEqual(longFunctions(f, `const short = () => 1;\n`), []);
});
