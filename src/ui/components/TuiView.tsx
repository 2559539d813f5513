import { Box, Text } from 'ink';
import type { UiState } from '../keys.js';
import { visibleRows, type ViewModel } from '../viewmodel.js';
import { Details } from './Details.js';
import { DiskTable } from './DiskTable.js';
import { Findings, groupFindings } from './Findings.js';
import { Events } from './Events.js';
import { Header } from './Header.js';
import { Help } from './Help.js';
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

/** Lines the header takes (without a view model: the title and the status). */
export function headerLineCount(vm: ViewModel | undefined, error: string | undefined): number {
  return vm ? 3 + (error ? 1 : 0) + (vm.header.warning ? 1 : 0) : 2;
}

/** Lines the help gets under a header of `headerLines` (a gap above, a gap and the status line below). */
export function helpRoom(headerLines: number, height: number): number {
  return Math.max(3, height - headerLines - 3);
}

/** Actions the prune confirmation shows at once (the rest scroll with j/k). */
export function pruneRoom(headerLines: number, height: number): number {
  return Math.max(1, height - headerLines - 8);
}

/**
 * The whole screen, as a pure function of its props. Lays out the header, the disk table,
 * the findings, the pending plan (or the apply log) and the status line within `height` lines.
 */
// Long: the screen's layout as one JSX tree, top to bottom; every decision in it comes from the view model.
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
        {ui.mode === 'help' ? <Help canApply={canApply} maxLines={helpRoom(2, height)} scroll={ui.scroll ?? 0} /> : null}
        <StatusLine mode={ui.mode} canApply={canApply} actionCount={0} {...(ui.message !== undefined ? { message: ui.message } : {})} />
      </Box>
    );
  }
  const rows = visibleRows(vm, ui);
  const selectedKey = rows[ui.selected]?.key;
  const details = ui.mode === 'details' && selectedKey !== undefined ? vm.details(selectedKey) : undefined;
  const statusProps = {
    mode: ui.mode,
    canApply,
    actionCount: vm.actions.length,
    ...(vm.prune ? { pruneActionCount: vm.prune.actions.length } : {}),
    ...(ui.message !== undefined ? { message: ui.message } : {}),
    ...(ui.query !== undefined ? { query: ui.query } : {}),
    ...(ui.command !== undefined ? { command: ui.command } : {}),
  };
  const headerLines = headerLineCount(vm, error);
  const header = <Header header={vm.header} {...(activity ? { activity } : {})} {...(error ? { error } : {})} />;
  if (ui.mode === 'help') {
    return (
      <Box flexDirection="column">
        {header}
        <Text> </Text>
        <Help canApply={canApply} maxLines={helpRoom(headerLines, height)} scroll={ui.scroll ?? 0} />
        <Text> </Text>
        <StatusLine {...statusProps} />
      </Box>
    );
  }
  if (ui.mode === 'events') {
    return (
      <Box flexDirection="column">
        {header}
        <Text> </Text>
        <Events events={vm.events} {...(vm.header.daemon !== undefined ? { daemon: vm.header.daemon } : {})} maxLines={Math.max(3, height - headerLines - 3)} />
        <Text> </Text>
        <StatusLine {...statusProps} />
      </Box>
    );
  }
  if (ui.mode === 'confirm-prune' && vm.prune) {
    // exactly what `xvbd apply --prune` would do now: every action, the letting-go ones first
    const prune = vm.prune.actions;
    const order = [...prune.filter((a) => a.sign !== '+'), ...prune.filter((a) => a.sign === '+')];
    const count = (k: string) => prune.filter((a) => a.kind === k).length;
    const letGo = `${count('detach')} to detach, ${count('replace')} to replace, ${count('free-loop')} loop device${count('free-loop') === 1 ? '' : 's'} to free`;
    return (
      <Box flexDirection="column">
        {header}
        <Text> </Text>
        <Text bold color="yellow" wrap="truncate-end">
          Apply with prune ({letGo}); data guard on, never --allow-data-loss:
        </Text>
        <PendingPlan actions={order} summary={vm.prune.summary} max={pruneRoom(headerLines, height)} title="With prune" offset={ui.scroll ?? 0} moreHint="j/k scroll" />
        <Text> </Text>
        <StatusLine {...statusProps} />
      </Box>
    );
  }
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

  // Line budget: header (3+) + gap + table header + rows + gap + findings + gap + plan + gap + status.
  // A short terminal (under 30 lines, e.g. 80x24) drops the gaps and keeps one finding and one
  // action, so the table keeps most of the screen.
  const compact = height < 30;
  const gap = compact ? 0 : 1;
  const logShown = applyLog.slice(compact ? -2 : -6);
  const findingLines = groupFindings(vm.findings).length;
  const findingsMax = Math.min(findingLines, compact ? 1 : Math.max(2, Math.floor(height / 6)));
  const actionsMax = Math.min(vm.actions.length, compact ? 1 : Math.max(2, Math.floor(height / 8)));
  const findingsLines = 1 + Math.max(1, findingsMax) + (findingLines > findingsMax ? 1 : 0);
  const planLines = 1 + Math.max(1, actionsMax) + (vm.actions.length > actionsMax ? 1 : 0) + 1;
  const logLines = logShown.length > 0 ? logShown.length + 1 + gap : 0;
  const notes: string[] = [];
  if (ui.filter) notes.push('those that need attention (f: all)');
  if (ui.query) notes.push(`matching "${ui.query}" (Esc: all)`);
  const filterNote = notes.length > 0 ? `showing ${rows.length} of ${vm.rows.length} disks: ${notes.join(', ')}` : undefined;
  const fixed = headerLines + gap + 1 + (filterNote ? 1 : 0) + gap + findingsLines + gap + planLines + logLines + gap + 1;
  const tableLines = Math.max(3, height - fixed);
  const spacer = gap ? <Text> </Text> : null;
  return (
    <Box flexDirection="column">
      {header}
      {spacer}
      <DiskTable
        rows={rows}
        selected={ui.selected}
        width={width}
        maxLines={tableLines}
        {...(filterNote ? { filterNote } : {})}
        {...(ui.sort ? { sort: ui.sort } : {})}
        {...(ui.query && rows.length === 0 ? { emptyNote: `No disk matches "${ui.query}".` } : {})}
      />
      {spacer}
      <Findings findings={vm.findings} max={findingsMax} />
      {spacer}
      <PendingPlan actions={vm.actions} summary={vm.summary} max={actionsMax} />
      {logShown.length > 0 ? (
        <Box flexDirection="column">
          {spacer}
          <Text bold>Last apply</Text>
          {logShown.map((l, i) => (
            <Text key={i} wrap="truncate-end" dimColor={i < logShown.length - 1}>
              {'  '}
              {l}
            </Text>
          ))}
        </Box>
      ) : null}
      {spacer}
      <StatusLine {...statusProps} />
    </Box>
  );
}
