// `xvbd apply`: show the plan, ask (or --auto-approve), execute step by step, exit 0 on success, 1 on failure.
import { createInterface } from 'node:readline/promises';
import { hostOption, parseCommand } from '../args.js';
import { defaultConfigDir } from '../../config/index.js';
import { LockHeldError } from '../../apply/lock.js';
import { RunDirError } from '../../host/rundir.js';
import { applyOnce, PlanChangedError, StalePlanError, type ApplyOptions } from '../../wire/session.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { defaultHostName } from '../../config/index.js';
import { AddressError, type DiskAddress } from '../../plan/target.js';
import { parseSavedPlan, SavedPlanError } from '../../plan/saved.js';
import { readTargeting, TARGETING_OPTIONS, targetingNotes, type Targeting } from '../targeting.js';
import { UsageError } from '../args.js';
import { ConfigInvalidError, formatErrors } from '../../config/index.js';
import { stepLine } from '../../apply/execute.js';
import type { Plan } from '../../model/plan.js';
import { CliError } from '../errors.js';
import { renderFindings, renderPlan } from '../../render/plan.js';
import { EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, errorFindings } from '../exit.js';
import type { Finding } from '../../model/plan.js';
import { plural, wantColor } from '../../render/style.js';
import { writeErr, writeOut } from '../../log/stdio.js';

const USAGE = `Usage: xvbd apply [--config DIR] [--host NAME] [--auto-approve] [--dry-run] [--prune [--allow-data-loss]] [--target DOMAIN[/VDEV]]... [--replace DOMAIN/VDEV]...
       xvbd apply FILE   (a plan saved by \`xvbd plan -out FILE\`)

Computes the plan (as \`xvbd plan\` shows it), asks for confirmation on a terminal, then carries it out:
attaches and serves disks, and with --prune detaches backends and frees loop devices of xvbd's that
nothing desires. One applier at a time per host ($XVBD_RUN_DIR/apply.lock), but not while asking: the
lock is taken after 'yes', the host observed and planned again, and apply refuses (exit 1, nothing
done) if that plan differs from the one you approved.

Options:
  --config DIR     the desired-state directory (default $XVBD_CONFIG or /etc/xvbd)
  --host NAME      in a fleet directory (with \`kind: Host\` documents), apply this host's desired state
                   (default: this machine's name, \`uname -n\`, or $XVBD_HOST)
  --auto-approve   do not ask (required when stdin is not a terminal)
  --dry-run        show the plan and stop
  --prune          also detach and free what is ours but no longer desired (as policy prune: true)
  --allow-data-loss  let prune (or --replace) detach, replace or free a loop device that holds the only
                   copy of some data (its backing file deleted, or not the inode recorded); refused otherwise
  --target DOMAIN[/VDEV]  only the actions for this domain or disk (repeatable; also -target); loop frees
                   are never targeted, a dangling backend is taken offline whatever the target
  --replace DOMAIN/VDEV   replace this one disk's backend if it differs from the config, as --prune
                   would, with the same guards, without --prune's other detaches (repeatable; also -replace)
FILE: carries out a saved plan without asking, with the flags it was made with (no other option
but --config, which must name the plan's directory). Refused (exit 1, nothing done) when it is stale:
the config changed, or a fresh plan under the lock differs from the saved actions, or a backend, loop
device, source or domain they touch changed (docs/plan-files.md).
Exit status: 0 success (or nothing to do), 1 failure (config invalid, a step failed, refused, cancelled),
2 usage error, 3 every step done (or nothing to do) but error findings remain: a desired disk stays
blocked or broken (source missing or mounted, a read-write file shared...; listed at the end).`;

/** The confirmation asked on a terminal ("this action" / "these 3 actions"). */
export function confirmQuestion(n: number): string {
  return `\nDo you want to perform ${n === 1 ? 'this action' : `these ${n} actions`}? Only 'yes' will be accepted: `;
}

