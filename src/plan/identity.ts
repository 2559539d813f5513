// Identity helpers of the planner: what a backend really uses, by inode or device number, never by path.
import { posix } from 'node:path';
import type { Inode, LoopObs } from '../model/observed.js';
import type { BackendRef, LoopRef } from '../model/plan.js';
import type { BackendObs } from '../model/observed.js';
import { devidToVdev } from '../config/vdev.js';

/** Identity of a regular file: "f:<st_dev>:<st_ino>". */
export function fileKey(inode: Inode): string {
  return `f:${inode.dev}:${inode.ino}`;
}

/** Identity of a block device: "b:<major>:<minor>" (decimal). */
export function blockKey(major: number, minor: number): string {
  return `b:${major}:${minor}`;
}

export interface DevNum {
  major: number;
  minor: number;
}

const DEC_DEV = /^(\d{1,10}):(\d{1,10})$/;

/** SourceObs.rdev: decimal "major:minor". */
export function parseDecDev(s: string | undefined): DevNum | undefined {
  if (s === undefined) return undefined;
  const m = DEC_DEV.exec(s.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

export function devKey(d: DevNum): string {
  return `${d.major}:${d.minor}`;
}

/**
 * The path a backend's `params` names, normalised, or undefined. libxl writes the disk target as is
 * ("/srv/a.img"); older toolstacks and qdisk prefix a format ("phy:/dev/vg/x", "aio:/srv/a.img").
 */
export function paramsPath(params: string | undefined): string | undefined {
  if (params === undefined) return undefined;
  let p = params.trim();
  for (let i = 0; i < 3 && !p.startsWith('/'); i++) {
    const m = /^[a-z][a-z0-9]{0,15}:(.*)$/.exec(p);
    if (!m) break;
    p = m[1]!;
  }
  // "//host/..." after a prefix is a URL (iscsi://, nbd://), not a local path.
  if (!p.startsWith('/') || p.startsWith('//') || p.includes('\0')) return undefined;
  return posix.normalize(p);
}

/**
 * Whether xvbd may serve a toolstack-created backend with this `script`: none written (our own
 * attach, or a toolstack that runs no script), or a script whose path names xvbd (libxl
 * `script=xvbd` becomes /etc/xen/scripts/xvbd; /usr/lib/xvbd/hook works too). Xen's own `block`
 * script does its own losetup: serving such a backend too would race it.
 */
export function scriptIsOurs(script: string | undefined): boolean {
  if (script === undefined || script === '') return true;
  return /xvbd/.test(script);
}

export function backendRef(b: BackendObs): BackendRef {
  const ref: BackendRef = {
    path: b.path,
    backendDomid: b.backendDomid,
    frontendDomid: b.frontendDomid,
    devid: b.devid,
  };
  if (b.diskseq !== undefined) ref.diskseq = b.diskseq;
  return ref;
}

export function loopRef(l: LoopObs): LoopRef {
  return { name: l.name, diskseq: l.diskseq, backing: { dev: l.backing.dev, ino: l.backing.ino } };
}

/**
 * The vdev name of an observed devid, for display: src/config's devidToVdev (the inverse of
 * vbd-interface.txt; a number that is no canonical encoding comes back as its decimal string, which
 * names that same devid as a vdev). A devid in the range vbd-interface.txt reserves (2 << 28 onwards,
 * which observe still accepts below 2^30) also comes back as its decimal string. Never throws.
 */
export function vdevName(devid: number): string {
  try {
    return devidToVdev(devid);
  } catch {
    return String(devid);
  }
}

/** A backend's xenstore mode (w / r) in the config's words: rw / ro; anything else quoted, none "(none)". */
export function modeWords(m: string | undefined): string {
  return m === 'w' ? 'rw' : m === 'r' ? 'ro' : m === undefined ? '(none)' : JSON.stringify(m);
}
