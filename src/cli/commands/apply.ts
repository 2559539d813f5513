// `xvbd apply`: show the plan, ask (or --auto-approve), execute step by step, exit 0 on success, 1 on failure.
import { createInterface } from 'node:readline/promises';
import { hostOption, parseCommand } from '../args.js';
import { defaultConfigDir } from '../../config/index.js';
import { LockHeldError } from '../../apply/lock.js';
import { RunDirError } from '../../apply/rundir.js';
import { applyOnce } from '../../apply/session.js';
import { ConfigInvalidError, formatErrors } from '../../config/index.js';
import { stepLine } from '../../apply/execute.js';
import type { Plan } from '../../model/plan.js';
import { CliError } from '../errors.js';
import { renderPlan } from '../render/plan.js';
import { wantColor } from '../render/style.js';
import { writeErr, writeOut } from '../../log/stdio.js';

const USAGE = `Usage: xvbd apply [--config DIR] [--host NAME] [--auto-approve] [--dry-run] [--prune [--allow-data-loss]]

Computes the plan (as \`xvbd plan\` shows it), asks for confirmation on a terminal, then carries it out:
attaches and serves disks, and with --prune detaches backends and frees loop devices of xvbd's that
nothing desires. One applier at a time per host ($XVBD_RUN_DIR/apply.lock).

Options:
  --config DIR     the desired-state directory (default $XVBD_CONFIG or /etc/xvbd)
  --host NAME      in a fleet directory (with \`kind: Host\` documents), apply this host's desired state
                   (default: this machine's name, \`uname -n\`, or $XVBD_HOST)
  --auto-approve   do not ask (required when stdin is not a terminal)
  --dry-run        show the plan and stop
  --prune          also detach and free what is ours but no longer desired (as policy prune: true)
  --allow-data-loss  let prune detach, replace or free a loop device that holds the only copy of some
                   data (its backing file deleted, or not the inode recorded); refused otherwise
Exit status: 0 success (or nothing to do), 1 failure (config invalid, a step failed, refused).`;

async function ask(plan: Plan): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const a = await rl.question(`\nDo you want to perform these ${plan.actions.length} action(s)? Only 'yes' will be accepted: `);
    return a.trim() === 'yes';
  } finally {
    rl.close();
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, USAGE, {
    config: { type: 'string' },
    host: { type: 'string' },
    'auto-approve': { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    prune: { type: 'boolean' },
    'allow-data-loss': { type: 'boolean' },
  });
  if (!args) return 0;
  const { values } = args;
  const configDir = values.config ?? defaultConfigDir();
  const autoApprove = values['auto-approve'] ?? false;
  const dryRun = values['dry-run'] ?? false;
  const color = wantColor(process.stdout);
  if (!autoApprove && !dryRun && !process.stdin.isTTY) {
    // decided before anything is touched: a script must say so explicitly
    throw new CliError('refusing to apply without a terminal to ask on: pass --auto-approve (or --dry-run)');
  }
  try {
    const out = await applyOnce({
      configDir,
      ...hostOption(values.host),
      prune: values.prune ?? false,
      allowDataLoss: values['allow-data-loss'] ?? false,
      dryRun,
      approve: async (plan) => {
        writeOut(renderPlan(plan, { color }));
        if (autoApprove) return true;
        return ask(plan);
      },
      onEvent: (e) => writeOut(stepLine(e) + '\n'),
    });
    if (out.plan.actions.length === 0) {
      writeOut(renderPlan(out.plan, { color }));
      return 0;
    }
    if (dryRun) {
      writeOut(renderPlan(out.plan, { color }));
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
      `\nApply ${failed === 0 ? 'complete' : 'FAILED'}: ${ok} of ${r.steps.length} step(s) done${parts.length ? ` (${parts.join(', ')})` : ''}${failed ? `, ${failed} failed` : ''}.\n`,
    );
    return failed === 0 ? 0 : 1;
  } catch (err) {
    if (err instanceof ConfigInvalidError) {
      const text = formatErrors(err.errors);
      writeErr(text.endsWith('\n') ? text : text + '\n');
      throw new CliError('the configuration is invalid: nothing was changed');
    }
    if (err instanceof LockHeldError || err instanceof RunDirError) throw new CliError(err.message);
    throw err;
  }
}
