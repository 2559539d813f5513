// Path and permission rules of xenstore (docs/misc/xenstore.txt, xenstored is_valid_nodename):
// absolute paths start with "/", relative ones are taken from the connection's home
// (/local/domain/<domid>/); allowed characters are [A-Za-z0-9-/_@]; no "//", no trailing "/"
// (except "/" itself); "@..." names only for watches and permissions (@introduceDomain ...).
import type { XsPerm, XsPerms } from './api.js';
import { XsError } from './errors.js';
import { ABS_PATH_MAX, REL_PATH_MAX } from './wire.js';

const VALID = /^[A-Za-z0-9\-/_@]*$/;

export interface PathCheckOpts {
  /** Allow "@introduceDomain"-style special names (watch, get/set perms). */
  allowSpecial?: boolean;
}

/** Why a path is invalid, or undefined when it is fine. */
export function pathProblem(path: string, opts: PathCheckOpts = {}): string | undefined {
  if (typeof path !== 'string') return 'not a string';
  if (path.length === 0) return 'empty path';
  if (path.startsWith('@')) {
    if (!opts.allowSpecial) return 'special "@" names are only valid for watches and permissions';
    if (!VALID.test(path)) return 'invalid character (allowed: A-Z a-z 0-9 - / _ @)';
    // xenstored limits special names to XENSTORE_REL_PATH_MAX
    return path.length > REL_PATH_MAX ? `longer than ${REL_PATH_MAX} characters` : undefined;
  }
  if (!VALID.test(path)) return 'invalid character (allowed: A-Z a-z 0-9 - / _ @)';
  if (path.includes('//')) return 'contains "//"';
  if (path.length > 1 && path.endsWith('/')) return 'ends with "/"';
  if (path.startsWith('/')) {
    if (path.length > ABS_PATH_MAX) return `longer than ${ABS_PATH_MAX} characters`;
    // xenstored counts the part after /local/domain/<domid>/ against the 2048 quota.
    const m = /^\/local\/domain\/\d{1,5}\//.exec(path);
    const rel = path.length - (m ? m[0].length : 0);
    if (rel > REL_PATH_MAX) return `longer than ${REL_PATH_MAX} characters (after /local/domain/<domid>/)`;
    return undefined;
  }
  if (path.length > REL_PATH_MAX) return `relative path longer than ${REL_PATH_MAX} characters`;
  return undefined;
}

/** Throws XsError('EINVAL') naming the path when it is not a valid xenstore path. */
export function checkPath(path: string, opts: PathCheckOpts = {}): void {
  const problem = pathProblem(path, opts);
  if (problem !== undefined) {
    const shown = typeof path === 'string' && path.length > 80 ? `${path.slice(0, 77)}...` : String(path);
    throw new XsError('EINVAL', `invalid xenstore path "${shown}": ${problem}`, String(path));
  }
}

/** Parent of an absolute path ('/' for '/a'); undefined for '/'. */
export function parentPath(path: string): string | undefined {
  if (path === '/') return undefined;
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** True when `path` is `ancestor` itself or below it. */
export function isUnder(path: string, ancestor: string): boolean {
  if (ancestor === '/') return path.startsWith('/');
  return path === ancestor || path.startsWith(ancestor + '/');
}

/** Parses one permission entry as xenstore prints it: "n0", "r5", "b12". */
export function parsePerm(s: string): XsPerm {
  const m = /^([nrwb])(\d{1,10})$/.exec(s);
  if (!m) throw new XsError('EINVAL', `invalid xenstore permission "${s}" (want n|r|w|b followed by a domid)`);
  const domid = Number(m[2]);
  if (domid > 0xffff) throw new XsError('EINVAL', `invalid xenstore permission "${s}": domid out of range`);
  return { domid, perm: m[1] as XsPerm['perm'] };
}

/** Parses a permission list: "n0,r5" or "n0 r5" or an array of entries. */
export function parsePerms(s: string | string[]): XsPerms {
  const items = Array.isArray(s) ? s : s.split(/[\s,]+/).filter((x) => x.length > 0);
  if (items.length === 0) throw new XsError('EINVAL', 'empty xenstore permission list');
  return items.map(parsePerm);
}

/** Formats permissions as xenstore-ls -p prints them: "n0,r5". */
export function formatPerms(p: XsPerms): string {
  return p.map(formatPerm).join(',');
}

export function formatPerm(p: XsPerm): string {
  return `${p.perm}${p.domid}`;
}
