// The crash harness's independent checker: what the host looks like according to the real tools
// (`xenstore-ls -f`, `losetup --json`, sysfs diskseq, /proc/*/fd), and the invariants of issue 9 as
// small pure functions over that snapshot. Nothing here uses xvbd's own observation or planner, so a
// bug there cannot hide a broken invariant.

/** A backend dir under /local/domain/0/backend/vbd, with the nodes the invariants look at. */
export interface Backend {
  path: string;
  domid: number;
  devid: number;
  params?: string;
  mode?: string;
  /** physical-device as written: hex "major:minor". */
  physicalDevice?: string;
  diskseq?: string;
  /** xvbd-inode: "<st_dev>:<st_ino>", decimal. */
  inode?: string;
  online?: string;
  hotplugStatus?: string;
}

/** A bound loop device as losetup reports it, with its sysfs diskseq. */
export interface LoopDev {
  /** "loop30" */
  name: string;
  /** decimal "7:30" */
  majMin: string;
  backFile: string;
  /** the backing file's identity in xvbd-inode's format, "<st_dev>:<st_ino>" */
  backing: string;
  ro: boolean;
  autoclear: boolean;
  diskseq?: string;
}

export interface Holder {
  pid: number;
  /** "keeper", "daemon", "simulator", "test" (the fake systemd), or the process's command name. */
  role: string;
}

export interface HostSnapshot {
  backends: Backend[];
  loops: LoopDev[];
  /** Who has each device open, by decimal "major:minor". */
  holders: Map<string, Holder[]>;
  /** The simulator's pid: its blkback's opens do not count as a holder in dom0. */
  simulatorPid: number;
  /** Identity ("<st_dev>:<st_ino>") of each backend's params file, by path; absent when it cannot be stat'ed. */
  sources: Map<string, string>;
  /** The trial's image directory: a bound device backed by a file under it is ours. */
  imagesDir: string;
}

export interface Violation {
  invariant: 'a' | 'b' | 'c' | 'd' | 'e';
  /** The backend path or the device the violation is about (stable across trials, for grouping). */
  subject: string;
  message: string;
}

// ---- parsing -----------------------------------------------------------------------------------

/** xenstore-ls prints values C-escaped (\t, \n, \\, \ooo octal); this undoes it. */
export function unescapeXs(v: string): string {
  return v.replace(/\\([0-7]{3}|.)/g, (_, e: string) => {
    if (e.length === 3) return String.fromCharCode(Number.parseInt(e, 8));
    return ({ t: '\t', n: '\n', r: '\r', f: '\f', a: '\x07', b: '\b', v: '\v' } as Record<string, string>)[e] ?? e;
  });
}

/** `xenstore-ls -f` output: one `<path> = "<value>"` per line. */
export function parseXenstoreLs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^(\/\S*) = "(.*)"$/.exec(line);
    if (!m) throw new Error(`xenstore-ls -f: cannot parse line ${JSON.stringify(line.slice(0, 200))}`);
    out.set(m[1]!, unescapeXs(m[2]!));
  }
  return out;
}

const BACKEND_RE = /^\/local\/domain\/0\/backend\/vbd\/(\d+)\/(\d+)$/;

/** Every backend dir of the tree with its nodes. */
export function backendsOf(tree: Map<string, string>): Backend[] {
  const out: Backend[] = [];
  for (const path of tree.keys()) {
    const m = BACKEND_RE.exec(path);
    if (!m) continue;
    const node = (n: string) => tree.get(`${path}/${n}`);
    const b: Backend = { path, domid: Number(m[1]), devid: Number(m[2]) };
    const set = (k: keyof Backend, n: string) => {
      const v = node(n);
      if (v !== undefined) (b as unknown as Record<string, string>)[k] = v;
    };
    set('params', 'params');
    set('mode', 'mode');
    set('physicalDevice', 'physical-device');
    set('diskseq', 'diskseq');
    set('inode', 'xvbd-inode');
    set('online', 'online');
    set('hotplugStatus', 'hotplug-status');
    out.push(b);
  }
  return out.sort((x, y) => x.domid - y.domid || x.devid - y.devid);
}

/** st_dev as the kernel's new_encode_dev / glibc makedev compute it (what stat(2) and xvbd-inode show). */
export function makedev(major: number, minor: number): number {
  return (major % 4096) * 256 + (minor % 256) + Math.floor(minor / 256) * 2 ** 20 + Math.floor(major / 4096) * 2 ** 32;
}

