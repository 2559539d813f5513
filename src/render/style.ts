// Tiny text helpers shared by the plan and status renderers: optional ANSI colours and column layout.

export interface RenderOptions {
  /** ANSI colours (default false). */
  color?: boolean;
}

export type Paint = (s: string) => string;

export interface Palette {
  green: Paint;
  red: Paint;
  yellow: Paint;
  cyan: Paint;
  dim: Paint;
  bold: Paint;
}

const plain: Paint = (s) => s;
const sgr = (on: number, off: number): Paint => (s) => `\x1b[${on}m${s}\x1b[${off}m`;

export function palette(color: boolean | undefined): Palette {
  if (!color) return { green: plain, red: plain, yellow: plain, cyan: plain, dim: plain, bold: plain };
  return { green: sgr(32, 39), red: sgr(31, 39), yellow: sgr(33, 39), cyan: sgr(36, 39), dim: sgr(2, 22), bold: sgr(1, 22) };
}

/** Whether to colour a stream by default: a terminal, and NO_COLOR unset (https://no-color.org). */
export function wantColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && !env.NO_COLOR && env.TERM !== 'dumb';
}

/** Whether to colour `stream`: --no-color says never, --color always, otherwise wantColor. */
export function colorFor(values: { color?: boolean | undefined; 'no-color'?: boolean | undefined }, stream: { isTTY?: boolean }): boolean {
  return values['no-color'] ? false : values.color ? true : wantColor(stream);
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

export function visibleLength(s: string): number {
  return s.replace(ANSI, '').length;
}

/**
 * Lays out rows in columns (two spaces apart), padding by visible length so coloured cells align.
 * The last column is not padded.
 */
export function columns(rows: string[][], indent = ''): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(c))));
  return rows.map(
    (r) =>
      indent +
      r
        .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - visibleLength(c))))
        .join('  ')
        .trimEnd(),
  );
}

export const plural = (n: number, word: string, pl = `${word}s`): string => `${n} ${n === 1 ? word : pl}`;
