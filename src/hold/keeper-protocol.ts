// What a keeper and its clients say to each other (line-delimited JSON on keeper-<slot>.sock) and what a
// keeper holds per fd: apart from both sides, so that the keeper may use its client (to start its twin)
// without the client depending on the keeper.

export interface HeldEntry {
  /** The backend dir this fd serves. */
  backend: string;
  /** The device's diskseq (decimal) as recorded in `<backend>/diskseq`; undefined = hold while the dir exists. */
  diskseq?: string;
  /** The keeper's own fd. */
  fd: number;
  major: number;
  minor: number;
  /** The backend dir has been seen with our diskseq. */
  live: boolean;
  /** Pending entries are dropped after this time (ms since epoch) unless they became live. */
  deadline: number;
  /** Who gave it (pid and start time, so a reused pid is not mistaken for the giver). */
  giverPid: number;
  giverStart?: string;
  /** When the giver was first seen dead while the entry was pending. */
  giverGoneAt?: number;
}

/** What the twin knows of an entry it hands over: whether it is live, and who gave it first. */
export interface TwinFacts {
  live: boolean;
  giverPid: number;
  giverStart?: string;
}

export interface AdoptRequest {
  pid: number;
  fd: number;
  backend: string;
  diskseq?: string;
  graceMs?: number;
  /** Set when the twin keeper hands over an entry it holds. */
  twin?: TwinFacts;
}

export type KeeperRequest =
  | ({ op: 'adopt' } & AdoptRequest)
  | { op: 'drop'; backend: string; diskseq?: string }
  | { op: 'list' }
  | { op: 'ping' };

export type HeldInfo = Pick<HeldEntry, 'backend' | 'diskseq' | 'fd' | 'major' | 'minor' | 'live'>;

export type KeeperReply =
  | {
      ok: true;
      pid: number;
      held?: HeldInfo[];
      /** Where this keeper looks for xenstored (defaultPaths of its environment: XENSTORED_PATH...). */
      xenstore?: string[];
      /** Whether its xenstore connection is up now (a keeper on a wrong path retries for ever). */
      xsConnected?: boolean;
    }
  | { ok: false; error: string };
