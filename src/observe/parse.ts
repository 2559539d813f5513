// Strict parsers for xenstore values. Anything a guest can write is untrusted: a value that does
// not parse gives undefined (and the caller records why), never an exception.
import { parseInode, readPhysicalDevice } from '../xen/vbd.js';

/** Longest value we keep from any node (xenstore allows 4096 bytes; we never need more than this). */
export const MAX_VALUE = 1024;
/** Longest domain name kept (libxl has no hard limit; longer ones are reported as malformed). */
export const MAX_NAME = 256;
// The vbd schema's parsers (domid, devid, u64, xvbd-inode, physical-device) are src/xen/vbd.ts's.
export { parseDevid, parseDomid, parseU64 } from '../xen/vbd.js';

/** A xenbus state: exactly one decimal digit 1..8. "04", " 4", "4\n", "9", "" are all refused. */
export function parseXenbusState(s: string | undefined): number | undefined {
  if (s === undefined || !/^[1-8]$/.test(s)) return undefined;
  return Number(s);
}

/** "<st_dev>:<st_ino>" as xvbd writes it in `xvbd-inode`. */
export const parseInodeNode = parseInode;

/** `physical-device`: hex "major:minor" as a hotplug script writes it (`stat -c %t:%T`). */
export function isHexDev(s: string): boolean {
  return readPhysicalDevice(s) !== undefined;
}

/** Printable text of bounded length (control characters are replaced): for names and messages. */
export function cleanText(s: string, max = MAX_VALUE): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\u0000-\u001f\u007f]/g, '?');
  return t.length > max ? `${t.slice(0, max)}...` : t;
}

/** A domain name: 1..MAX_NAME printable characters, no control characters and no "/". */
export function parseDomainName(s: string | undefined): string | undefined {
  if (s === undefined || s.length === 0 || s.length > MAX_NAME) return undefined;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f/]/.test(s)) return undefined;
  return s;
}

/** A xenstore path we are willing to follow: absolute, printable, bounded, no "//" or trailing "/". */
export function isSanePath(s: string | undefined): s is string {
  if (s === undefined || s.length < 2 || s.length > 1024 || !s.startsWith('/')) return false;
  if (s.endsWith('/') || s.includes('//')) return false;
  return /^[A-Za-z0-9/_@.:-]+$/.test(s);
}

/** For messages: a value shown quoted and cut short. */
export function quote(s: string): string {
  return JSON.stringify(cleanText(s, 64));
}
