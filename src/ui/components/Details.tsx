import { Box, Text } from 'ink';
import type { DetailsVM, Tone } from '../viewmodel.js';

interface Line {
  text: string;
  bold?: boolean;
  dim?: boolean;
  color?: Tone;
}

const MARK = { error: '✖', warning: '!', info: 'i' } as const;

function pairs(title: string, ps: [string, string][], empty: string): Line[] {
  const w = Math.max(0, ...ps.map(([k]) => k.length));
  const out: Line[] = [{ text: title, bold: true }];
  if (ps.length === 0) out.push({ text: `  ${empty}`, dim: true });
  for (const [k, v] of ps) out.push({ text: `  ${k.padEnd(w)}  ${v}` });
  return out;
}

/** The details of one disk as lines (so they can be cut to the terminal's height). */
export function detailLines(d: DetailsVM): Line[] {
  const lines: Line[] = [{ text: d.title, bold: true, color: 'cyan' }];
  lines.push(...pairs('Status', d.status, '-'));
  lines.push(...pairs('Desired', d.desired, '-'));
  lines.push(...pairs(`Backend ${d.backendPath ?? ''}`.trimEnd(), d.nodes, d.backendPath ? 'the backend dir is gone' : 'no backend in xenstore'));
  lines.push(...pairs('Loop device', d.loop, 'none'));
  lines.push({ text: `Findings for this disk (${d.findings.length})`, bold: true });
  if (d.findings.length === 0) lines.push({ text: '  none: no drift', color: 'green' });
  for (const f of d.findings) {
    lines.push({ text: `  ${MARK[f.severity]} ${f.kind}: ${f.message}`, color: f.tone });
    lines.push({ text: `      fix: ${f.fix}`, dim: true });
  }
  lines.push({ text: `Pending actions for this disk (${d.actions.length})`, bold: true });
  if (d.actions.length === 0) lines.push({ text: '  nothing to do', color: 'green' });
  for (const a of d.actions) lines.push({ text: `  ${a.sign} ${a.summary}${a.reason ? `: ${a.reason}` : ''}`, color: a.tone });
  return lines;
}

/** Everything about one disk: desired spec, backend nodes, loop device, its findings and actions. */
export function Details({ details, maxLines = 1000 }: { details: DetailsVM; maxLines?: number }) {
  const all = detailLines(details);
  const cut = all.length > maxLines;
  const shown = cut ? all.slice(0, Math.max(1, maxLines - 1)) : all;
  return (
    <Box flexDirection="column">
      {shown.map((l, i) => (
        <Text key={i} bold={l.bold} dimColor={l.dim} color={l.color} wrap="truncate-end">
          {l.text}
        </Text>
      ))}
      {cut ? <Text dimColor>… {all.length - shown.length} more lines: enlarge the terminal to see them</Text> : null}
    </Box>
  );
}
