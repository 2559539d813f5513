// The data hook: owns the I/O loop behind the screen. Loads an observation on mount, again on
// every change the source reports (coalesced), every periodMs, and on demand; never blocks the UI
// (everything is async; a failed load keeps the previous data and shows the error).
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Coalescer } from './coalesce.js';
import type { LiveSource, Observation } from './source.js';
import { buildViewModel, sanitizeText, type ViewModel } from './viewmodel.js';

export interface LiveOptions {
  /** Periodic refresh (ms); 0 = none. Loop devices have no watch: this catches them. */
  periodMs?: number;
  debounceMs?: number;
  minIntervalMs?: number;
}

export interface LiveData {
  vm?: ViewModel;
  observation?: Observation;
  error?: string;
  refreshing: boolean;
  applying: boolean;
  applyLog: string[];
  /** Completed loads. */
  loads: number;
  refresh(): void;
  /** Undefined when the source cannot apply. prune: the plan with prune. */
  apply?: (opts?: { prune?: boolean }) => void;
}

function message(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return sanitizeText(m.split('\n')[0]!.slice(0, 500));
}

// Long: a React hook: its state, refs and effects must live in one function; the work is in coalesce.ts and the view model.
export function useLiveData(source: LiveSource, opts: LiveOptions = {}): LiveData {
  const [observation, setObservation] = useState<Observation>();
  const [error, setError] = useState<string>();
  const [refreshing, setRefreshing] = useState(false);
  const [applying, setApplying] = useState(false);
  const [applyLog, setApplyLog] = useState<string[]>([]);
  const [loads, setLoads] = useState(0);
  const mounted = useRef(true);
  const latest = useRef<Observation | undefined>(undefined);
  const applyingRef = useRef(false);
  const forceNext = useRef(false);

  const coalescer = useMemo(
    () =>
      new Coalescer(
        async () => {
          if (!mounted.current) return;
          setRefreshing(true);
          const force = forceNext.current;
          forceNext.current = false;
          try {
            const o = await source.load({ force });
            if (!mounted.current) return;
            latest.current = o;
            source.observed?.(o);
            setObservation(o);
            setError(undefined);
            setLoads((n) => n + 1);
          } catch (err) {
            if (mounted.current) setError(message(err));
          } finally {
            if (mounted.current) setRefreshing(false);
          }
        },
        { debounceMs: opts.debounceMs ?? 100, minIntervalMs: opts.minIntervalMs ?? 300 },
      ),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [source],
  );

  useEffect(() => {
    mounted.current = true;
    coalescer.runNow();
    const stop = source.subscribe(() => coalescer.trigger());
    const period = opts.periodMs ?? 5000;
    const timer = period > 0 ? setInterval(() => coalescer.trigger(), period) : undefined;
    return () => {
      mounted.current = false;
      coalescer.stop();
      if (timer) clearInterval(timer);
      void stop().catch(() => undefined);
    };
  }, [coalescer, source, opts.periodMs]);

  const refresh = useCallback(() => {
    forceNext.current = true;
    coalescer.runNow();
  }, [coalescer]);

  const apply = useCallback((opts: { prune?: boolean } = {}) => {
    const o = latest.current;
    if (!source.apply || !o || applyingRef.current) return;
    const prune = opts.prune === true;
    const shown = prune ? o.prunePlan : o.plan;
    if (!shown) return;
    applyingRef.current = true;
    setApplying(true);
    const n = shown.actions.length;
    setApplyLog([`Applying${prune ? ' with prune' : ''} ${n === 1 ? '1 action' : `${n} actions`} planned at ${new Date(o.observedAt).toISOString().slice(11, 19)}…`]);
    const add = (line: string) => {
      if (mounted.current) setApplyLog((l) => [...l.slice(-200), sanitizeText(line.slice(0, 1000))]);
    };
    void source
      .apply(shown, o.desired, add, prune ? { prune: true } : {})
      .then(
        (r) => add(r.summary),
        (err) => add(`Apply failed: ${message(err)}`),
      )
      .finally(() => {
        applyingRef.current = false;
        if (mounted.current) setApplying(false);
        coalescer.runNow();
      });
  }, [source, coalescer]);

  const vm = useMemo(
    () =>
      observation
        ? buildViewModel({
            plan: observation.plan,
            observed: observation.observed,
            desired: observation.desired,
            ...(observation.prunePlan ? { prunePlan: observation.prunePlan } : {}),
            meta: {
              host: source.host,
              socket: source.socket,
              configDir: source.configDir,
              observedAt: observation.observedAt,
              observeMs: Math.round(observation.observeMs),
              ...(observation.warning !== undefined ? { warning: observation.warning } : {}),
              ...(observation.daemon ? { daemon: observation.daemon } : {}),
            },
          })
        : undefined,
    [observation, source],
  );

  const out: LiveData = { refreshing, applying, applyLog, loads, refresh };
  if (vm) out.vm = vm;
  if (observation) out.observation = observation;
  if (error !== undefined) out.error = error;
  if (source.apply) out.apply = apply;
  return out;
}
