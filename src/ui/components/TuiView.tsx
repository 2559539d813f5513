import { Box, Text } from 'ink';
import type { UiState } from '../keys.js';
import { visibleRows, type ViewModel } from '../viewmodel.js';
import { Details } from './Details.js';
import { DiskTable } from './DiskTable.js';
import { Findings, groupFindings } from './Findings.js';
import { Header } from './Header.js';
import { PendingPlan } from './PendingPlan.js';
import { StatusLine } from './StatusLine.js';

export interface TuiViewProps {
  /** Undefined until the first observation succeeded. */
  vm?: ViewModel;
  ui: UiState;
  width: number;
  height: number;
  canApply: boolean;
  /** "refreshing…" / "applying…" */
  activity?: string;
  /** The last observation failed with this. */
  error?: string;
  /** Progress and result lines of the last apply. */
  applyLog?: string[];
}

/**
 * The whole screen, as a pure function of its props. Lays out the header, the disk table,
 * the findings, the pending plan (or the apply log) and the status line within `height` lines.
 */
export function TuiView({ vm, ui, width, height, canApply, activity, error, applyLog = [] }: TuiViewProps) {
  if (!vm) {
    return (
      <Box flexDirection="column">
        <Text bold color="cyan">
          xvbd
        </Text>
        {error ? (
          <Text color="red">observe failed: {error}</Text>
        ) : (
          <Text>Observing xenstore and loop devices…</Text>
        )}
        <StatusLine mode={ui.mode} canApply={canApply} actionCount={0} {...(ui.message !== undefined ? { message: ui.message } : {})} />
      </Box>
    );
  }
  const rows = visibleRows(vm, ui.filter);
  const selectedKey = rows[ui.selected]?.key;
  const details = ui.mode === 'details' && selectedKey !== undefined ? vm.details(selectedKey) : undefined;
  const statusProps = {
    mode: ui.mode,
    canApply,
    actionCount: vm.actions.length,
    ...(ui.message !== undefined ? { message: ui.message } : {}),
  };
  const header = <Header header={vm.header} {...(activity ? { activity } : {})} {...(error ? { error } : {})} />;
  if (details) {
    return (
      <Box flexDirection="column">
        {header}
        <Text> </Text>
        <Details details={details} maxLines={Math.max(3, height - (3 + (error ? 1 : 0) + (vm.header.warning ? 1 : 0)) - 3)} />
        <Text> </Text>
        <StatusLine {...statusProps} />
      </Box>
    );
  }

  // Line budget: header (2-3) + gap + table header + rows + gap + findings + gap + plan + gap + status.
  const headerLines = 3 + (error ? 1 : 0) + (vm.header.warning ? 1 : 0);
  const logShown = applyLog.slice(-6);
  const findingLines = groupFindings(vm.findings).length;
  const findingsMax = Math.min(findingLines, Math.max(2, Math.floor(height / 6)));
  const actionsMax = Math.min(vm.actions.length, Math.max(2, Math.floor(height / 8)));
  const findingsLines = 1 + Math.max(1, findingsMax) + (findingLines > findingsMax ? 1 : 0);
  const planLines = 1 + Math.max(1, actionsMax) + (vm.actions.length > actionsMax ? 1 : 0) + 1;
  const logLines = logShown.length > 0 ? logShown.length + 2 : 0;
  const fixed = headerLines + 1 + 1 + (ui.filter ? 1 : 0) + 1 + findingsLines + 1 + planLines + logLines + 1 + 1;
  const tableLines = Math.max(3, height - fixed);
  return (
    <Box flexDirection="column">
      {header}
      <Text> </Text>
      <DiskTable
        rows={rows}
        selected={ui.selected}
        width={width}
        maxLines={tableLines}
        {...(ui.filter ? { filterNote: `showing ${rows.length} of ${vm.rows.length} disks: those that need attention (f: all)` } : {})}
      />
      <Text> </Text>
      <Findings findings={vm.findings} max={findingsMax} />
      <Text> </Text>
      <PendingPlan actions={vm.actions} summary={vm.summary} max={actionsMax} />
      {logShown.length > 0 ? (
        <Box flexDirection="column">
          <Text> </Text>
          <Text bold>Last apply</Text>
          {logShown.map((l, i) => (
            <Text key={i} wrap="truncate-end" dimColor={i < logShown.length - 1}>
              {'  '}
              {l}
            </Text>
          ))}
        </Box>
      ) : null}
      <Text> </Text>
      <StatusLine {...statusProps} />
    </Box>
  );
}
