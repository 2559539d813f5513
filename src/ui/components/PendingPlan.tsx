import { Box, Text } from 'ink';
import type { ActionVM } from '../viewmodel.js';

export interface PendingPlanProps {
  actions: ActionVM[];
  summary: string;
  max: number;
  title?: string;
  /** The first action shown (a scrolled list). */
  offset?: number;
  /** Said with the count of the actions not shown (e.g. "j/k scroll"). */
  moreHint?: string;
}

/** What `xvbd apply` would do now, Terraform style. */
export function PendingPlan({ actions, summary, max, title = 'Pending plan', offset = 0, moreHint }: PendingPlanProps) {
  const start = Math.max(0, Math.min(offset, actions.length - Math.max(1, max)));
  const shown = actions.slice(start, start + Math.max(0, max));
  return (
    <Box flexDirection="column">
      <Text bold>
        {title} ({actions.length})
      </Text>
      {actions.length === 0 ? <Text color="green">  nothing to do</Text> : null}
      {shown.map((a, i) => (
        <Text key={i} color={a.tone} wrap="truncate-end">
          {'  '}
          {a.sign} {a.summary}
          {a.reason ? <Text dimColor>: {a.reason}</Text> : null}
        </Text>
      ))}
      {start > 0 ? <Text dimColor>  ↑ {start} above</Text> : null}
      {actions.length > start + shown.length ? (
        <Text dimColor>
          {'  '}… and {actions.length - start - shown.length} more{moreHint ? ` (${moreHint})` : ''}
        </Text>
      ) : null}
      <Text dimColor>  {summary}</Text>
    </Box>
  );
}
