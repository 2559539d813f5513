// Fixed-width cell helpers: the table is laid out by padding strings, so columns line up
// whatever Ink's flexbox would do with long values.

/** Cuts s to at most w columns, ending with "…" when cut; pads to exactly w. */
export function fit(s: string, w: number): string {
  if (w <= 0) return '';
  const clean = sanitize(s);
  if (clean.length <= w) return clean.padEnd(w);
  return w === 1 ? '…' : clean.slice(0, w - 1) + '…';
}

/** Like fit but keeps the end (for paths: the file name matters most). */
export function fitLeft(s: string, w: number): string {
  if (w <= 0) return '';
  const clean = sanitize(s);
  if (clean.length <= w) return clean.padEnd(w);
  return w === 1 ? '…' : '…' + clean.slice(clean.length - (w - 1));
}

/** Right-aligned cell. */
export function fitRight(s: string, w: number): string {
  const clean = sanitize(s);
  return clean.length >= w ? fit(clean, w) : clean.padStart(w);
}

/**
 * Removes control characters (a guest or a file name can contain escape sequences; they must not
 * reach the terminal), replacing each with "?".
 */
export function sanitize(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
