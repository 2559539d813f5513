import { Text } from 'ink';
import { hints, type Mode } from '../keys.js';

export interface StatusLineProps {
  mode: Mode;
  canApply: boolean;
  actionCount: number;
  /** Actions of the plan with prune (the p confirmation). */
  pruneActionCount?: number;
  message?: string;
  /** The `/` filter being typed. */
  query?: string;
  /** The `:` command being typed. */
  command?: string;
}

export function StatusLine({ mode, canApply, actionCount, pruneActionCount = 0, message, query, command }: StatusLineProps) {
  if (mode === 'confirm' || mode === 'confirm-prune') {
    const n = mode === 'confirm' ? actionCount : pruneActionCount;
    return (
      <Text color="yellow" bold wrap="truncate-end">
        {mode === 'confirm' ? 'Apply' : 'Apply with prune:'} {n} action{n === 1 ? '' : 's'} now? (y/n)
        {message ? <Text> {message}</Text> : null}
      </Text>
    );
  }
  if (mode === 'command') {
    return (
      <Text wrap="truncate-end">
        <Text bold>:{command ?? ''}</Text>
        <Text inverse> </Text>
        <Text dimColor>  Enter run  Esc cancel  (disks, events, help, quit)</Text>
      </Text>
    );
  }
  if (mode === 'filter') {
    return (
      <Text wrap="truncate-end">
        <Text bold>/{query ?? ''}</Text>
        <Text inverse> </Text>
        <Text dimColor>  Enter keep  Esc clear</Text>
      </Text>
    );
  }
  const keys = mode === 'help' ? 'Esc close the help' : mode === 'events' ? 'Esc close the events' : hints(mode, canApply);
  return (
    // the message first: a narrow terminal cuts the end of the line, and the keys are in the help
    <Text wrap="truncate-end">
      {message ? <Text color="yellow">{message} </Text> : null}
      <Text inverse> {keys} </Text>
    </Text>
  );
}
