// Key handling as a pure reducer: (UI state, key) -> (new UI state, effect). The App component
// feeds it Ink's useInput events and performs the effect; the table tests feed it directly.

export type Mode = 'list' | 'details' | 'confirm';

export interface UiState {
  mode: Mode;
  /** Index of the selected row (clamped to the rows shown). */
  selected: number;
  /** Key of the selected row, so the selection follows its disk across refreshes. */
  selectedKey?: string;
  /** A one-line message for the status line ("nothing to apply", ...). */
  message?: string;
  /** Show only the disks that need attention (f toggles). */
  filter?: boolean;
}

export type Effect = 'none' | 'refresh' | 'apply' | 'quit';

/** The subset of Ink's Key we look at (so tests need not build the whole object). */
export interface KeyInfo {
  upArrow?: boolean;
  downArrow?: boolean;
  pageUp?: boolean;
  pageDown?: boolean;
  home?: boolean;
  end?: boolean;
  return?: boolean;
  escape?: boolean;
  backspace?: boolean;
  leftArrow?: boolean;
  ctrl?: boolean;
}

export interface KeyContext {
  /** Keys of the rows, in order. */
  rowKeys: string[];
  /** How many actions the pending plan has. */
  actionCount: number;
  /** An apply function is available. */
  canApply: boolean;
  /** An apply is running now. */
  applying: boolean;
  /** Rows visible at once (page size for PgUp/PgDn). */
  pageSize: number;
}

export const INITIAL_UI: UiState = { mode: 'list', selected: 0 };

function select(state: UiState, index: number, ctx: KeyContext): UiState {
  const n = ctx.rowKeys.length;
  const i = n === 0 ? 0 : Math.max(0, Math.min(n - 1, index));
  const next: UiState = { mode: state.mode, selected: i };
  if (state.filter) next.filter = true;
  const k = ctx.rowKeys[i];
  if (k !== undefined) next.selectedKey = k;
  return next;
}

/** Re-finds the selected row after the rows changed (a refresh): by key, else the same index clamped. */
export function reconcileSelection(state: UiState, rowKeys: string[]): UiState {
  let i = state.selectedKey !== undefined ? rowKeys.indexOf(state.selectedKey) : -1;
  if (i < 0) i = Math.max(0, Math.min(rowKeys.length - 1, state.selected));
  const next: UiState = { ...state, selected: i };
  const k = rowKeys[i];
  if (k !== undefined) next.selectedKey = k;
  else delete next.selectedKey;
  if (next.mode === 'details' && k === undefined) next.mode = 'list';
  if (i === state.selected && next.selectedKey === state.selectedKey && next.mode === state.mode) return state;
  return next;
}

export function reduceKey(state: UiState, input: string, key: KeyInfo, ctx: KeyContext): { state: UiState; effect: Effect } {
  const none = (s: UiState) => ({ state: s, effect: 'none' as const });
  // Any key clears the previous one-line message.
  const base: UiState = { ...state };
  delete base.message;

  if (state.mode === 'confirm') {
    if (input === 'y' || input === 'Y') {
      if (ctx.actionCount === 0) return none({ ...base, mode: 'list', message: 'Nothing to apply any more: the plan changed.' });
      return { state: { ...base, mode: 'list' }, effect: 'apply' };
    }
    if (input === 'n' || input === 'N' || input === 'q' || key.escape) return none({ ...base, mode: 'list', message: 'Apply cancelled.' });
    return none({ ...state, message: 'Apply the plan? Press y or n.' });
  }

  if (input === 'q') {
    if (ctx.applying) return none({ ...base, message: 'An apply is running: wait for it to finish, then press q.' });
    return { state: base, effect: 'quit' };
  }
  if (input === 'r') return { state: base, effect: 'refresh' };
  if (input === 'f') {
    // The row set changes: the App re-finds the selected disk (reconcileSelection) by its key.
    const next: UiState = { ...base, mode: state.mode === 'details' ? 'details' : 'list' };
    if (state.filter) delete next.filter;
    else next.filter = true;
    return none(next);
  }

  const move = (delta: number) => none({ ...select(base, state.selected + delta, ctx), mode: state.mode });
  if (key.upArrow || input === 'k') return move(-1);
  if (key.downArrow || input === 'j') return move(1);
  if (key.pageUp) return move(-Math.max(1, ctx.pageSize));
  if (key.pageDown) return move(Math.max(1, ctx.pageSize));
  if (key.home || input === 'g') return none({ ...select(base, 0, ctx), mode: state.mode });
  if (key.end || input === 'G') return none({ ...select(base, ctx.rowKeys.length - 1, ctx), mode: state.mode });

  if (state.mode === 'details') {
    if (key.escape || key.return || key.backspace || key.leftArrow) return none({ ...base, mode: 'list' });
  } else if (key.return) {
    if (ctx.rowKeys.length === 0) return none({ ...base, message: 'No disk to show.' });
    return none({ ...base, mode: 'details' });
  }

  if (input === 'a') {
    if (!ctx.canApply) return none({ ...base, message: 'Apply is not available here.' });
    if (ctx.applying) return none({ ...base, message: 'An apply is already running.' });
    if (ctx.actionCount === 0) return none({ ...base, message: 'Nothing to apply: the plan is empty.' });
    return none({ ...base, mode: 'confirm' });
  }
  return none(state);
}

/**
 * Ink delivers a run of plain characters that arrived in one read (fast typing, key repeat, a paste,
 * tmux send-keys) as ONE input "jjj\r". Splits it into single keys so each one acts; a lone key or
 * an escape sequence passes through unchanged.
 */
export function splitKeys(input: string, key: KeyInfo): { input: string; key: KeyInfo }[] {
  const special = key.upArrow || key.downArrow || key.pageUp || key.pageDown || key.home || key.end || key.escape || key.leftArrow;
  if (special || input.length <= 1 || input.includes('\u001b')) return [{ input, key }];
  const out: { input: string; key: KeyInfo }[] = [];
  for (const ch of input) {
    if (ch === '\r' || ch === '\n') out.push({ input: '', key: { return: true } });
    else if (ch === '\u007f' || ch === '\b') out.push({ input: '', key: { backspace: true } });
    else out.push({ input: ch, key: {} });
  }
  return out;
}
