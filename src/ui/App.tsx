// The interactive shell around TuiView: holds the UI state (selection, mode), turns keys into
// effects through the pure reducer, and calls the callbacks it is given. No I/O of its own:
// the data and the refresh/apply functions come from props (useLiveData in the real command).
import { useEffect, useRef, useState } from 'react';
import { useApp, useInput, useStdout } from 'ink';
import { helpLines, helpMaxScroll } from './components/Help.js';
import { headerLineCount, helpRoom, pruneRoom, TuiView } from './components/TuiView.js';
import { INITIAL_UI, reconcileSelection, reduceKey, splitKeys, type Effect, type UiState } from './keys.js';

/** The screen's lines (one is left for the cursor Ink leaves under the last). */
const viewHeight = (terminalRows: number) => Math.max(10, terminalRows - 1);

/** What decides the visible rows (f, /, sort). */
function viewSig(s: UiState): string {
  return JSON.stringify([Boolean(s.filter), s.query ?? '', s.sort ?? null]);
}
import { visibleRows, type ViewModel } from './viewmodel.js';

export interface AppProps {
  vm?: ViewModel;
  error?: string;
  refreshing?: boolean;
  applying?: boolean;
  applyLog?: string[];
  /** Undefined when no apply function is available ('a' and 'p' then say so); prune: the plan with prune. */
  onApply?: (opts?: { prune?: boolean }) => void;
  onRefresh: () => void;
  /** Called when the user quits (after Ink's exit). */
  onQuit?: () => void;
  /** Fixed size (tests); default: the terminal's, following resizes. */
  width?: number;
  height?: number;
}

function useTerminalSize(fixedW?: number, fixedH?: number): { width: number; height: number } {
  const { stdout } = useStdout();
  const read = () => ({ width: fixedW ?? (stdout.columns || 80), height: fixedH ?? (stdout.rows || 24) });
  const [size, setSize] = useState(read);
  useEffect(() => {
    if (fixedW !== undefined && fixedH !== undefined) return;
    const onResize = () => setSize(read());
    stdout.on('resize', onResize);
    return () => {
      stdout.off('resize', onResize);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [stdout, fixedW, fixedH]);
  return size;
}

// Long: the screen's state and key handling as one React component (its hooks share the refs); the key reducer is in keys.ts.
export function App(props: AppProps) {
  const { vm, error, refreshing = false, applying = false, applyLog, onApply, onRefresh, onQuit } = props;
  const { exit } = useApp();
  const { width, height } = useTerminalSize(props.width, props.height);
  const [ui, setUiState] = useState<UiState>(INITIAL_UI);
  // The reducer runs in the input handler against this ref, so an effect (an apply!) runs exactly once.
  const uiRef = useRef(ui);
  const setUi = (s: UiState) => {
    uiRef.current = s;
    setUiState(s);
  };
  const rowKeys = vm ? visibleRows(vm, ui).map((r) => r.key) : [];
  const rowKeysRef = useRef(rowKeys);
  rowKeysRef.current = rowKeys;

  // Keep the selection on the same disk when the rows change.
  const keysSig = rowKeys.join('\n');
  useEffect(() => {
    const next = reconcileSelection(uiRef.current, rowKeysRef.current);
    if (next !== uiRef.current) setUi(next);
  }, [keysSig]);

  // A confirmation is for the plan on screen when `a` was pressed: if the plan changes meanwhile
  // (a refresh), the question is withdrawn rather than applying something not reviewed.
  // (the same for the plan with prune, p)
  const confirming = ui.mode === 'confirm' || ui.mode === 'confirm-prune';
  const shownActions = ui.mode === 'confirm-prune' ? vm?.prune?.actions : vm?.actions;
  const actionsSig = `${ui.mode}\n${(shownActions ?? []).map((a) => `${a.sign} ${a.summary} ${a.reason ?? ''}`).join('\n')}`;
  const confirmedSig = useRef<string | undefined>(undefined);
  if (confirming && confirmedSig.current === undefined) confirmedSig.current = actionsSig;
  if (!confirming) confirmedSig.current = undefined;
  useEffect(() => {
    const m = uiRef.current.mode;
    if ((m === 'confirm' || m === 'confirm-prune') && confirmedSig.current !== undefined && confirmedSig.current !== actionsSig) {
      confirmedSig.current = undefined;
      setUi({ ...uiRef.current, mode: 'list', message: 'The plan changed while you were confirming: review it and press a again.' });
    }
  }, [actionsSig]);

  // Keep the latest props for the input handler.
  const latest = useRef({ vm, error, applying, onApply, onRefresh, onQuit, height });
  latest.current = { vm, error, applying, onApply, onRefresh, onQuit, height };

  useInput((rawInput, rawKey) => {
    let applyStarted = false;
    for (const { input, key } of splitKeys(rawInput, rawKey)) {
      const l = latest.current;
      const { state, effect } = reduceKey(uiRef.current, input, key, {
        rowKeys: rowKeysRef.current,
        actionCount: l.vm?.actions.length ?? 0,
        ...(l.vm?.prune ? { pruneActionCount: l.vm.prune.actions.length } : {}),
        canApply: l.onApply !== undefined,
        // an apply started by an earlier key of this same chunk counts too
        applying: l.applying || applyStarted,
        pageSize: Math.max(1, l.height - 20),
        pruneMaxScroll: Math.max(0, (l.vm?.prune?.actions.length ?? 0) - pruneRoom(headerLineCount(l.vm, l.error), viewHeight(l.height))),
        helpMaxScroll: helpMaxScroll(helpLines(l.onApply !== undefined).length, helpRoom(headerLineCount(l.vm, l.error), viewHeight(l.height))),
      });
      let next = state;
      if (l.vm && viewSig(next) !== viewSig(uiRef.current)) {
        // f, / or a sort: the visible rows change now; keep the same disk selected (or the nearest).
        rowKeysRef.current = visibleRows(l.vm, next).map((r) => r.key);
        next = reconcileSelection(next, rowKeysRef.current);
      }
      if (next !== uiRef.current) setUi(next);
      if (effect === 'apply' || effect === 'apply-prune') applyStarted = true;
      if (effect !== 'none') runEffect(effect);
      if (effect === 'quit') break;
    }
  });

  function runEffect(effect: Exclude<Effect, 'none'>) {
    const l = latest.current;
    if (effect === 'refresh') l.onRefresh();
    else if (effect === 'apply') l.onApply?.();
    else if (effect === 'apply-prune') l.onApply?.({ prune: true });
    else {
      exit();
      l.onQuit?.();
    }
  }

  const activity = applying ? 'applying…' : refreshing ? 'refreshing…' : undefined;
  return (
    <TuiView
      {...(vm ? { vm } : {})}
      ui={ui}
      width={width}
      height={viewHeight(height)}
      canApply={onApply !== undefined}
      {...(activity ? { activity } : {})}
      {...(error !== undefined ? { error } : {})}
      {...(applyLog ? { applyLog } : {})}
    />
  );
}
