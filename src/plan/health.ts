// What a disk's health is, kept apart from its sync status (as Argo CD does): one pure rule, from what
// was observed of its backend pair. plan() fills DiskStatus.health with it, and everything that shows or
// counts health (`xvbd status`, the TUI's view model, the Prometheus textfile) reads that field and the
// order below, never judges again.
import { XenbusState, xenbusStateName, type BackendObs } from '../model/observed.js';
import type { Health } from '../model/plan.js';

/** Every health, best first: the order of status's counts and of the textfile's series. */
export const HEALTH_STATES: readonly Health[] = ['healthy', 'progressing', 'degraded', 'missing'];

/** Worst first, for sorting by health: what needs attention comes first. */
export const HEALTH_RANK: Readonly<Record<Health, number>> = { degraded: 0, progressing: 1, missing: 2, healthy: 3 };

export interface HealthFacts {
  /** The disk's backend as observed; undefined: there is none (`missing`). */
  backend?: Pick<BackendObs, 'error' | 'hotplugStatus' | 'state' | 'frontendState' | 'frontendPath' | 'kernelHeld'>;
  /** Whether the backend names a device (a physical-device that parses). */
  hasDevice?: boolean;
  /** What became of the loop device the backend recorded: the same, gone, or its number re-bound. */
  loop?: 'no' | 'reused' | 'gone';
  /** Hotplug pending, with a script that is another tool's: that tool provides the device, not xvbd. */
  foreignScript?: string;
  /** The disk is in sync, but its read-write file is used elsewhere too. */
  rwShared?: boolean;
}

export function diskHealth(f: HealthFacts): { health: Health; reason?: string } {
  const b = f.backend;
  if (b === undefined) return { health: 'missing' };
  if (f.foreignScript !== undefined && b.hotplugStatus !== 'error') return { health: 'progressing', reason: `hotplug pending (script ${f.foreignScript})` };
  const h = backendHealth(b, f);
  if (f.rwShared && h.health === 'healthy') return { health: 'degraded', reason: 'read-write file used elsewhere too' };
  return h;
}

/** Health of one backend pair from its states. */
function backendHealth(b: NonNullable<HealthFacts['backend']>, f: HealthFacts): { health: Health; reason?: string } {
  if (b.error !== undefined) return { health: 'degraded', reason: `error: ${b.error}` };
  if (b.hotplugStatus === 'error') return { health: 'degraded', reason: 'hotplug-status error' };
  if (f.loop === 'reused') return { health: 'degraded', reason: 'loop device reused' };
  if (f.loop === 'gone') return { health: 'degraded', reason: 'loop device gone' };
  const bs = b.state;
  const fs = b.frontendState;
  if (bs === undefined) return { health: 'degraded', reason: 'backend state missing' };
  if (bs === XenbusState.Closing || bs === XenbusState.Closed) return { health: 'degraded', reason: `backend ${xenbusStateName(bs)}` };
  if (fs === XenbusState.Closing || fs === XenbusState.Closed) return { health: 'degraded', reason: `frontend ${xenbusStateName(fs)}` };
  if (fs === undefined) {
    return { health: 'degraded', reason: b.frontendPath === undefined ? 'no frontend' : 'frontend state missing or malformed' };
  }
  if (bs === XenbusState.Connected && fs === XenbusState.Connected) return { health: 'healthy' };
  if (!f.hasDevice) return { health: 'progressing', reason: `hotplug pending (backend ${xenbusStateName(bs)}, frontend ${xenbusStateName(fs)})` };
  if (!b.kernelHeld) return { health: 'progressing', reason: `blkback has not opened the device yet (backend ${xenbusStateName(bs)}, frontend ${xenbusStateName(fs)})` };
  return { health: 'progressing', reason: `backend ${xenbusStateName(bs)}, frontend ${xenbusStateName(fs)}` };
}
