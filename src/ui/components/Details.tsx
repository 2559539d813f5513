import { Box, Text } from 'ink';
import type { DetailsVM } from '../viewmodel.js';
import { Findings } from './Findings.js';
import { PendingPlan } from './PendingPlan.js';

function Pairs({ title, pairs, empty }: { title: string; pairs: [string, string][]; empty: string }) {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return (
    <Box flexDirection="column">
      <Text bold>{title}</Text>
      {pairs.length === 0 ? <Text dimColor>  {empty}</Text> : null}
      {pairs.map(([k, v], i) => (
        <Text key={i} wrap="truncate-end">
          {'  '}
          <Text dimColor>{k.padEnd(w)}</Text>  {v}
        </Text>
      ))}
    </Box>
  );
}

/** Everything about one disk: desired spec, backend nodes, loop device, its findings and actions. */
export function Details({ details: d }: { details: DetailsVM }) {
  return (
    <Box flexDirection="column">
      <Text bold color="cyan">
        {d.title}
      </Text>
      <Pairs title="Desired" pairs={d.desired} empty="-" />
      <Pairs
        title={`Backend ${d.backendPath ?? ''}`.trimEnd()}
        pairs={d.nodes}
        empty={d.backendPath ? 'the backend dir is gone' : 'no backend in xenstore'}
      />
      <Pairs title="Loop device" pairs={d.loop} empty="none" />
      <Findings findings={d.findings} max={20} showFix title="Findings for this disk" />
      <PendingPlan actions={d.actions} summary="" max={20} title="Pending actions for this disk" />
    </Box>
  );
}
