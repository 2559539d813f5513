import { Box, Text } from 'ink';
import type { SortCol, SortSpec } from '../keys.js';
import type { DiskRowVM } from '../viewmodel.js';
import { fit, fitLeft } from './text.js';

export interface DiskTableProps {
  rows: DiskRowVM[];
  selected: number;
  /** Terminal width. */
  width: number;
  /** At most this many lines for the rows (the window scrolls to keep the selected row visible). */
  maxLines: number;
  /** A line under the table header (e.g. what the filter hides). */
  filterNote?: string;
  /** The order the rows are in (its column title gets an arrow). */
  sort?: SortSpec;
  /** Why there are no rows when there are none. */
  emptyNote?: string;
}

// Fixed columns; SOURCE takes what is left. On a narrow terminal the columns with the lowest
// priority go first (the details view still has everything).
const W = { mark: 2, domain: 12, vdev: 6, mode: 3, sync: 11, health: 11, loop: 7, diskseq: 7, shared: 3, be: 9, fe: 9, pending: 4 };
type Col = keyof typeof W | 'source';
const ALL_COLS: Col[] = ['mark', 'domain', 'vdev', 'source', 'mode', 'sync', 'health', 'loop', 'diskseq', 'shared', 'be', 'fe', 'pending'];
/**
 * Dropped in this order while SOURCE would be narrower than MIN_SOURCE: the states (in the details)
 * before RW, so 80 columns keep RW.
 */
const DROP_ORDER: Col[] = ['diskseq', 'shared', 'fe', 'be', 'mode'];
const MIN_SOURCE = 16;

/** What the columns' short values mean (the help shows it). */
export const PLAN_LEGEND = [
  'PLAN  the pending action on the disk: + attach (or serve), - detach, ~ replace',
  'SHR   how many disks share its loop device',
  'RW    rw read-write, ro read-only',
  'BACKEND/FRONTEND  xenbus states: 1 Init 2 Wait 3 Inited 4 Conn 5 Closing 6 Closed',
];

function fixedWidth(cols: Col[]): number {
  let w = 0;
  for (const c of cols) if (c !== 'source') w += W[c];
  return w + cols.length - 1; /* one space between columns */
}

/** The columns shown at this width, and the SOURCE column's width. */
export function layout(width: number): { cols: Col[]; source: number } {
  let cols = ALL_COLS;
  for (const drop of DROP_ORDER) {
    if (width - fixedWidth(cols) >= MIN_SOURCE) break;
    cols = cols.filter((c) => c !== drop);
  }
  return { cols, source: Math.max(10, width - fixedWidth(cols)) };
}

export function sourceWidth(width: number): number {
  return layout(width).source;
}

/** The short state names the table uses (details spell them out). */
const SHORT_STATE: Record<string, string> = {
  '0': '0 Unkn',
  '1': '1 Init',
  '2': '2 Wait',
  '3': '3 Inited',
  '4': '4 Conn',
  '5': '5 Closing',
  '6': '6 Closed',
  '7': '7 Reconf',
  '8': '8 Reconfd',
};
function shortState(label: string): string {
  const n = label.split(' ')[0] ?? '-';
  return SHORT_STATE[n] ?? label;
}

/** First visible row so that `selected` is inside a window of `size` rows. */
export function windowStart(selected: number, count: number, size: number): number {
  if (count <= size) return 0;
  const half = Math.floor(size / 2);
  return Math.max(0, Math.min(count - size, selected - half));
}

const TITLES: Record<Col, string> = {
  mark: '',
  domain: 'DOMAIN',
  vdev: 'VDEV',
  source: 'SOURCE',
  mode: 'RW',
  sync: 'SYNC',
  health: 'HEALTH',
  loop: 'LOOP',
  diskseq: 'DISKSEQ',
  shared: 'SHR',
  be: 'BACKEND',
  fe: 'FRONTEND',
  pending: 'PLAN',
};

const SORT_COL: Record<SortCol, Col> = { domain: 'domain', source: 'source', sync: 'sync', health: 'health', loop: 'loop' };

export function headerLine(width: number, sort?: SortSpec): string {
  const { cols, source } = layout(width);
  const title = (c: Col) => (sort && SORT_COL[sort.col] === c ? `${TITLES[c]}${sort.desc ? '↑' : '↓'}` : TITLES[c]);
  return cols.map((c) => (c === 'source' ? fit(title(c), source) : c === 'mark' ? fit('', W.mark - 1) : fit(title(c), W[c]))).join(' ').trimEnd();
}

