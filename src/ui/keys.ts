// Key handling as a pure reducer: (UI state, key) -> (new UI state, effect). The App component
// feeds it Ink's useInput events and performs the effect; the table tests feed it directly.
// Every key is one row of BINDINGS: the reducer dispatches through it and the help screen (?) and
// the status line are generated from it, so neither can describe a key that does something else.

/**
 * list: the disk table; details: one disk; help: the key table; events: the daemon's passes and the
 * hook's requests; filter: typing a `/` filter; command: typing a `:` command;
 * confirm: y/n for the pending plan; confirm-prune: y/n for the plan with prune.
 */
export type Mode = 'list' | 'details' | 'help' | 'events' | 'filter' | 'command' | 'confirm' | 'confirm-prune';

/** The columns the table sorts by (shift-letter, as k9s). */
export type SortCol = 'domain' | 'source' | 'sync' | 'health' | 'loop';

export interface SortSpec {
  col: SortCol;
  /** Reversed (the same key pressed again). */
  desc?: boolean;
}

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
  /** Show only the disks whose text contains this (`/`, case-insensitive). */
  query?: string;
  /** The table's order (default: the plan's, by domain then devid). */
  sort?: SortSpec;
  /** The mode help, the events or the filter prompt return to. */
  back?: 'list' | 'details';
  /** The `:` command being typed. */
  command?: string;
  /** The help's first line shown (j/k). */
  scroll?: number;
}

export type Effect = 'none' | 'refresh' | 'apply' | 'apply-prune' | 'quit';

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
  /** Ink reports the Backspace key of most terminals (DEL, 0x7f) as delete. */
  delete?: boolean;
  leftArrow?: boolean;
  ctrl?: boolean;
}

export interface KeyContext {
  /** Keys of the rows, in order. */
  rowKeys: string[];
  /** How many actions the pending plan has. */
  actionCount: number;
  /** How many actions the plan with prune has; undefined when there is no such plan (no config). */
  pruneActionCount?: number;
  /** An apply function is available. */
  canApply: boolean;
  /** An apply is running now. */
  applying: boolean;
  /** Rows visible at once (page size for PgUp/PgDn). */
  pageSize: number;
  /** How far the help scrolls (0: it fits). */
  helpMaxScroll?: number;
  /** How far the prune confirmation's list scrolls (0: it fits). */
  pruneMaxScroll?: number;
}

export const INITIAL_UI: UiState = { mode: 'list', selected: 0 };

type Result = { state: UiState; effect: Effect };

export interface Binding {
  /** The key(s) as the help shows them. */
  keys: string;
  /** What it does, one line. */
  does: string;
  modes: readonly Mode[];
  /** Its short form on the status line, in these modes. */
  hint?: string;
  match(input: string, key: KeyInfo): boolean;
  /** `base` is `state` without its message (any key clears it). */
  run(state: UiState, base: UiState, ctx: KeyContext, input: string, key: KeyInfo): Result;
}

const none = (s: UiState): Result => ({ state: s, effect: 'none' });
const NAV: readonly Mode[] = ['list', 'details'];
const CONFIRMS: readonly Mode[] = ['confirm', 'confirm-prune'];
const isBack = (key: KeyInfo) => Boolean(key.backspace || key.delete);

function select(base: UiState, index: number, ctx: KeyContext): UiState {
  const n = ctx.rowKeys.length;
  const i = n === 0 ? 0 : Math.max(0, Math.min(n - 1, index));
  const next: UiState = { ...base, selected: i };
  const k = ctx.rowKeys[i];
  if (k !== undefined) next.selectedKey = k;
  else delete next.selectedKey;
  return next;
}

function sortBinding(letter: string, col: SortCol, title: string): Binding {
  return {
    keys: letter,
    does: `sort by ${title} (again: reversed)`,
    modes: ['list'],
    match: (i) => i === letter,
    run: (s, b) => {
      const next: UiState = { ...b, sort: s.sort?.col === col && !s.sort.desc ? { col, desc: true } : { col } };
      // the default order, not reversed: no sort at all
      if (col === 'domain' && s.sort?.col === 'domain' && s.sort.desc) delete next.sort;
      return none(next);
    },
  };
}

