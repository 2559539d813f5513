// -target / -replace on the command line of plan and apply (src/plan/target.ts does the work).
import { addressText, parseAddress, replaceKey, type DiskAddress } from '../plan/target.js';
import type { Plan } from '../model/plan.js';
import { UsageError } from './args.js';

export const TARGETING_OPTIONS = {
  target: { type: 'string', multiple: true },
  replace: { type: 'string', multiple: true },
} as const;

export const TARGETING_HELP = `  --target DOMAIN[/VDEV]  plan (and apply) only the actions for this domain or disk (repeatable; also
                        -target, as Terraform): the rest of the host waits for an apply without it.
                        Loop frees are never targeted; a dangling backend is taken offline whatever
                        the target (it must be before any loop device is allocated)
  --replace DOMAIN/VDEV  replace this one disk's backend if it differs from the config (source, mode,
                        options), as --prune would, without --prune's other detaches and replaces;
                        the same guards: refused when it would lose data (unless --allow-data-loss)
                        or give a read-write file to two domains (repeatable; also -replace)`;

export interface Targeting {
  targets: DiskAddress[];
  replace: DiskAddress[];
}

/** The addresses of --target / --replace, or a usage error naming the bad one. */
export function readTargeting(command: string, values: { target?: string[] | undefined; replace?: string[] | undefined }): Targeting {
  const read = (opt: 'target' | 'replace', needDisk: boolean): DiskAddress[] =>
    (values[opt] ?? []).map((s) => {
      const a = parseAddress(s, { needDisk });
      if ('error' in a) throw new UsageError(command, `--${opt} ${a.error}`);
      return a;
    });
  return { targets: read('target', false), replace: read('replace', true) };
}

/** Policy.replace for these addresses (undefined when none). */
export function replaceSet(t: Targeting): ReadonlySet<string> | undefined {
  return t.replace.length ? new Set(t.replace.map((a) => replaceKey(a.domain, a.devid!))) : undefined;
}

/** The lines that say what targeting left out, and which -replace found nothing to replace. */
export function targetingNotes(plan: Plan, t: Targeting, left: number): string[] {
  const out: string[] = [];
  if (t.targets.length) {
    out.push(
      `Targeting ${t.targets.map(addressText).join(', ')}: ${left === 0 ? 'no other action of the host was left out' : `${left === 1 ? '1 action' : `${left} actions`} for the rest of the host left out (an apply without --target does ${left === 1 ? 'it' : 'them'})`}`,
    );
  }
  for (const r of t.replace) {
    const planned = plan.actions.some((a) => a.kind === 'replace' && a.domain === r.domain && a.disk.devid === r.devid);
    if (!planned) out.push(`--replace ${addressText(r)}: no replace planned (its backend matches the config, it has none yet, or a finding below says why not)`);
  }
  return out;
}
