// The interactive shell around TuiView: holds the UI state (selection, mode), turns keys into
// effects through the pure reducer, and calls the callbacks it is given. No I/O of its own:
// the data and the refresh/apply functions come from props (useLiveData in the real command).
import { useEffect, useRef, useState } from 'react';
import { useApp, useInput, useStdout } from 'ink';
import { TuiView } from './components/TuiView.js';
import { INITIAL_UI, reconcileSelection, reduceKey, splitKeys, type UiState } from './keys.js';
import { visibleRows, type ViewModel } from './viewmodel.js';

export interface AppProps {
  vm?: ViewModel;
  error?: string;
  refreshing?: boolean;
  applying?: boolean;
  applyLog?: string[];
  /** Undefined when no apply function is available ('a' then says so). */
  onApply?: () => void;
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
  const rowKeys = vm ? visibleRows(vm, ui.filter).map((r) => r.key) : [];
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
  const actionsSig = vm ? vm.actions.map((a) => `${a.sign} ${a.summary} ${a.reason ?? ''}`).join('\n') : '';
  const confirmedSig = useRef<string | undefined>(undefined);
  if (ui.mode === 'confirm' && confirmedSig.current === undefined) confirmedSig.current = actionsSig;
  if (ui.mode !== 'confirm') confirmedSig.current = undefined;
  useEffect(() => {
    if (uiRef.current.mode === 'confirm' && confirmedSig.current !== undefined && confirmedSig.current !== actionsSig) {
      confirmedSig.current = undefined;
      setUi({ ...uiRef.current, mode: 'list', message: 'The plan changed while you were confirming: review it and press a again.' });
    }
  }, [actionsSig]);

  // Keep the latest props for the input handler.
  const latest = useRef({ vm, applying, onApply, onRefresh, onQuit, height });
  latest.current = { vm, applying, onApply, onRefresh, onQuit, height };

  useInput((rawInput, rawKey) => {
    let applyStarted = false;
    for (const { input, key } of splitKeys(rawInput, rawKey)) {
      const l = latest.current;
      const { state, effect } = reduceKey(uiRef.current, input, key, {
        rowKeys: rowKeysRef.current,
        actionCount: l.vm?.actions.length ?? 0,
        canApply: l.onApply !== undefined,
        // an apply started by an earlier key of this same chunk counts too
        applying: l.applying || applyStarted,
        pageSize: Math.max(1, l.height - 20),
      });
      let next = state;
      if (l.vm && Boolean(next.filter) !== Boolean(uiRef.current.filter)) {
        // f: the visible rows change now; keep the same disk selected (or the nearest).
        rowKeysRef.current = visibleRows(l.vm, next.filter).map((r) => r.key);
        next = reconcileSelection(next, rowKeysRef.current);
      }
      if (next !== uiRef.current) setUi(next);
      if (effect === 'apply') applyStarted = true;
      if (effect !== 'none') runEffect(effect);
      if (effect === 'quit') break;
    }
  });

  function runEffect(effect: 'refresh' | 'apply' | 'quit') {
    const l = latest.current;
    if (effect === 'refresh') l.onRefresh();
    else if (effect === 'apply') l.onApply?.();
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
      height={Math.max(10, height - 1)}
      canApply={onApply !== undefined}
      {...(activity ? { activity } : {})}
      {...(error !== undefined ? { error } : {})}
      {...(applyLog ? { applyLog } : {})}
    />
  );
}