/** `losetup --list --json -O NAME,MAJ:MIN,BACK-FILE,BACK-INO,BACK-MAJ:MIN,RO,AUTOCLEAR` (empty text: none bound). */
export function parseLosetup(json: string, diskseqOf: (name: string) => string | undefined = () => undefined): LoopDev[] {
  if (json.trim() === '') return [];
  const doc = JSON.parse(json) as { loopdevices?: Record<string, unknown>[] };
  return (doc.loopdevices ?? []).map((d) => {
    const str = (k: string) => String(d[k] ?? '').trim();
    const name = str('name').replace(/^\/dev\//, '');
    const [bmaj, bmin] = str('back-maj:min').split(':').map(Number);
    const flag = (k: string) => d[k] === true || d[k] === '1' || d[k] === 1;
    const dev: LoopDev = {
      name,
      majMin: str('maj:min'),
      backFile: str('back-file'),
      backing: `${makedev(bmaj ?? 0, bmin ?? 0)}:${str('back-ino')}`,
      ro: flag('ro'),
      autoclear: flag('autoclear'),
    };
    const seq = diskseqOf(name);
    if (seq !== undefined) dev.diskseq = seq;
    return dev;
  });
}

/** physical-device's hex "major:minor" as decimal "7:30"; undefined when malformed. */
export function pdMajMin(pd: string): string | undefined {
  const m = /^([0-9a-fA-F]+):([0-9a-fA-F]+)$/.exec(pd.trim());
  return m ? `${Number.parseInt(m[1]!, 16)}:${Number.parseInt(m[2]!, 16)}` : undefined;
}

// ---- the invariants ----------------------------------------------------------------------------

/** Taken offline: no physical-device any more, or online=0 with hotplug-status error. */
export function isOffline(b: Backend): boolean {
  return b.physicalDevice === undefined || (b.online === '0' && b.hotplugStatus === 'error');
}

function liveBackends(s: HostSnapshot): Backend[] {
  return s.backends.filter((b) => !isOffline(b));
}

function loopByMajMin(s: HostSnapshot): Map<string, LoopDev> {
  return new Map(s.loops.map((l) => [l.majMin, l]));
}

function who(hs: Holder[] | undefined): string {
  return hs && hs.length > 0 ? hs.map((h) => `${h.role} ${h.pid}`).join(', ') : 'nobody';
}

/** (a) every live backend names its own device: bound, the recorded diskseq and inode, backing its params. */
export function checkNamesOwnDevice(s: HostSnapshot): Violation[] {
  const loops = loopByMajMin(s);
  const out: Violation[] = [];
  for (const b of liveBackends(s)) {
    const mm = pdMajMin(b.physicalDevice!);
    const say = (why: string) => out.push({ invariant: 'a', subject: b.path, message: `${b.path} (params ${b.params ?? '?'}): ${why}` });
    if (!mm) {
      say(`physical-device ${JSON.stringify(b.physicalDevice)} is not hex major:minor`);
      continue;
    }
    const l = loops.get(mm);
    if (!l) {
      say(`physical-device ${b.physicalDevice} (${mm}) names a freed device: no loop device is bound there`);
      continue;
    }
    const why: string[] = [];
    if (l.diskseq !== b.diskseq) why.push(`its diskseq is ${l.diskseq ?? 'unknown'}, the backend records ${b.diskseq ?? 'none'}`);
    if (l.backing !== b.inode) why.push(`it backs inode ${l.backing}, the backend records xvbd-inode ${b.inode ?? 'none'}`);
    const src = b.params !== undefined ? s.sources.get(b.params) : undefined;
    if (src !== l.backing) why.push(`it is the loop of ${l.backFile}, not of its params (${src ?? 'not found'})`);
    if (why.length > 0) say(`physical-device ${b.physicalDevice} is /dev/${l.name}: ${why.join('; ')}`);
  }
  return out;
}

/** (b) no read-write image is open for two backends: a mode w backend's image used by no other live backend. */
export function checkNoSharedWritable(s: HostSnapshot): Violation[] {
  const loops = loopByMajMin(s);
  const byImage = new Map<string, { b: Backend; l: LoopDev }[]>();
  for (const b of liveBackends(s)) {
    const l = loops.get(pdMajMin(b.physicalDevice!) ?? '');
    if (!l) continue;
    const users = byImage.get(l.backing) ?? [];
    users.push({ b, l });
    byImage.set(l.backing, users);
  }
  const out: Violation[] = [];
  for (const [image, users] of byImage) {
    if (users.length < 2 || !users.some((u) => u.b.mode?.includes('w'))) continue;
    const list = users.map((u) => `(${u.b.domid},${u.b.devid},${u.b.mode ?? '?'}) via /dev/${u.l.name}`).join(' and ');
    out.push({ invariant: 'b', subject: users[0]!.l.backFile, message: `read-write image ${users[0]!.l.backFile} (inode ${image}) is used by ${list}` });
  }
  return out;
}

/** What (c) makes of the devices backed by our images that no live backend names. */
export interface LeakReport {
  /** Held, but by no keeper: nothing will ever let go of them. */
  leaked: Violation[];
  /** Held by a keeper: an adopt whose backend never committed, released after the keeper's grace period. */
  pending: LoopDev[];
  /** Held by nobody and autoclear: the kernel is freeing them right now. */
  freeing: LoopDev[];
}

/** (c) nothing leaked: every bound device backed by one of our images is named by a live backend. */
export function checkNoLeak(s: HostSnapshot): LeakReport {
  const named = new Set(liveBackends(s).map((b) => pdMajMin(b.physicalDevice!)));
  const r: LeakReport = { leaked: [], pending: [], freeing: [] };
  for (const l of s.loops) {
    if (!l.backFile.startsWith(s.imagesDir + '/') || named.has(l.majMin)) continue;
    const hs = s.holders.get(l.majMin) ?? [];
    if (hs.length === 0 && l.autoclear) r.freeing.push(l);
    else if (hs.some((h) => h.role === 'keeper')) r.pending.push(l);
    else {
      const how = l.autoclear ? `held by ${who(hs)}` : 'without autoclear';
      r.leaked.push({ invariant: 'c', subject: l.backFile, message: `/dev/${l.name} (${l.majMin}, diskseq ${l.diskseq ?? '?'}) backs ${l.backFile}, no live backend names it; ${how}` });
    }
  }
  return r;
}

/**
 * (c), later: a device a keeper held for no backend must be gone once the keeper's grace period has
 * passed. `firstSeen` maps "<name>@<diskseq>" to when it was first seen pending.
 */
export function checkPendingExpired(pending: LoopDev[], firstSeen: Map<string, number>, now: number, graceMs: number): Violation[] {
  return pending
    .filter((l) => now - (firstSeen.get(pendingKey(l)) ?? now) > graceMs)
    .map((l) => ({
      invariant: 'c' as const,
      subject: l.backFile,
      message: `/dev/${l.name} (diskseq ${l.diskseq}) backs ${l.backFile}, no live backend names it, and a keeper still holds it ${Math.round((now - firstSeen.get(pendingKey(l))!) / 1000)} s after it was first seen (grace ${graceMs / 1000} s)`,
    }));
}

export function pendingKey(l: LoopDev): string {
  return `${l.name}@${l.diskseq}`;
}

/** (d) every device a live backend names is held open in dom0 by someone besides blkback (the simulator). */
export function checkHeld(s: HostSnapshot): Violation[] {
  const loops = loopByMajMin(s);
  const out: Violation[] = [];
  for (const b of liveBackends(s)) {
    const mm = pdMajMin(b.physicalDevice!);
    const l = mm !== undefined ? loops.get(mm) : undefined;
    if (!l) continue; // a freed device: (a) says so
    const hs = s.holders.get(l.majMin) ?? [];
    if (hs.some((h) => h.pid !== s.simulatorPid)) continue;
    out.push({ invariant: 'd', subject: b.path, message: `${b.path}: /dev/${l.name} (diskseq ${l.diskseq}) is held by ${hs.length ? 'blkback (the simulator) only' : 'nobody'}` });
  }
  return out;
}

/** (a), (b), (c) and (d) at once; (c)'s pending and freeing devices are returned for the caller to judge later. */
export function checkAll(s: HostSnapshot): { violations: Violation[]; leaks: LeakReport } {
  const leaks = checkNoLeak(s);
  return {
    violations: [...checkNamesOwnDevice(s), ...checkNoSharedWritable(s), ...leaks.leaked, ...checkHeld(s)],
    leaks,
  };
}
