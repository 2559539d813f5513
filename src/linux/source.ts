// Opening a disk's source safely: no symlink anywhere in the path, only under the allowed roots, a
// regular file (or, for `kind: block`, a block device), opened once and then judged by its fd, so a
// symlink swapped in between a check and the open cannot redirect us.
import { fstatSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import {
  AT_FDCWD,
  E,
  O_CLOEXEC,
  O_DIRECT,
  O_DIRECTORY,
  O_NOCTTY,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
  SysError,
  sysClose,
  sysOpenat,
  sysOpenat2,
} from './ffi.js';
import { devMajor, devMinor } from './devnum.js';

export type SourceKind = 'file' | 'block';

export interface OpenSourceOptions {
  /**
   * Absolute directories the source must lie under (checked on the path as given). Empty = anywhere.
   * Files: no symlink anywhere in the path. Block devices: links inside /dev (udev's) are followed to a
   * node inside /dev; `path` in the result is then the node's real path.
   */
  allowedRoots: string[];
  readOnly: boolean;
  /** What the path must name (default 'file'). */
  kind?: SourceKind;
  /** Open with O_DIRECT (for LO_FLAGS_DIRECT_IO). */
  direct?: boolean;
  /** Force the component-by-component walk even where openat2 exists (tests, old kernels). */
  noOpenat2?: boolean;
}

export interface SourceStat {
  /** st_dev, st_ino, st_rdev, st_size as decimal strings. */
  dev: string;
  ino: string;
  rdev: string;
  size: string;
  kind: SourceKind;
  /** For block devices. */
  major?: number;
  minor?: number;
}

export interface OpenedSource {
  fd: number;
  path: string;
  stat: SourceStat;
  /** The same identity as bigints. */
  devB: bigint;
  inoB: bigint;
}

export type SourceRefusal =
  | 'not-absolute'
  | 'outside-roots'
  | 'symlink'
  | 'not-found'
  | 'not-regular'
  | 'not-block'
  | 'busy'
  | 'denied'
  | 'bad-path'
  | 'io';

/** A source we will not use, with a machine-readable reason. */
export class SourceError extends Error {
  readonly reason: SourceRefusal;
  readonly path: string;
  readonly code?: string;
  constructor(path: string, reason: SourceRefusal, detail: string, code?: string) {
    super(`source ${JSON.stringify(path)}: ${detail}`);
    this.name = 'SourceError';
    this.reason = reason;
    this.path = path;
    if (code !== undefined) this.code = code;
  }
}

let openat2Missing = false;

/** Normalise and check a root or source path lexically: absolute, no NUL, no "." or ".." left. */
function checkPath(path: string, what: string): string {
  if (typeof path !== 'string' || path.length === 0) throw new SourceError(String(path), 'bad-path', `${what} is empty`);
  if (path.includes('\0')) throw new SourceError(path, 'bad-path', `${what} contains a NUL byte`);
  if (!path.startsWith('/')) throw new SourceError(path, 'not-absolute', `${what} is not an absolute path`);
  if (path.length > 4095) throw new SourceError(path, 'bad-path', `${what} is too long`);
  // With no symlinks allowed anywhere, lexical ".." resolution is the real one.
  const norm = posix.normalize(path);
  return norm.length > 1 && norm.endsWith('/') ? norm.slice(0, -1) : norm;
}

export function isUnderRoots(path: string, roots: string[]): boolean {
  if (roots.length === 0) return true;
  return roots.some((r) => {
    const root = checkPath(r, 'allowed root');
    return root === '/' || path === root || path.startsWith(root + '/');
  });
}

/**
 * Open a source for a disk. The returned fd is the caller's (close it with closeSource or hand it to
 * attachLoop). Throws SourceError with a reason; never follows a symlink.
 */
export function openSource(path: string, opts: OpenSourceOptions): OpenedSource {
  const kind: SourceKind = opts.kind ?? 'file';
  const norm = checkPath(path, 'source');
  if (!isUnderRoots(norm, opts.allowedRoots)) {
    throw new SourceError(path, 'outside-roots', `not under the allowed roots (${opts.allowedRoots.join(', ')})`);
  }
  if (norm === '/') throw new SourceError(path, 'not-regular', 'is the root directory');
  let flags = (opts.readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW;
  if (opts.direct) flags |= O_DIRECT;
  // A FIFO named as a source must not block us; NONBLOCK is harmless on regular files and block devices.
  flags |= O_NONBLOCK;

  let fd: number;
  let opened = norm;
  try {
    try {
      fd = openNoSymlinks(norm, flags, opts.noOpenat2 ?? false);
    } catch (e) {
      // Block devices are usually named by udev's links (/dev/vg/lv, /dev/mapper/x, /dev/disk/by-id/...).
      // Links inside /dev are root's (udev's) own, not an attacker's: resolve them, but only to a node
      // in /dev, and open that node again with no symlink allowed.
      if (kind !== 'block' || !(e instanceof SysError && e.code === 'ELOOP') || !norm.startsWith('/dev/')) throw e;
      opened = resolveDevLink(path, norm);
      fd = openNoSymlinks(opened, flags, opts.noOpenat2 ?? false);
    }
  } catch (e) {
    if (opts.direct && e instanceof SysError && e.code === 'EINVAL') {
      throw new SourceError(path, 'denied', 'its file system does not support direct I/O (O_DIRECT)', e.code);
    }
    throw asSourceError(path, e);
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    const isFile = st.isFile();
    const isBlock = st.isBlockDevice();
    if (kind === 'file' && !isFile) {
      throw new SourceError(path, 'not-regular', isBlock ? 'is a block device (say kind: block)' : 'is not a regular file');
    }
    if (kind === 'block' && !isBlock) throw new SourceError(path, 'not-block', 'is not a block device');
    const stat: SourceStat = {
      dev: String(st.dev),
      ino: String(st.ino),
      rdev: String(st.rdev),
      size: String(st.size),
      kind,
    };
    if (isBlock) {
      stat.major = devMajor(st.rdev);
      stat.minor = devMinor(st.rdev);
    }
    return { fd, path: opened, stat, devB: st.dev, inoB: st.ino };
  } catch (e) {
    sysClose(fd);
    throw e instanceof SourceError ? e : asSourceError(path, e);
  }
}

function resolveDevLink(path: string, norm: string): string {
  let real: string;
  try {
    real = realpathSync(norm);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw asSourceError(path, new SysError('realpath', (E as Record<string, number>)[code] ?? E.EIO, norm));
  }
  if (!real.startsWith('/dev/')) throw new SourceError(path, 'symlink', `is a link out of /dev (to ${real})`);
  return real;
}

export function closeSource(src: { fd: number }): void {
  sysClose(src.fd);
  src.fd = -1;
}

function asSourceError(path: string, e: unknown): SourceError {
  if (e instanceof SourceError) return e;
  if (e instanceof SysError) {
    switch (e.code) {
      case 'ELOOP':
        return new SourceError(path, 'symlink', 'a component of the path is a symbolic link', e.code);
      case 'ENOENT':
        return new SourceError(path, 'not-found', 'does not exist', e.code);
      case 'ENOTDIR':
        return new SourceError(path, 'not-found', 'a component of the path is not a directory', e.code);
      case 'EBUSY':
        return new SourceError(path, 'busy', 'is in use (mounted or claimed in dom0)', e.code);
      case 'EACCES':
      case 'EPERM':
      case 'EROFS':
      case 'ETXTBSY':
        return new SourceError(path, 'denied', `cannot be opened ${e.code === 'EROFS' ? 'read-write (read-only file system)' : `(${e.code})`}`, e.code);
      case 'EXDEV':
        return new SourceError(path, 'symlink', 'the path crosses a magic link', e.code);
      default:
        return new SourceError(path, 'io', e.message, e.code);
    }
  }
  return new SourceError(path, 'io', e instanceof Error ? e.message : String(e));
}

/** open with no symlink anywhere: openat2(RESOLVE_NO_SYMLINKS), else a walk with O_NOFOLLOW per component. */
function openNoSymlinks(path: string, flags: number, noOpenat2: boolean): number {
  if (!noOpenat2 && !openat2Missing) {
    try {
      return sysOpenat2(AT_FDCWD, path, flags, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    } catch (e) {
      // ENOSYS: kernel < 5.6; EPERM/E2BIG: seccomp filters that do not know openat2.
      if (!(e instanceof SysError) || !['ENOSYS', 'E2BIG'].includes(e.code)) throw e;
      openat2Missing = true;
    }
  }
  return walkOpen(path, flags);
}

/** Component by component from "/", each directory opened O_PATH|O_NOFOLLOW|O_DIRECTORY. */
export function walkOpen(path: string, flags: number): number {
  const parts = path.split('/').filter((p) => p.length > 0);
  if (parts.length === 0) throw new SysError('openat', E.EISDIR, path);
  let dirfd = sysOpenat(AT_FDCWD, '/', O_PATH | O_DIRECTORY | O_CLOEXEC);
  try {
    for (let i = 0; i < parts.length - 1; i++) {
      let next: number;
      try {
        next = sysOpenat(dirfd, parts[i]!, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      } catch (e) {
        // O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR: tell a symlink apart from a file.
        if (e instanceof SysError && e.code === 'ENOTDIR') {
          const probe = sysOpenat(dirfd, parts[i]!, O_PATH | O_NOFOLLOW | O_CLOEXEC);
          const link = fstatSync(probe).isSymbolicLink();
          sysClose(probe);
          if (link) throw new SysError('openat', E.ELOOP, parts.slice(0, i + 1).join('/'));
        }
        throw e;
      }
      sysClose(dirfd);
      dirfd = next;
    }
    return sysOpenat(dirfd, parts[parts.length - 1]!, flags | O_NOFOLLOW);
  } finally {
    sysClose(dirfd);
  }
}