export function rowLine(r: DiskRowVM, selected: boolean, width: number, showDomain = r.firstOfDomain): string {
  const { cols, source } = layout(width);
  const cell = (c: Col): string => {
    switch (c) {
      case 'mark':
        return fit(selected ? '>' : '', W.mark - 1);
      case 'domain':
        return fit(showDomain ? r.domain : '', W.domain);
      case 'vdev':
        return fit(r.vdev, W.vdev);
      case 'source':
        return fitLeft(r.source, source);
      case 'mode':
        return fit(r.mode, W.mode);
      case 'sync':
        return fit(r.sync, W.sync);
      case 'health':
        return fit(r.health, W.health);
      case 'loop':
        return fit(r.loop, W.loop);
      case 'diskseq':
        return fit(r.diskseq, W.diskseq);
      case 'shared':
        return fit(r.sharedBy > 1 ? String(r.sharedBy) : r.loop === '-' ? '-' : '1', W.shared);
      case 'be':
        return fit(shortState(r.backendState), W.be);
      case 'fe':
        return fit(shortState(r.frontendState), W.fe);
      case 'pending':
        return fit(r.pending ?? '', W.pending);
    }
  };
  return cols.map(cell).join(' ').trimEnd();
}

/** The reason gets a line of its own when something is wrong or moving (missing rows have the plan's + and the findings). */
function hasReason(r: DiskRowVM): boolean {
  return r.healthReason !== undefined && (r.health === 'degraded' || r.health === 'progressing');
}

/** Lines a row takes: one, plus one for its reason. */
function rowLines(r: DiskRowVM): number {
  return hasReason(r) ? 2 : 1;
}

/**
 * The window of rows to show: contains `selected`, fits in `maxLines` lines including the
 * "↑ n more" / "↓ n more" markers. Returns [start, end).
 */
export function tableWindow(rows: DiskRowVM[], selected: number, maxLines: number): [number, number] {
  const total = rows.reduce((a, r) => a + rowLines(r), 0);
  if (total <= maxLines) return [0, rows.length];
  const sel = Math.max(0, Math.min(rows.length - 1, selected));
  for (let size = Math.max(1, maxLines); size >= 1; size--) {
    const start = windowStart(sel, rows.length, size);
    const end = Math.min(rows.length, start + size);
    let lines = (start > 0 ? 1 : 0) + (end < rows.length ? 1 : 0);
    for (let i = start; i < end; i++) lines += rowLines(rows[i]!);
    if (lines <= maxLines) return [start, end];
  }
  return [sel, sel + 1];
}

export function DiskTable({ rows, selected, width, maxLines, filterNote, sort, emptyNote }: DiskTableProps) {
  const note = filterNote ? (
    <Text color="cyan" wrap="truncate-end">
      {'  '}
      {filterNote}
    </Text>
  ) : null;
  if (rows.length === 0) {
    return (
      <Box flexDirection="column">
        <Text bold>{headerLine(width, sort)}</Text>
        {note}
        <Text dimColor>
          {'  '}
          {emptyNote ?? (filterNote ? 'Nothing needs attention: every disk is healthy and in sync.' : 'No disks: the config desires none and no backend of ours exists.')}
        </Text>
      </Box>
    );
  }
  const [start, end] = tableWindow(rows, selected, maxLines);
  const shown = rows.slice(start, end);
  const reasonIndent = W.mark + W.domain + W.vdev + 1;
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate-end">{headerLine(width, sort)}</Text>
      {note}
      {start > 0 ? <Text dimColor>  ↑ {start} more</Text> : null}
      {shown.map((r, i) => {
        const isSel = start + i === selected;
        const showReason = hasReason(r);
        return (
          <Box key={r.key} flexDirection="column">
            <Text color={r.tone} inverse={isSel} bold={isSel} wrap="truncate-end">
              {rowLine(r, isSel, width, i === 0 || shown[i - 1]!.domain !== r.domain)}
            </Text>
            {showReason ? (
              <Text color={r.tone} wrap="truncate-end">
                {' '.repeat(reasonIndent)}↳ {r.health}: {r.healthReason}
                {r.findingCount > 0 ? ` (${r.findingCount} finding${r.findingCount === 1 ? '' : 's'})` : ''}
              </Text>
            ) : null}
          </Box>
        );
      })}
      {start + shown.length < rows.length ? <Text dimColor>  ↓ {rows.length - start - shown.length} more</Text> : null}
    </Box>
  );
}
