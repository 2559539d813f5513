import { Box, Text } from 'ink';
import type { ActionVM } from '../viewmodel.js';

export interface PendingPlanProps {
  actions: ActionVM[];
  summary: string;
  max: number;
  title?: string;
}

/** What `xvbd apply` would do now, Terraform style. */
export function PendingPlan({ actions, summary, max, title = 'Pending plan' }: PendingPlanProps) {
  const shown = actions.slice(0, Math.max(0, max));
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
      {actions.length > shown.length ? <Text dimColor>  … and {actions.length - shown.length} more</Text> : null}
      <Text dimColor>  {summary}</Text>
    </Box>
  );
}
