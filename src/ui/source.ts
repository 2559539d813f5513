// Where the TUI's data comes from: a LiveSource loads one observation + plan and tells when
// something may have changed. The real one (xen-source.ts) reads the config dir, xenstore and the
// loop devices; tests may give any other.
import type { DesiredState } from '../model/desired.js';
import type { ObservedState } from '../model/observed.js';
import type { Plan } from '../model/plan.js';
import type { DaemonInfo } from './daemon-info.js';

export interface Observation {
  desired: DesiredState;
  observed: ObservedState;
  plan: Plan;
  /** Wall-clock time of the observation (ms since the epoch). */
  observedAt: number;
  /** How long load() took (ms). */
  observeMs: number;
  /**
   * The plan `xvbd apply --prune` would carry out on this observation (the config's policy with
   * prune, never allowDataLoss); absent without a valid config.
   */
  prunePlan?: Plan;
  /** The daemon, as its control socket answered (absent: not asked). */
  daemon?: DaemonInfo;
  /** Something to show although the load worked (e.g. the config is invalid: the last good one is used). */
  warning?: string;
}

export interface ApplyOutcome {
  ok: boolean;
  /** One line: "Apply complete: 3 done, 0 failed". */
  summary: string;
}

export interface LiveSource {
  /** What the header shows. */
  readonly host: string;
  readonly socket: string;
  readonly configDir: string;
  /**
   * One fresh observation and its plan. Rejects with a readable message (config invalid, xenstore
   * down...). `force`: the user asked (r): re-read everything, even what looks unchanged.
   */
  load(opts?: { force?: boolean }): Promise<Observation>;
  /**
   * Calls onChange whenever something the screen shows may have changed (xenstore watch events,
   * config file changes). Returns a stop function.
   */
  subscribe(onChange: (why: string) => void): () => Promise<void>;
  /** Called after every successful load (e.g. to watch the frontends it found). */
  observed?(o: Observation): void;
  /**
   * Carries out a plan, reporting progress lines; prune: as `apply --prune` (`plan` is the plan with
   * prune that was shown). Absent when applying is not possible here.
   */
  apply?(plan: Plan, desired: DesiredState, onLine: (line: string) => void, opts?: { prune?: boolean }): Promise<ApplyOutcome>;
  close(): Promise<void>;
}
