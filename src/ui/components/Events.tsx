import { Box, Text } from 'ink';
import type { EventVM } from '../viewmodel.js';

export interface EventsProps {
  events: EventVM[];
  /** Undefined: the daemon was not asked; else the header's daemon line (why there may be none). */
  daemon?: string;
  maxLines: number;
}

/** The daemon's last passes (with their steps) and the hook's requests, newest first. */
export function Events({ events, daemon, maxLines }: EventsProps) {
  const lines: { text: string; tone: EventVM['tone']; dim?: boolean }[] = [];
  for (const e of events) {
    lines.push({ text: `${e.at}  ${e.text}`, tone: e.tone });
    for (const s of e.steps) lines.push({ text: `            ${s}`, tone: e.tone, dim: true });
  }
  const room = Math.max(1, maxLines - 1);
  const shown = lines.slice(0, lines.length > maxLines - 1 ? room - 1 : room);
  return (
    <Box flexDirection="column">
      <Text bold>Daemon events ({events.length}, newest first)</Text>
      {events.length === 0 ? <Text dimColor>  {daemon === undefined ? 'none: the daemon was not asked' : `none: ${daemon}`}</Text> : null}
      {shown.map((l, i) => (
        <Text key={i} color={l.tone} dimColor={l.dim === true} wrap="truncate-end">
          {'  '}
          {l.text}
        </Text>
      ))}
      {lines.length > shown.length ? <Text dimColor>  … {lines.length - shown.length} older lines</Text> : null}
    </Box>
  );
}
