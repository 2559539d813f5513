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

export function Findings({ findings, max, showFix = false, title = 'Findings' }: FindingsProps) {
  const shown = findings.slice(0, Math.max(0, max));
  return (
    <Box flexDirection="column">
      <Text bold>
        {title} ({findings.length})
      </Text>
      {findings.length === 0 ? <Text color="green">  none: no drift</Text> : null}
      {shown.map((f, i) => (
        <Box key={i} flexDirection="column">
          <Text color={f.tone} wrap="truncate-end">
            {'  '}
            {MARK[f.severity]} {f.kind}
            {f.where ? ` [${f.where}]` : ''}: {f.message}
          </Text>
          {showFix ? (
            <Text dimColor wrap="truncate-end">
              {'      '}fix: {f.fix}
            </Text>
          ) : null}
        </Box>
      ))}
      {findings.length > shown.length ? <Text dimColor>  … and {findings.length - shown.length} more</Text> : null}
    </Box>
  );
}
