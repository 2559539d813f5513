import { Box, Text } from 'ink';
import type { HeaderVM } from '../viewmodel.js';

export interface HeaderProps {
  header: HeaderVM;
  /** "refreshing…", "applying…", or undefined when idle. */
  activity?: string;
  /** The last observation failed: shown in red; the data shown is the previous one. */
  error?: string;
}

/** Three lines: where we look, then the counts (disks, then drift). */
export function Header({ header: h, activity, error }: HeaderProps) {
  return (
    <Box flexDirection="column">
      <Text wrap="truncate-end">
        <Text bold color="cyan">xvbd</Text>
        <Text>  host </Text><Text bold>{h.host}</Text>
        <Text>  xenstore </Text><Text bold>{h.socket}</Text>
        <Text>  config </Text><Text bold>{h.configDir}</Text>
        <Text>  observed </Text><Text bold>{h.observedAt}</Text>
        {h.observeMs !== undefined ? <Text dimColor> ({h.observeMs} ms)</Text> : null}
        {activity ? <Text color="cyan">  {activity}</Text> : null}
      </Text>
      <Text wrap="truncate-end">
        <Text>domains {h.domainsRunning}/{h.domainsDesired} running  disks {h.disks}: </Text>
        <Text color="green">{h.health.healthy} healthy</Text><Text> </Text>
        <Text color="cyan">{h.health.progressing} progressing</Text><Text> </Text>
        <Text color={h.health.degraded > 0 ? 'red' : undefined}>{h.health.degraded} degraded</Text><Text> </Text>
        <Text color={h.health.missing > 0 ? 'yellow' : undefined}>{h.health.missing} missing</Text>
        <Text>  sync: {h.sync.synced} synced </Text>
        <Text color={h.sync['out-of-sync'] > 0 ? 'yellow' : undefined}>{h.sync['out-of-sync']} out-of-sync</Text>
        <Text> {h.sync.pending} pending</Text>
      </Text>
      <Text wrap="truncate-end">
        {h.daemon !== undefined ? <Text color={h.daemonTone}>{h.daemon}  </Text> : null}
        <Text>findings </Text>
        <Text color={h.findings.error > 0 ? 'red' : undefined}>{h.findings.error} error</Text><Text> </Text>
        <Text color={h.findings.warning > 0 ? 'yellow' : undefined}>{h.findings.warning} warning</Text>
        <Text> {h.findings.info} info</Text>
        <Text>  loop devices {h.loops} ({h.loopsOurs} ours)</Text>
        <Text>  pending actions {h.actions}</Text>
      </Text>
      {h.warning ? (
        <Text color="yellow" wrap="truncate-end">
          {h.warning}
        </Text>
      ) : null}
      {error ? (
        <Text color="red" wrap="truncate-end">
          observe failed: {error} (showing the previous observation)
        </Text>
      ) : null}
    </Box>
  );
}
