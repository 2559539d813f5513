import { Box, Text } from 'ink';
import type { FindingVM } from '../viewmodel.js';

export interface FindingsProps {
  findings: FindingVM[];
  /** At most this many (the rest are counted). */
  max: number;
  /** Show the fix under each finding. */
  showFix?: boolean;
  title?: string;
}

const MARK = { error: '✖', warning: '!', info: 'i' } as const;

export interface FindingLine {
  f: FindingVM;
  /** How many findings this line stands for (same kind and severity, grouped when many). */
  count: number;
  wheres: string[];
}

/**
 * Groups findings of one kind when there are more than `groupOver` of them (a host with 200 leaked
 * loop devices gets one line for them, not a screenful), keeping the order of first appearance.
 */
export function groupFindings(findings: FindingVM[], groupOver = 3): FindingLine[] {
  const byKind = new Map<string, FindingVM[]>();
  for (const f of findings) {
    const k = `${f.severity}/${f.kind}`;
    const a = byKind.get(k);
    if (a) a.push(f);
    else byKind.set(k, [f]);
  }
  const out: FindingLine[] = [];
  const done = new Set<string>();
  for (const f of findings) {
    const k = `${f.severity}/${f.kind}`;
    const all = byKind.get(k)!;
    if (all.length <= groupOver) {
      out.push({ f, count: 1, wheres: [f.where] });
    } else if (!done.has(k)) {
      done.add(k);
      out.push({ f, count: all.length, wheres: all.map((x) => x.where) });
    }
  }
  return out;
}

function whereText(l: FindingLine): string {
  if (l.count === 1) return l.f.where ? ` [${l.f.where}]` : '';
  const w = l.wheres.filter(Boolean);
  return ` ×${l.count} [${w.slice(0, 4).join(', ')}${w.length > 4 ? ', …' : ''}]`;
}

export function Findings({ findings, max, showFix = false, title = 'Findings' }: FindingsProps) {
  const lines = showFix ? findings.map((f) => ({ f, count: 1, wheres: [f.where] })) : groupFindings(findings);
  const shown = lines.slice(0, Math.max(0, max));
  return (
    <Box flexDirection="column">
      <Text bold>
        {title} ({findings.length})
      </Text>
      {findings.length === 0 ? <Text color="green">  none: no drift</Text> : null}
      {shown.map(({ f, ...l }, i) => (
        <Box key={i} flexDirection="column">
          <Text color={f.tone} wrap="truncate-end">
            {'  '}
            {MARK[f.severity]} {f.kind}
            {whereText({ f, ...l })}: {l.count > 1 ? 'e.g. ' : ''}
            {f.message}
          </Text>
          {showFix ? (
            <Text dimColor wrap="truncate-end">
              {'      '}fix: {f.fix}
            </Text>
          ) : null}
        </Box>
      ))}
      {lines.length > shown.length ? (
        <Text dimColor>
          {'  '}… and {lines.slice(shown.length).reduce((a, l) => a + l.count, 0)} more
        </Text>
      ) : null}
    </Box>
  );
}
