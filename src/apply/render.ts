// Plan text for `xvbd apply` until/unless src/cli/render provides it: one line per action with its
// Terraform-style sign, the findings, and a summary line.
import type { Plan } from '../model/plan.js';
import { summarize } from './execute.js';

const SIGN: Record<string, string> = { attach: '+', serve: '+', detach: '-', 'free-loop': '-', replace: '~' };

export function renderPlanText(plan: Plan): string {
  const lines: string[] = [];
  for (const a of plan.actions) lines.push(`  ${SIGN[a.kind] ?? '?'} ${summarize(a)}`);
  for (const f of plan.findings) lines.push(`  ! ${f.severity}: ${f.message}${f.fix ? ` (fix: ${f.fix})` : ''}`);
  const n = (k: string[]) => plan.actions.filter((a) => k.includes(a.kind)).length;
  lines.push(
    `Plan: ${n(['attach', 'serve'])} to attach, ${n(['replace'])} to change, ${n(['detach', 'free-loop'])} to detach; ${plan.findings.length} finding(s)`,
  );
  return lines.join('\n') + '\n';
}
