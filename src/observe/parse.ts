// Strict parsers for xenstore values. Anything a guest can write is untrusted: a value that does
// not parse gives undefined (and the caller records why), never an exception.

/** Longest value we keep from any node (xenstore allows 4096 bytes; we never need more than this). */
export const MAX_VALUE = 1024;
/** Longest domain name kept (libxl has no hard limit; longer ones are reported as malformed). */
export const MAX_NAME = 256;
/** DOMID_FIRST_RESERVED: domids at or above are not real domains. */
export const DOMID_LIMIT = 0x7ff0;

/** A decimal domid 0..0x7fef, or undefined. */
export function parseDomid(s: string): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n < DOMID_LIMIT ? n : undefined;
}

/** A vbd devid: decimal, 0 .. 2^30 (vbd-interface.txt's largest form is below 2^29). */
export function parseDevid(s: string): number | undefined {
  if (!/^(0|[1-9]\d{0,9})$/.test(s)) return undefined;
  const n = Number(s);
  return n < 2 ** 30 ? n : undefined;
}

/** A xenbus state: exactly one decimal digit 1..8. "04", " 4", "4\n", "9", "" are all refused. */
export function parseXenbusState(s: string | undefined): number | undefined {
  if (s === undefined || !/^[1-8]$/.test(s)) return undefined;
  return Number(s);
}

/** A 64-bit unsigned decimal (diskseq, st_dev, st_ino): digits only, no sign, no leading zeros. */
export function parseU64(s: string | undefined): string | undefined {
  if (s === undefined || !/^(0|[1-9]\d{0,19})$/.test(s)) return undefined;
  return BigInt(s) <= 0xffffffffffffffffn ? s : undefined;
}

/** "<st_dev>:<st_ino>" as xvbd writes it in `xvbd-inode`. */
export function parseInodeNode(s: string | undefined): { dev: string; ino: string } | undefined {
  if (s === undefined) return undefined;
  const i = s.indexOf(':');
  if (i < 0) return undefined;
  const dev = parseU64(s.slice(0, i));
  const ino = parseU64(s.slice(i + 1));
  return dev !== undefined && ino !== undefined ? { dev, ino } : undefined;
}

/** `physical-device`: hex "major:minor" as `stat -c %t:%T` prints it. */
export function isHexDev(s: string): boolean {
  return /^[0-9a-fA-F]{1,8}:[0-9a-fA-F]{1,8}$/.test(s);
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
