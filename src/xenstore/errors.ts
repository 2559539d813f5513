// Errors of the xenstore client: an ERROR reply from xenstored, a path refused before sending,
// or a lost connection. `errno` is the errno name as xenstored sends it (ENOENT, EAGAIN, ...).
import type { XsErrno } from './api.js';

export class XsError extends Error {
  readonly errno: XsErrno;
  /** The path the failed request was about, when there was one. */
  readonly path: string | undefined;

  /** The request was lost with the connection (closed, reset, a failed write), not refused by xenstored. */
  readonly connectionLost: boolean;

  constructor(errno: XsErrno, message?: string, path?: string, opts: { connectionLost?: boolean } = {}) {
    super(message ?? (path !== undefined ? `${errno}: ${path}` : errno));
    this.name = 'XsError';
    this.errno = errno;
    this.path = path;
    this.connectionLost = opts.connectionLost === true;
  }
}

/** Whether an error means the xenstore connection is gone (a new one is needed): by its type, never its text. */
export function isXsConnectionLost(err: unknown): boolean {
  if (err instanceof XsError) return err.connectionLost || err.errno === 'ECONNRESET' || err.errno === 'EPIPE';
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

export function isXsError(err: unknown, errno?: XsErrno): err is XsError {
  return err instanceof XsError && (errno === undefined || err.errno === errno);
}

/** What a request type does, in words ("set the permissions of"), for error messages. */
const DOING: Record<string, string> = {
  DIRECTORY: 'list',
  DIRECTORY_PART: 'list',
  READ: 'read',
  GET_PERMS: 'read the permissions of',
  WATCH: 'watch',
  UNWATCH: 'stop watching',
  TRANSACTION_START: 'start a transaction',
  TRANSACTION_END: 'end the transaction',
  GET_DOMAIN_PATH: 'get the domain path of',
  WRITE: 'write',
  MKDIR: 'create',
  RM: 'remove',
  SET_PERMS: 'set the permissions of',
  IS_DOMAIN_INTRODUCED: 'ask about domain',
  RESET_WATCHES: 'reset the watches',
};

/** What xenstored's error codes mean for the node named. */
const MEANING: Record<string, string> = {
  ENOENT: 'it does not exist (removed meanwhile? a domain that went away takes its nodes with it)',
  EACCES: 'permission denied (the node belongs to another domain, or xvbd does not run in dom0 as root)',
  EEXIST: 'it exists already',
  EAGAIN: 'another change to xenstore conflicted with this transaction',
  EINVAL: 'xenstored rejected the request as invalid',
  ENOSPC: 'xenstored is out of space',
  EQUOTA: 'a xenstore quota is exhausted (too many nodes or watches for this domain)',
  E2BIG: 'the request is too big for xenstore',
  EBUSY: 'xenstored is busy',
  EROFS: 'xenstore is read-only',
  EISCONN: 'the domain is already introduced',
  ENOSYS: 'xenstored does not support this request',
  EIO: 'an input/output error in xenstored',
};

/**
 * A sentence for xenstored's error reply to a request: "xenstore could not set the permissions of
 * /local/domain/3/device/vbd/51712: it does not exist (removed meanwhile? ...) [ENOENT]".
 */
export function describeXsFailure(errno: string, type: string, path?: string): string {
  const doing = DOING[type] ?? `do ${type} on`;
  const target = path !== undefined ? ` ${path}` : '';
  const meaning = MEANING[errno] ?? 'xenstored refused';
  return `xenstore could not ${doing}${target}: ${meaning} [${errno}]`;
}
