// Path rules for sources and allowed roots: absolute, normalised, no `..`; roots contain paths.
import { posix } from 'node:path';

export const PATH_MAX = 4095;

/**
 * Why `p` is not an absolute normalised path, as the end of a sentence that starts with
 * "<what> `p` " (e.g. "is relative; ..."), or undefined when it is fine.
 */
export function pathProblem(p: string): string | undefined {
  if (p === '') return 'is empty; write an absolute path';
  if (/[\x00-\x1f\x7f]/.test(p)) return 'contains a control character (a newline, tab or NUL); remove it';
  if (p.length > PATH_MAX) return `is longer than ${PATH_MAX} characters`;
  if (!p.startsWith('/')) return 'is relative; write an absolute path (starting with `/`)';
  const segments = p.split('/').slice(1);
  if (segments.includes('..')) {
    return 'contains `..`; write the path without it';
  }
  if (p !== '/' && (p.includes('//') || p.endsWith('/') || segments.includes('.'))) {
    const fixed = posix.normalize(p).replace(/(.)\/$/, '$1');
    return `is not normalised; write \`${fixed}\``;
  }
  return undefined;
}

/** True when `p` is `root` or inside it (both absolute and normalised). */
export function isUnder(p: string, root: string): boolean {
  if (root === '/') return p.startsWith('/');
  return p === root || p.startsWith(root + '/');
}

/**
 * A loop device's backing path as the kernel reports it (sysfs backing_file, maybe ending in
 * " (deleted)") lies under one of the roots (a root's trailing slash is ignored).
 */
export function backedUnder(backingPath: string, roots: readonly string[]): boolean {
  const p = backingPath.replace(/ \(deleted\)$/, '');
  return roots.some((r) => isUnder(p, r.length > 1 && r.endsWith('/') ? r.slice(0, -1) : r));
}
