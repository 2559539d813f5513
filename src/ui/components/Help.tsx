import { Box, Text } from 'ink';
import { helpSections } from '../keys.js';
import { PLAN_LEGEND } from './DiskTable.js';

export interface HelpProps {
  canApply: boolean;
  /** At most this many lines; more scroll (j/k). */
  maxLines: number;
  /** First line shown (clamped). */
  scroll?: number;
}

export interface HelpLine {
  text: string;
  bold?: boolean;
}

/** The keys, generated from the reducer's own table (keys.ts BINDINGS), and what the columns mean. */
export function helpLines(canApply: boolean): HelpLine[] {
  const lines: HelpLine[] = [];
  for (const [title, keys] of helpSections(canApply)) {
    lines.push({ text: title, bold: true });
    const w = Math.max(...keys.map(([k]) => k.length));
    for (const [k, does] of keys) lines.push({ text: `  ${k.padEnd(w)}  ${does}` });
  }
  lines.push({ text: 'Columns', bold: true });
  for (const l of PLAN_LEGEND) lines.push({ text: `  ${l}` });
  return lines;
}

/** The largest useful scroll: the last line at the bottom (one line is the position note). */
export function helpMaxScroll(total: number, maxLines: number): number {
  return total <= maxLines ? 0 : total - Math.max(1, maxLines - 1);
}

export function Help({ canApply, maxLines, scroll = 0 }: HelpProps) {
  const lines = helpLines(canApply);
  const fits = lines.length <= maxLines;
  const start = Math.max(0, Math.min(scroll, helpMaxScroll(lines.length, maxLines)));
  const shown = fits ? lines : lines.slice(start, start + Math.max(1, maxLines - 1));
  return (
    <Box flexDirection="column">
      {shown.map((l, i) => (
        <Text key={i} bold={l.bold === true} wrap="truncate-end">
          {l.text}
        </Text>
      ))}
      {fits ? null : (
        <Text dimColor>
          {'  '}lines {start + 1}-{start + shown.length} of {lines.length}: j/k scroll
        </Text>
      )}
    </Box>
  );
}