async function ask(plan: Plan): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const a = await rl.question(confirmQuestion(plan.actions.length));
    return a.trim() === 'yes';
  } finally {
    rl.close();
  }
}

/**
 * After every step succeeded: a fresh look (observe and plan, read-only) for the error findings that
 * remain, which the steps did not fix (a desired disk blocked by a missing source...). Exit 3 if any.
 */
async function remainingErrors(configDir: string, host: { host?: string }, policy: { prune: boolean; allowDataLoss: boolean; replace: DiskAddress[] }, color: boolean): Promise<number> {
  let errors: Finding[];
  try {
    const { snapshot } = await import('../../wire/snapshot.js');
    const { askHolders } = await import('../holders.js');
    // with the same --prune / --allow-data-loss: a refused prune (data-loss-refused) is still there
    const { replaceKey } = await import('../../plan/target.js');
    const replace = policy.replace.length ? { replace: new Set(policy.replace.map((a) => replaceKey(a.domain, a.devid!))) } : {};
    const snap = await snapshot({ configDir, ...host, holders: askHolders, policy: { ...(policy.prune ? { prune: true } : {}), ...(policy.allowDataLoss ? { allowDataLoss: true } : {}), ...replace } });
    if (!snap.plan) throw new Error(`the config in ${configDir} no longer loads`);
    errors = snap.plan.findings.filter((f) => f.severity === 'error');
  } catch (err) {
    writeErr(`The steps ran, but looking at the host again failed: ${(err as Error).message}\n`);
    return EXIT_ERROR;
  }
  if (errors.length === 0) return EXIT_OK;
  writeOut(`\nBut ${errors.length === 1 ? '1 error finding remains' : `${errors.length} error findings remain`} (what apply cannot fix):\n`);
  writeOut(renderFindings(errors, { color }).join('\n') + '\n');
  return EXIT_FINDINGS;
}

