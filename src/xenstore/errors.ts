// Errors of the xenstore client: an ERROR reply from xenstored, a path refused before sending,
// or a lost connection. `errno` is the errno name as xenstored sends it (ENOENT, EAGAIN, ...).
import type { XsErrno } from './api.js';

export class XsError extends Error {
  readonly errno: XsErrno;
  /** The path the failed request was about, when there was one. */
  readonly path: string | undefined;

  constructor(errno: XsErrno, message?: string, path?: string) {
    super(message ?? (path !== undefined ? `${errno}: ${path}` : errno));
    this.name = 'XsError';
    this.errno = errno;
    this.path = path;
  }
}

export function isXsError(err: unknown, errno?: XsErrno): err is XsError {
  return err instanceof XsError && (errno === undefined || err.errno === errno);
}
