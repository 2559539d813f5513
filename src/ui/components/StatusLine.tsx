import { Text } from 'ink';
import type { Mode } from '../keys.js';

export interface StatusLineProps {
  mode: Mode;
  canApply: boolean;
  actionCount: number;
  message?: string;
}

export function StatusLine({ mode, canApply, actionCount, message }: StatusLineProps) {
  if (mode === 'confirm') {
    return (
      <Text color="yellow" bold>
        Apply {actionCount} action{actionCount === 1 ? '' : 's'} now? (y/n)
      </Text>
    );
  }
  const keys =
    mode === 'details'
      ? '↑↓/jk other disk  Esc/Enter back  r refresh  q quit'
      : `↑↓/jk select  Enter details  f filter  ${canApply ? 'a apply  ' : ''}r refresh  q quit`;
  return (
    <Text wrap="truncate-end">
      <Text inverse> {keys} </Text>
      {message ? <Text color="yellow"> {message}</Text> : null}
    </Text>
  );
}