/** `apply FILE`: the saved plan read, its host and directory checked; the options applyOnce gets. */
function savedOptions(file: string, configOpt: string | undefined): { opts: Pick<ApplyOptions, 'configDir' | 'host' | 'prune' | 'allowDataLoss' | 'saved'>; targeting: Targeting } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the saved plan ${file}: ${(err as Error).message}`);
  }
  let p;
  try {
    p = parseSavedPlan(text, file);
  } catch (err) {
    if (err instanceof SavedPlanError) throw new CliError(`${err.message}: nothing was changed`);
    throw err;
  }
  if (configOpt !== undefined && resolve(configOpt) !== p.configDir) {
    throw new CliError(`${file} is a plan for the config in ${p.configDir}, not ${resolve(configOpt)}: nothing was changed`);
  }
  const here = defaultHostName();
  if (p.observedOn !== here) throw new CliError(`${file} was planned on host ${p.observedOn}; this is ${here}: nothing was changed (plan each host on itself)`);
  const targeting = readTargeting('apply', { target: p.flags.targets, replace: p.flags.replace });
  return {
    opts: { configDir: p.configDir, host: p.host, prune: p.flags.prune, allowDataLoss: p.flags.allowDataLoss, saved: p },
    targeting,
  };
}

// Long: flag checks, then a saved or fresh plan, its confirmation and its execution, in the order apply runs them.
export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(
    argv,
    USAGE,
    {
      config: { type: 'string' },
      host: { type: 'string' },
      'auto-approve': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      prune: { type: 'boolean' },
      'allow-data-loss': { type: 'boolean' },
      ...TARGETING_OPTIONS,
    },
    { allowPositionals: true },
  );
  if (!args) return 0;
  const { values, positionals } = args;
  if (positionals.length > 1) throw new UsageError('apply', `one saved plan at a time (got ${positionals.length} arguments)`);
  const file = positionals[0];
  if (file !== undefined) {
    const extra = (['host', 'auto-approve', 'dry-run', 'prune', 'allow-data-loss', 'target', 'replace'] as const).filter((k) => values[k] !== undefined);
    if (extra.length) throw new UsageError('apply', `a saved plan is applied with the options it was made with: drop --${extra.join(', --')}`);
  }
  const saved = file !== undefined ? savedOptions(file, values.config) : undefined;
  const t = saved?.targeting ?? readTargeting('apply', values);
  const configDir = saved?.opts.configDir ?? values.config ?? defaultConfigDir();
  const autoApprove = saved !== undefined || (values['auto-approve'] ?? false);
  const dryRun = values['dry-run'] ?? false;
  const color = wantColor(process.stdout);
  const prune = saved?.opts.prune ?? values.prune ?? false;
  const allowDataLoss = saved?.opts.allowDataLoss ?? values['allow-data-loss'] ?? false;
  const host = saved ? { host: saved.opts.host! } : hostOption('apply', values.host);
  if (!autoApprove && !dryRun && !process.stdin.isTTY) {
    // decided before anything is touched: a script must say so explicitly
    throw new CliError('refusing to apply without a terminal to ask on: pass --auto-approve (or --dry-run)');
  }
  try {
    const out = await applyOnce({
      configDir,
      ...host,
      prune,
      allowDataLoss,
      targets: t.targets,
      replace: t.replace,
      ...(saved ? { saved: saved.opts.saved! } : {}),
      dryRun,
      // a prompt may wait for hours: asked without the lock, re-planned under it (PlanChangedError)
      approveUnlocked: !autoApprove,
      approve: async (plan, _desired, info) => {
        writeOut(renderPlan(plan, { color, ...header(plan, info.leftOut) }));
        if (autoApprove) return true;
        return ask(plan);
      },
      onEvent: (e) => writeOut(stepLine(e) + '\n'),
    });
    function header(plan: Plan, leftOut: number): { header?: string } {
      const notes = [...(file !== undefined ? [`Saved plan ${file}: still holds`] : []), ...targetingNotes(plan, t, leftOut)];
      return notes.length ? { header: notes.join('\n') } : {};
    }
    if (out.plan.actions.length === 0) {
      writeOut(renderPlan(out.plan, { color, ...header(out.plan, out.leftOut) }));
      return errorFindings(out.plan) > 0 ? EXIT_FINDINGS : EXIT_OK;
    }
    if (dryRun) {
      writeOut(renderPlan(out.plan, { color, ...header(out.plan, out.leftOut) }));
      writeOut('Dry run: nothing was changed.\n');
      return 0;
    }
    if (!out.approved) {
      writeOut('Apply cancelled.\n');
      return 1;
    }
    const r = out.result!;
    const ok = r.steps.filter((s) => s.ok).length;
    const failed = r.steps.filter((s) => !s.ok).length;
    const counts = new Map<string, number>();
    for (const s of r.steps) if (s.ok) counts.set(s.action.kind, (counts.get(s.action.kind) ?? 0) + 1);
    const parts = [...counts].map(([k, n]) => `${n} ${k}`);
    writeOut(
      `\nApply ${failed === 0 ? 'complete' : 'FAILED'}: ${ok} of ${plural(r.steps.length, 'step')} done${parts.length ? ` (${parts.join(', ')})` : ''}${failed ? `, ${failed} failed` : ''}.\n`,
    );
    if (failed > 0) return EXIT_ERROR;
    return remainingErrors(configDir, host, { prune, allowDataLoss, replace: t.replace }, color);
  } catch (err) {
    if (err instanceof ConfigInvalidError) {
      const { configProblem } = await import('../snapshot.js');
      const problem = configProblem({ configDir, errors: err.errors });
      if (problem.missing) throw new CliError(`${problem.text}: nothing was changed`);
      const text = formatErrors(err.errors);
      writeErr(text.endsWith('\n') ? text : text + '\n');
      throw new CliError(`${problem.text}: nothing was changed`);
    }
    if (err instanceof LockHeldError || err instanceof RunDirError || err instanceof PlanChangedError || err instanceof StalePlanError || err instanceof AddressError) {
      throw new CliError(err.message.replace(/^-(target|replace) /, '--$1 '));
    }
    throw err;
  }
}
