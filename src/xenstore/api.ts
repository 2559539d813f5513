// The contract of the xenstore client (src/xenstore/client.ts implements it).
// Everything above src/xenstore codes against this interface only, so the same code runs
// against the real xenstored, /dev/xen/xenbus, or the embedded simulator.

/** A permission entry as xenstore prints it: n = none, r = read, w = write, b = both. */
export interface XsPerm {
  domid: number;
  perm: 'n' | 'r' | 'w' | 'b';
}

/** First entry is the owner (and the default for domains not listed), as in xenstore's wire format. */
export type XsPerms = XsPerm[];

export interface XsWatchEvent {
  path: string;
  token: string;
}

/** Operations valid inside and outside a transaction. */
export interface XsOps {
  /** Value of a node, or undefined if it does not exist (ENOENT). Other errors throw XsError. */
  read(path: string): Promise<string | undefined>;
  /** Like read but throws XsError('ENOENT') when missing. */
  readStrict(path: string): Promise<string>;
  write(path: string, value: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  /** Removes a node and its children; a missing node is not an error. */
  rm(path: string): Promise<void>;
  /** Children names, or [] if the node does not exist. Uses DIRECTORY_PART when the list is large. */
  directory(path: string): Promise<string[]>;
  getPerms(path: string): Promise<XsPerms>;
  setPerms(path: string, perms: XsPerms): Promise<void>;
}

export interface XsTransaction extends XsOps {
  readonly id: number;
}

export interface XsClient extends XsOps {
  getDomainPath(domid: number): Promise<string>;
  /** Registers a watch; events arrive on `events()`. The initial firing xenstored sends is delivered too. */
  watch(path: string, token: string): Promise<void>;
  unwatch(path: string, token: string): Promise<void>;
  /** All watch events of this connection, as an async iterable (ends when the client closes). */
  events(): AsyncIterable<XsWatchEvent>;
  /** Raw transaction control. */
  transactionStart(): Promise<XsTransaction>;
  /** commit=false aborts. Throws XsError('EAGAIN') on conflict when committing. */
  transactionEnd(tx: XsTransaction, commit: boolean): Promise<void>;
  /**
   * Runs fn in a transaction and commits; on EAGAIN (conflict) runs the whole fn again, up to
   * `maxAttempts` (default 16) with a small randomized backoff. An exception from fn aborts.
   */
  transaction<T>(fn: (tx: XsTransaction) => Promise<T>, opts?: { maxAttempts?: number }): Promise<T>;
  close(): Promise<void>;
}

/** Errno names xenstored sends in ERROR replies. */
export type XsErrno =
  | 'EINVAL' | 'EACCES' | 'EEXIST' | 'EISDIR' | 'ENOENT' | 'ENOMEM' | 'ENOSPC' | 'EIO'
  | 'ENOTEMPTY' | 'ENOSYS' | 'EROFS' | 'EBUSY' | 'EAGAIN' | 'EISCONN' | 'E2BIG' | 'EPERM' | 'EQUOTA'
  | string;