// the : prompt (k9s): a command names a view, or quits
/** The `:` commands: names (the first is shown), what it does, the mode it goes to or quit. */
export const COMMANDS: readonly { names: string[]; does: string; to: Mode | 'quit' }[] = [
  { names: ['disks', 'dsk', 'table'], does: 'the disk table', to: 'list' },
  { names: ['events', 'ev'], does: "the daemon's events", to: 'events' },
  { names: ['help', '?'], does: 'the help', to: 'help' },
  { names: ['quit', 'q'], does: 'quit', to: 'quit' },
];

function runCommand(s: UiState, b: UiState, ctx: KeyContext): Result {
  const text = (s.command ?? '').trim();
  const next: UiState = { ...b, mode: 'list' };
  delete next.command;
  delete next.back;
  if (text === '') return none(next);
  const c = COMMANDS.find((x) => x.names.includes(text.toLowerCase()));
  if (!c) return none({ ...next, message: `Unknown command :${text} (${COMMANDS.map((x) => `:${x.names[0]}`).join(' ')}).` });
  if (c.to === 'quit') return ctx.applying ? none({ ...next, message: 'An apply is running: wait for it to finish, then quit.' }) : { state: next, effect: 'quit' };
  return none(c.to === 'help' || c.to === 'events' ? { ...next, mode: c.to, back: 'list' } : { ...next, mode: c.to });
}

const COMMAND_BINDINGS: readonly Binding[] = [
  { keys: 'Enter', does: 'run the command', modes: ['command'], match: (_i, k) => Boolean(k.return), run: (s, b, ctx) => runCommand(s, b, ctx) },
  {
    keys: 'Esc',
    does: 'cancel',
    modes: ['command'],
    match: (_i, k) => Boolean(k.escape),
    run: (s, b) => {
      const next: UiState = { ...b, mode: s.back ?? 'list' };
      delete next.command;
      delete next.back;
      return none(next);
    },
  },
  { keys: 'Backspace', does: 'delete the last character', modes: ['command'], match: (_i, k) => isBack(k), run: (s, b) => none({ ...b, command: (s.command ?? '').slice(0, -1) }) },
  {
    keys: 'any character',
    does: `type the command: ${COMMANDS.map((c) => `:${c.names.join(' :')} ${c.does}`).join(', ')}`,
    modes: ['command'],
    // eslint-disable-next-line no-control-regex
    match: (i, k) => !k.ctrl && /^[^\u0000-\u001f\u007f-\u009f]+$/.test(i),
    run: (s, b, _c, i) => none({ ...b, command: (s.command ?? '') + i }),
  },
];

