// Config errors and their compiler-style rendering:
//
//   web.yaml:12:7: unknown key `vdv` in a disk; did you mean `vdev`?
//      12 |   - vdv: xvda
//         |     ^
//     web.yaml:3:3: note: the first definition is here
//       ...
//
// line and column are 1-based; line 0 means "the whole file or directory" (no source line).

export interface RelatedLocation {
  file: string;
  line: number;
  column: number;
  message: string;
  /** The text of the source line (for the caret display); absent when line is 0. */
  sourceLine?: string;
}

export interface ConfigError {
  file: string;
  line: number;
  column: number;
  /** One clear sentence, no trailing period, no location. */
  message: string;
  /** Other places the error is about (e.g. the first definition of a duplicate). */
  related?: RelatedLocation[];
  /** The text of the source line (for the caret display); absent when line is 0. */
  sourceLine?: string;
  /** `validate --fleet`: the hosts this error is about (whose view has it, or that a rule across hosts names). */
  hosts?: string[];
}

export interface FormatOptions {
  /** ANSI colours (bold location, red "error", cyan notes, green caret). Default false. */
  color?: boolean;
}

/** `file:line:column: message` (or `file: message` when line is 0). */
export function errorHeadline(e: { file: string; line: number; column: number; message: string }): string {
  return e.line > 0 ? `${e.file}:${e.line}:${e.column}: ${e.message}` : `${e.file}: ${e.message}`;
}

function excerpt(line: number, column: number, sourceLine: string | undefined, indent: string, paint: (s: string) => string): string[] {
  if (line <= 0 || sourceLine === undefined) return [];
  const num = String(line);
  const gutter = ' '.repeat(num.length);
  // Keep tabs as tabs under the caret so it lines up whatever the terminal's tab width.
  const lead = [...sourceLine.slice(0, Math.max(0, column - 1))].map((c) => (c === '\t' ? '\t' : ' ')).join('');
  return [`${indent}  ${num} | ${sourceLine}`, `${indent}  ${gutter} | ${lead}${paint('^')}`];
}

/** Renders every error as a headline, the offending line with a caret, and its related notes. */
export function formatErrors(errors: readonly ConfigError[], opts: FormatOptions = {}): string {
  const c = opts.color === true;
  const bold = (s: string) => (c ? `\x1b[1m${s}\x1b[22m` : s);
  const red = (s: string) => (c ? `\x1b[31m${s}\x1b[39m` : s);
  const cyan = (s: string) => (c ? `\x1b[36m${s}\x1b[39m` : s);
  const green = (s: string) => (c ? `\x1b[32m${s}\x1b[39m` : s);
  const out: string[] = [];
  for (const e of errors) {
    const loc = e.line > 0 ? `${e.file}:${e.line}:${e.column}:` : `${e.file}:`;
    out.push(c ? `${bold(loc)} ${red('error:')} ${e.message}` : `${loc} ${e.message}`);
    out.push(...excerpt(e.line, e.column, e.sourceLine, '', green));
    for (const r of e.related ?? []) {
      const rloc = r.line > 0 ? `${r.file}:${r.line}:${r.column}:` : `${r.file}:`;
      out.push(`  ${c ? bold(rloc) : rloc} ${cyan('note:')} ${r.message}`);
      out.push(...excerpt(r.line, r.column, r.sourceLine, '  ', green));
    }
  }
  return out.length ? out.join('\n') + '\n' : '';
}
