// Backends of xvbd's that someone else removed while their domain still runs: `xl block-detach`, or
// libxl tearing a domain's devices down one by one during `xl destroy` (the domain stays listed until
// the last one is gone). A daemon that put them straight back would race the toolstack: seen on real
// Xen, a pass re-attached a disk of a domain being destroyed, and the backend outlived the domain. So
// the daemon remembers them, per domain instance, and its passes do not attach them again (a finding
// says so); the memory of a domain ends with it, and an operator's explicit run (`xvbd apply`,
// `xvbd reconcile`, SIGHUP) attaches again. Pure: the daemon keeps the sets between passes.
import type { ObservedState } from '../model/observed.js';
import type { Action } from '../model/plan.js';

/** The key of a vbd in a domain instance: "<frontend domid>/<devid>". */
export const vbdKey = (frontendDomid: number, devid: number): string => `${frontendDomid}/${devid}`;
const domidOf = (key: string): number => Number(key.slice(0, key.indexOf('/')));

/**
 * The vbds with a backend of ours once a pass is done: those it observed, less those its own steps
 * removed (a detach, the old half of a replace, whether or not the step got through), plus those its
 * steps made (attach, serve, replace that succeeded).
 */
export function oursAfterPass(observed: ObservedState, steps: readonly { action: Action; ok: boolean }[]): Set<string> {
  const out = new Set(observed.backends.filter((b) => b.ours).map((b) => vbdKey(b.frontendDomid, b.devid)));
  for (const { action: a, ok } of steps) {
    if (a.kind === 'detach' || a.kind === 'replace') out.delete(vbdKey(a.backend.frontendDomid, a.backend.devid));
    if (!ok) continue;
    if (a.kind === 'attach' || a.kind === 'replace') out.add(vbdKey(a.domid, a.disk.devid));
    else if (a.kind === 'serve') out.add(vbdKey(a.backend.frontendDomid, a.backend.devid));
  }
  return out;
}

/**
 * What the daemon does not put back after a new observation: what it had, less the domains no longer
 * running, plus each vbd the last pass left with a backend of ours (`known`, from oursAfterPass) that has
 * no backend now while its domain still runs. `known` undefined (no pass done yet, or the last one
 * failed midway): nothing new.
 */
export function detachedOutside(had: ReadonlySet<string>, known: ReadonlySet<string> | undefined, now: ObservedState): Set<string> {
  const running = new Set(now.domains.map((d) => d.domid));
  const out = new Set([...had].filter((k) => running.has(domidOf(k))));
  if (!known) return out;
  const present = new Set(now.backends.map((b) => vbdKey(b.frontendDomid, b.devid)));
  for (const k of known) if (!present.has(k) && running.has(domidOf(k))) out.add(k);
  return out;
}