/** What each key does, in each mode; the help screen lists exactly this. */
export const BINDINGS: readonly Binding[] = [
  ...COMMAND_BINDINGS,
  // the confirmations take y/n only: any other key repeats the question
  {
    keys: 'y',
    does: 'yes: apply what is shown',
    modes: CONFIRMS,
    match: (i) => i === 'y' || i === 'Y',
    run: (s, b, ctx) => {
      const prune = s.mode === 'confirm-prune';
      const count = prune ? (ctx.pruneActionCount ?? 0) : ctx.actionCount;
      const next: UiState = { ...b, mode: 'list' };
      delete next.scroll;
      if (count === 0) return none({ ...next, message: 'Nothing to apply any more: the plan changed.' });
      return { state: next, effect: prune ? 'apply-prune' : 'apply' };
    },
  },
  {
    keys: 'n Esc q',
    does: 'no: cancel',
    modes: CONFIRMS,
    match: (i, k) => i === 'n' || i === 'N' || i === 'q' || Boolean(k.escape),
    run: (_s, b) => {
      const next: UiState = { ...b, mode: 'list', message: 'Apply cancelled.' };
      delete next.scroll;
      return none(next);
    },
  },
  {
    keys: '↑ ↓ k j',
    does: 'scroll the actions with prune (every one is shown before y)',
    modes: ['confirm-prune'],
    match: (i, k) => Boolean(k.upArrow || k.downArrow) || i === 'k' || i === 'j',
    run: (s, b, ctx, i, k) => {
      const max = ctx.pruneMaxScroll ?? 0;
      return none({ ...b, scroll: Math.max(0, Math.min(max, (s.scroll ?? 0) + (k.upArrow || i === 'k' ? -1 : 1))) });
    },
  },
  // the filter prompt: typing edits the text (the table follows), Enter keeps it, Esc drops it
  {
    keys: 'Enter',
    does: 'keep the filter and go back to the table',
    modes: ['filter'],
    match: (_i, k) => Boolean(k.return),
    run: (s, b) => {
      const next: UiState = { ...b, mode: s.back ?? 'list' };
      delete next.back;
      if (!next.query) delete next.query;
      return none(next);
    },
  },
  {
    keys: 'Esc',
    does: 'clear the filter and go back',
    modes: ['filter'],
    match: (_i, k) => Boolean(k.escape),
    run: (s, b) => {
      const next: UiState = { ...b, mode: s.back ?? 'list' };
      delete next.back;
      delete next.query;
      return none(next);
    },
  },
  {
    keys: 'Backspace',
    does: 'delete the last character',
    modes: ['filter'],
    match: (_i, k) => isBack(k),
    run: (s, b) => none({ ...b, query: (s.query ?? '').slice(0, -1) }),
  },
  {
    keys: 'any character',
    does: 'add it to the filter (domain, vdev, source, loop, sync, health, reason)',
    modes: ['filter'],
    // eslint-disable-next-line no-control-regex
    match: (i, k) => !k.ctrl && /^[^\u0000-\u001f\u007f-\u009f]+$/.test(i),
    run: (s, b, _c, i) => none({ ...b, query: (s.query ?? '') + i }),
  },
  // help
  {
    keys: '? Esc q',
    does: 'close the help',
    modes: ['help'],
    match: (i, k) => i === '?' || i === 'q' || Boolean(k.escape) || Boolean(k.return),
    run: (s, b) => {
      const next: UiState = { ...b, mode: s.back ?? 'list' };
      delete next.back;
      delete next.scroll;
      return none(next);
    },
  },
  {
    keys: '↑ ↓ k j',
    does: 'scroll the help',
    modes: ['help'],
    match: (i, k) => Boolean(k.upArrow || k.downArrow) || i === 'k' || i === 'j',
    run: (s, b, ctx, i, k) => {
      const max = ctx.helpMaxScroll ?? 0;
      const to = Math.max(0, Math.min(max, (s.scroll ?? 0) + (k.upArrow || i === 'k' ? -1 : 1)));
      return none({ ...b, scroll: to });
    },
  },
  // the daemon's events
  {
    keys: 'e Esc q',
    does: 'close the events',
    modes: ['events'],
    match: (i, k) => i === 'e' || i === 'q' || Boolean(k.escape) || Boolean(k.return),
    run: (s, b) => {
      const next: UiState = { ...b, mode: s.back ?? 'list' };
      delete next.back;
      return none(next);
    },
  },
  // the table and the details
  {
    keys: '↑ ↓ k j',
    does: 'select the previous / next disk',
    modes: NAV,
    match: (i, k) => Boolean(k.upArrow || k.downArrow) || i === 'k' || i === 'j',
    run: (s, b, ctx, i, k) => none(select(b, s.selected + (k.upArrow || i === 'k' ? -1 : 1), ctx)),
  },
  {
    keys: 'PgUp PgDn',
    does: 'a page up / down',
    modes: NAV,
    match: (_i, k) => Boolean(k.pageUp || k.pageDown),
    run: (s, b, ctx, _i, k) => none(select(b, s.selected + (k.pageUp ? -1 : 1) * Math.max(1, ctx.pageSize), ctx)),
  },
  {
    keys: 'g Home',
    does: 'the first disk',
    modes: NAV,
    match: (i, k) => Boolean(k.home) || i === 'g',
    run: (_s, b, ctx) => none(select(b, 0, ctx)),
  },
  {
    keys: 'G End',
    does: 'the last disk',
    modes: NAV,
    match: (i, k) => Boolean(k.end) || i === 'G',
    run: (_s, b, ctx) => none(select(b, ctx.rowKeys.length - 1, ctx)),
  },
  {
    keys: 'Enter',
    does: "show the selected disk's details",
    modes: ['list'],
    hint: 'Enter details',
    match: (_i, k) => Boolean(k.return),
    run: (_s, b, ctx) => (ctx.rowKeys.length === 0 ? none({ ...b, message: 'No disk to show.' }) : none({ ...b, mode: 'details' })),
  },
  {
    keys: 'Esc Enter ←',
    does: 'back to the table',
    modes: ['details'],
    hint: 'Esc back',
    match: (_i, k) => Boolean(k.escape || k.return || k.leftArrow || isBack(k)),
    run: (_s, b) => none({ ...b, mode: 'list' }),
  },
  {
    keys: 'Esc',
    does: 'clear the / filter',
    modes: ['list'],
    match: (_i, k) => Boolean(k.escape),
    run: (s, b) => {
      if (s.query === undefined) return none(b);
      const next: UiState = { ...b };
      delete next.query;
      return none(next);
    },
  },
  {
    keys: '/',
    does: 'filter the disks by text (Enter keeps it, Esc clears it)',
    modes: NAV,
    hint: '/ filter',
    match: (i) => i === '/',
    run: (s, b) => none({ ...b, mode: 'filter', back: 'list', query: s.query ?? '' }),
  },
  {
    keys: 'f',
    does: 'only the disks that need attention (again: all)',
    modes: NAV,
    match: (i) => i === 'f',
    run: (s, b) => {
      // The row set changes: the App re-finds the selected disk (reconcileSelection) by its key.
      const next: UiState = { ...b };
      if (s.filter) delete next.filter;
      else next.filter = true;
      return none(next);
    },
  },
  sortBinding('N', 'domain', 'domain and vdev'),
  sortBinding('O', 'source', 'source'),
  sortBinding('S', 'sync', 'sync (out of sync first)'),
  sortBinding('H', 'health', 'health (degraded first)'),
  sortBinding('L', 'loop', 'loop device'),
  {
    keys: 'a',
    does: 'apply the pending plan (after y/n)',
    modes: NAV,
    hint: 'a apply',
    match: (i) => i === 'a',
    run: (_s, b, ctx) => {
      if (!ctx.canApply) return none({ ...b, message: 'Apply is not available here.' });
      if (ctx.applying) return none({ ...b, message: 'An apply is already running.' });
      if (ctx.actionCount === 0) {
        const p = ctx.pruneActionCount ?? 0;
        return none({ ...b, message: p > 0 ? `Nothing to apply: the plan is empty. With prune: ${p === 1 ? '1 action' : `${p} actions`} (p shows them).` : 'Nothing to apply: the plan is empty.' });
      }
      return none({ ...b, mode: 'confirm' });
    },
  },
  {
    keys: 'p',
    does: 'apply with prune: detach, replace, free what the config no longer wants (shows exactly what, then y/n; never --allow-data-loss)',
    modes: NAV,
    hint: 'p prune',
    match: (i) => i === 'p',
    run: (_s, b, ctx) => {
      if (!ctx.canApply) return none({ ...b, message: 'Apply is not available here.' });
      if (ctx.applying) return none({ ...b, message: 'An apply is already running.' });
      if (ctx.pruneActionCount === undefined) return none({ ...b, message: 'Nothing to prune against: no valid config yet.' });
      if (ctx.pruneActionCount === 0) return none({ ...b, message: 'Nothing to apply, even with prune.' });
      return none({ ...b, mode: 'confirm-prune', scroll: 0 });
    },
  },
  {
    keys: 'e',
    does: "the daemon's events: its last passes and their steps, the hook's serve/release requests",
    modes: NAV,
    hint: 'e events',
    match: (i) => i === 'e',
    run: (s, b) => none({ ...b, mode: 'events', back: s.mode === 'details' ? 'details' : 'list' }),
  },
  {
    keys: 'r',
    does: 'refresh now',
    modes: NAV,
    hint: 'r refresh',
    match: (i) => i === 'r',
    run: (_s, b) => ({ state: b, effect: 'refresh' }),
  },
  {
    keys: ':',
    does: 'a command (k9s): :disks, :events, :help, :quit',
    modes: NAV,
    match: (i) => i === ':',
    run: (s, b) => none({ ...b, mode: 'command', command: '', back: s.mode === 'details' ? 'details' : 'list' }),
  },
  {
    keys: '?',
    does: 'this help',
    modes: NAV,
    hint: '? help',
    match: (i) => i === '?',
    run: (s, b) => none({ ...b, mode: 'help', back: s.mode === 'details' ? 'details' : 'list' }),
  },
  {
    keys: 'q Ctrl-C',
    does: 'quit',
    modes: NAV,
    hint: 'q quit',
    match: (i) => i === 'q',
    run: (_s, b, ctx) => (ctx.applying ? none({ ...b, message: 'An apply is running: wait for it to finish, then press q.' }) : { state: b, effect: 'quit' }),
  },
];

