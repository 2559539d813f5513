// When a backend of ours needs the kernel to probe it again. Linux's blkfront reconnects after an
// unbind only as a new xenbus device: the guest removes its frontend dir (it owns the dir, but not
// the device/vbd dir above it, so it cannot write it back). blkback then reads the frontend's state
// as Unknown and unregisters its device; the backend dir stays, and the kernel probes a backend dir
// only when a node under it changes while its own `state` reads 1 (xenbus_probe_node). So xvbd
// writes the frontend dir anew, as its attach does, and the backend's state 1: the guest's xenbus
// finds a new device, blkback a new backend, and they connect on the device xvbd still holds.
// The same holds for a frontend that a guest wrote again itself after blkback let go of it.
// Writing state 1 is safe only once no blkback device exists for the backend (a registered blkback
// keeps its own idea of the state and would never announce InitWait again): for a frontend that is
// gone, blkback is about to unregister and the step waits for it; for one that waits, it must be
// unregistered already.
import { XenbusState, xenbusStateName, type BackendObs } from '../model/observed.js';

/** Frontend states of a frontend that is setting up and waiting for its backend. */
const WAITING: ReadonlySet<number> = new Set([XenbusState.Initialising, XenbusState.InitWait, XenbusState.Initialised]);

export interface Reprobe {
  /** The frontend dir is gone: it is written anew. */
  frontend: boolean;
  reason: string;
}

/**
 * Whether `b` should be probed again. `served` says that the device at physical-device is the one the
 * backend recorded (same diskseq and source): only a backend that still names the right device may be
 * handed to blkback again.
 */
export function reprobeOf(b: BackendObs, served: boolean): Reprobe | undefined {
  if (!b.ours || b.online !== true || !served || b.physicalDevice === undefined) return undefined;
  // 1: a probe is already due (our own attach a moment ago, or blkback retries at the next change)
  if (b.state === undefined || b.state === XenbusState.Initialising) return undefined;
  // only where libxl and xvbd put a frontend: the dir may be written anew there and nowhere else
  if (b.frontendPath !== `/local/domain/${b.frontendDomid}/device/vbd/${b.devid}`) return undefined;
  const state = `state ${xenbusStateName(b.state)}`;
  if (b.frontendExists === false) {
    return { frontend: true, reason: `the guest removed its frontend dir (backend ${state}): written anew, the backend probed again` };
  }
  if (b.kernelRegistered !== false || b.kernelHeld) return undefined;
  if (b.frontendState === undefined || !WAITING.has(b.frontendState)) return undefined;
  return { frontend: false, reason: `blkback has no device for the backend (${state}) and the frontend waits (${xenbusStateName(b.frontendState)})` };
}
