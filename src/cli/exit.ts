// The exit codes of every xvbd command: one convention, so that a cron job or a monitoring check
// (Nagios, a systemd OnFailure=) can tell "fine" from "needs a human" from "you typed it wrong".
//
//   0  ok: the command did what it was asked; nothing needs attention
//   1  error: the command could not do its job (invalid config, xenstore unreachable, a failed step,
//      a refusal, the apply lock held)
//   2  usage error: unknown command or option, a bad option value (nothing was read or changed);
//      `plan --detailed-exitcode`: changes pending (as Terraform); `reconcile` (once): changes made
//   3  error findings: the host has drift of severity error (a disk broken, a source missing or
//      mounted, a read-write file shared, ...) that this run did not (or could not) fix:
//      `plan --detailed-exitcode`, `status`, `apply` and `reconcile` (once)
// When several hold, the highest in this order wins: 1, 3, 2, 0 (an error finding outweighs changes).

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
/** `plan --detailed-exitcode`: changes pending; `reconcile` (once): changes made, all succeeded. */
export const EXIT_CHANGES = 2;
export const EXIT_FINDINGS = 3;

/** The lines every --help ends with (after its own, command-specific ones). */
export const EXIT_HELP = `Exit status (every xvbd command): 0 ok, 1 error, 2 usage error, 3 error findings remain (see README).`;

/** How many findings of severity error a plan has. */
export function errorFindings(plan: { findings: { severity: string }[] }): number {
  return plan.findings.filter((f) => f.severity === 'error').length;
}