/** Readable name of a key nobody binds (for the "unknown key" message). */
function keyName(input: string, key: KeyInfo): string {
  if (key.ctrl && input) return `Ctrl-${input}`;
  if (key.leftArrow) return '←';
  if (key.escape) return 'Esc';
  if (key.return) return 'Enter';
  if (isBack(key)) return 'Backspace';
  return input === ' ' ? 'Space' : input;
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

export function reduceKey(state: UiState, input: string, key: KeyInfo, ctx: KeyContext): Result {
  // Any key clears the previous one-line message.
  const base: UiState = { ...state };
  delete base.message;
  const b = BINDINGS.find((x) => x.modes.includes(state.mode) && x.match(input, key));
  if (b) return b.run(state, base, ctx, input, key);
  // Unbound: say so (never silently), and what to press instead.
  if (state.mode === 'confirm' || state.mode === 'confirm-prune') {
    return none({ ...state, message: `${state.mode === 'confirm' ? 'Apply the plan' : 'Apply with prune'}? Press y or n.` });
  }
  if (state.mode === 'help') return none({ ...base, message: 'Esc, ? or q closes the help.' });
  if (state.mode === 'events') return none({ ...base, message: 'Esc, e or q closes the events.' });
  const name = keyName(input, key);
  if (!name) return none(base);
  return none({ ...base, message: `Key ${name} does nothing here: ? lists the keys.` });
}

/** The status line's key hints for a mode, from BINDINGS. */
export function hints(mode: Mode, canApply: boolean): string {
  // `? help` first: a narrow terminal cuts the end of the line
  const shown = BINDINGS.filter((b) => b.hint !== undefined && b.modes.includes(mode) && (canApply || !/^[ap] /.test(b.hint)));
  return [...shown.filter((b) => b.keys === '?'), ...shown.filter((b) => b.keys !== '?')]
    .map((b) => b.hint)
    .join('  ');
}

/** The help screen's sections: [title, [keys, does][]], from BINDINGS. */
export function helpSections(canApply: boolean): [string, [string, string][]][] {
  const sections: [string, Mode][] = [
    ['Disk table', 'list'],
    ['Details of one disk', 'details'],
    ['Daemon events', 'events'],
    ['Typing a / filter', 'filter'],
    ['Typing a : command', 'command'],
    ['Confirming an apply (a, p)', 'confirm-prune'],
    ['Help', 'help'],
  ];
  // without apply (--no-apply) there is nothing to confirm
  return sections.filter(([, mode]) => canApply || mode !== 'confirm-prune').map(([title, mode]) => [
    title,
    BINDINGS.filter((b) => b.modes.includes(mode) && (canApply || !(b.keys === 'a' || b.keys === 'p'))).map((b) => [b.keys, b.does] as [string, string]),
  ]);
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
