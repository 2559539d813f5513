// Blkback sequences: the same backend/frontend xenstore writes played against the real xen-blkback
// (dom0) and the simulated one (src/sim on the host). After each step, once the state is stable, a
// snapshot is taken: the backend dir, the frontend state, the error node, the xen-backend sysfs entry
// (its physical_device/mode files appear only while blkback holds the device) and the loop device
// (bound, autoclear). The loop device's name and numbers are normalized, so the snapshots compare.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { RawXs, XS_TYPES, pv, z } from './rawxs.js';

export interface BlkEnv {
  socketPath: string;
  /** where vbd-<domid>-<devid>/ appear: /sys/bus/xen-backend/devices, or the simulator's sysfsDir */
  sysfsDir: string;
  /** wait for the backend to process what is pending (the simulator's settle(); a no-op for real Xen) */
  settle(): Promise<void>;
  /** a snapshot is taken when two consecutive ones, pollMs apart, are equal */
  pollMs: number;
  tmpDir: string;
}

export interface Snapshot {
  backend: Record<string, string> | null;
  frontendState: string | null;
  /** names of the frontend dir's nodes (values like ring-ref differ by nature) */
  frontendKeys: string[] | null;
  error: string | null;
  /** the frontend's error node (xenbus_dev_fatal of a frontend driver) */
  feError: string | null;
  sysfs: { entry: boolean; physical_device: string | null; mode: string | null };
  loop: { bound: boolean; autoclear: string | null };
}

export interface SeqCtx {
  xs: RawXs;
  feDomid: number;
  B: string;
  F: string;
  devid: number;
  loopDev: string;
  pd: string;
}

export interface SeqStep {
  name: string;
  run(c: SeqCtx): Promise<void>;
  /** keep polling (up to 20 s) until this holds, then until stable: for multi-stage reactions */
  until?(s: Snapshot): boolean;
}

export interface Sequence {
  name: string;
  devid: number;
  /** the frontend's domain: 1 (absent: a fake frontend, no driver) unless a real driver is wanted */
  feDomid?: number;
  /** dom0's xen-blkfront drives the frontend (real Xen); the simulator's auto-connecting frontend (host) */
  blkfront?: boolean;
  /** leaves dom0's xenbus wedged (blkback never lets go): played by the scenario that runs last */
  wedges?: boolean;
  steps: SeqStep[];
}

export interface StepSnap {
  step: string;
  snap: Snapshot;
  /** ms until stable */
  ms: number;
}

const FAKE_FE_DOMID = 1;

async function write(xs: RawXs, path: string, value: string, tx = 0): Promise<void> {
  await xs.ok(XS_TYPES.WRITE, pv(path, value), tx);
}
async function rm(xs: RawXs, path: string): Promise<void> {
  const r = await xs.call(XS_TYPES.RM, z(path));
  if (r.type === XS_TYPES.ERROR && r.payload.toString() !== 'ENOENT\0') throw new Error(`rm ${path}: ${r.payload.toString()}`);
}

async function frontendDir(c: SeqCtx, state = '1', tx = 0): Promise<void> {
  await write(c.xs, `${c.F}/state`, state, tx);
  await write(c.xs, `${c.F}/backend`, c.B, tx);
  await write(c.xs, `${c.F}/backend-id`, '0', tx);
  await write(c.xs, `${c.F}/virtual-device`, String(c.devid), tx);
  await write(c.xs, `${c.F}/device-type`, 'disk', tx);
}

async function backendDir(c: SeqCtx, o: { mode?: string | null; tx?: number; dev?: string } = {}): Promise<void> {
  const tx = o.tx ?? 0;
  if (o.dev !== undefined) await write(c.xs, `${c.B}/dev`, o.dev, tx);
  await write(c.xs, `${c.B}/frontend`, c.F, tx);
  await write(c.xs, `${c.B}/frontend-id`, String(c.feDomid), tx);
  await write(c.xs, `${c.B}/online`, '1', tx);
  await write(c.xs, `${c.B}/state`, '1', tx);
  await write(c.xs, `${c.B}/params`, c.loopDev, tx);
  if (o.mode !== null) await write(c.xs, `${c.B}/mode`, o.mode ?? 'w', tx);
  await write(c.xs, `${c.B}/type`, 'phy', tx);
  await write(c.xs, `${c.B}/device-type`, 'disk', tx);
}

const step = (name: string, run: (c: SeqCtx) => Promise<void>): SeqStep => ({ name, run });
const feDir = step('frontend dir written (state 1)', (c) => frontendDir(c));
const beDir = step('backend dir written (state 1, online 1, params, mode w, type phy)', (c) => backendDir(c));
const physDev = step('physical-device written (hex major:minor)', (c) => write(c.xs, `${c.B}/physical-device`, c.pd));
const feState = (s: string, why = '') => step(`frontend state ${s}${why}`, (c) => write(c.xs, `${c.F}/state`, s));
const rmBackend = step('backend dir removed', (c) => rm(c.xs, c.B));
const rmFrontend = step('frontend dir removed', (c) => rm(c.xs, c.F));
const bothConnected = (s: Snapshot) => s.backend?.state === '4' && s.frontendState === '4';
const bothClosed = (s: Snapshot) => s.backend?.state === '6' && s.frontendState === '6';
const detach = step('losetup -d on the loop device', async (c) => {
  execFileSync('losetup', ['-d', c.loopDev]);
});

/** The sequences, as a table: each has its own devid and its own loop device. */
export function sequences(): Sequence[] {
  return [
    {
      name: 'frontend first, whole life',
      devid: 51712,
      steps: [feDir, beDir, physDev, detach, feState('3', ' without ring-ref/event-channel'), feState('6'), rmBackend, rmFrontend],
    },
    {
      name: 'backend before frontend',
      devid: 51728,
      steps: [
        beDir,
        feDir,
        physDev,
        step('backend online rewritten (1)', (c) => write(c.xs, `${c.B}/online`, '1')),
        rmBackend,
        step('backend dir written again, frontend exists', (c) => backendDir(c)),
        physDev,
        detach,
        rmBackend,
        rmFrontend,
      ],
    },
    {
      name: 'frontend and backend in one transaction, close and reconnect',
      devid: 51744,
      steps: [
        step('frontend + backend dirs in one transaction', async (c) => {
          const id = Number.parseInt(await c.xs.ok(XS_TYPES.TRANSACTION_START, z('')), 10);
          await frontendDir(c, '1', id);
          await backendDir(c, { tx: id });
          await c.xs.ok(XS_TYPES.TRANSACTION_END, z('T'), id);
        }),
        physDev,
        feState('5'),
        feState('6'),
        feState('1', ' (reconnect after Closed)'),
        detach,
        rmBackend,
        rmFrontend,
      ],
    },
    {
      name: 'online 0, then the frontend closes',
      devid: 51760,
      steps: [feDir, beDir, physDev, detach, step('backend online 0', (c) => write(c.xs, `${c.B}/online`, '0')), feState('6'), rmBackend, rmFrontend],
    },
    {
      name: 'bad physical-device, missing mode, read-only',
      devid: 51776,
      steps: [
        feDir,
        beDir,
        step('physical-device "zz" (not hex major:minor)', (c) => write(c.xs, `${c.B}/physical-device`, 'zz')),
        rmBackend,
        step('backend dir written again without mode', (c) => backendDir(c, { mode: null })),
        physDev,
        rmBackend,
        step('backend dir written again with mode r', (c) => backendDir(c, { mode: 'r' })),
        physDev,
        detach,
        rmBackend,
        rmFrontend,
      ],
    },
    {
      name: 'a real frontend (blkfront in dom0): frontend dir written before its backend dir',
      devid: 51808,
      feDomid: 0,
      blkfront: true,
      steps: [
        // in one transaction: blkfront probes as soon as the dir appears, and node by node its error
        // depends on the race ("reading other end details" before backend/backend-id are there)
        step('frontend dir written in one transaction (state 1), no backend dir', async (c) => {
          const id = Number.parseInt(await c.xs.ok(XS_TYPES.TRANSACTION_START, z('')), 10);
          await frontendDir(c, '1', id);
          await c.xs.ok(XS_TYPES.TRANSACTION_END, z('T'), id);
        }),
        beDir,
        physDev,
        rmBackend,
        rmFrontend,
      ],
    },
    {
      name: 'a real frontend (blkfront in dom0), backend dir without "dev"',
      devid: 51824,
      feDomid: 0,
      blkfront: true,
      wedges: true,
      steps: [
        step('frontend + backend dirs (no "dev" node) in one transaction', async (c) => {
          const id = Number.parseInt(await c.xs.ok(XS_TYPES.TRANSACTION_START, z('')), 10);
          await frontendDir(c, '1', id);
          await backendDir(c, { tx: id });
          await c.xs.ok(XS_TYPES.TRANSACTION_END, z('T'), id);
        }),
        { ...physDev, until: (s) => s.error !== null || bothConnected(s) },
        rmBackend,
        rmFrontend,
      ],
    },
    {
      name: 'a real frontend (blkfront in dom0) connects, then the toolstack closes it',
      devid: 51840,
      feDomid: 0,
      blkfront: true,
      steps: [
        step('frontend + backend dirs (dev xvdj) in one transaction', async (c) => {
          const id = Number.parseInt(await c.xs.ok(XS_TYPES.TRANSACTION_START, z('')), 10);
          await frontendDir(c, '1', id);
          await backendDir(c, { tx: id, dev: 'xvdj' });
          await c.xs.ok(XS_TYPES.TRANSACTION_END, z('T'), id);
        }),
        { ...physDev, name: 'physical-device written: both ends connect', until: bothConnected },
        detach,
        {
          name: 'toolstack closes: backend online 0, state 5 (frontend follows to 6)',
          run: async (c) => {
            await write(c.xs, `${c.B}/online`, '0');
            await write(c.xs, `${c.B}/state`, '5');
          },
          until: bothClosed,
        },
        rmBackend,
        rmFrontend,
      ],
    },
  ];
}

function readText(p: string): string | null {
  try {
    return readFileSync(p, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The nodes of a (flat) dir, name -> value; null when the dir does not exist. Reads are pipelined. */
async function listDir(xs: RawXs, path: string): Promise<Record<string, string> | null> {
  const d = await xs.call(XS_TYPES.DIRECTORY, z(path));
  if (d.type === XS_TYPES.ERROR) return null;
  const kids = d.payload.toString('utf8').split('\0').filter(Boolean).sort();
  const vals = await Promise.all(kids.map((k) => xs.call(XS_TYPES.READ, z(`${path}/${k}`))));
  const out: Record<string, string> = {};
  kids.forEach((k, i) => {
    const v = vals[i]!;
    if (v.type !== XS_TYPES.ERROR) out[k] = v.payload.toString('utf8');
  });
  return out;
}

async function snapshot(env: BlkEnv, c: SeqCtx): Promise<Snapshot> {
  const norm = (s: string | null) => (s === null ? null : s === c.loopDev ? '<loop>' : s === c.pd ? '<loop major:minor>' : s);
  const [raw, fs, fk, err, feErr] = await Promise.all([
    listDir(c.xs, c.B),
    c.xs.call(XS_TYPES.READ, z(`${c.F}/state`)),
    c.xs.call(XS_TYPES.DIRECTORY, z(c.F)),
    c.xs.call(XS_TYPES.READ, z(`/local/domain/0/error/backend/vbd/${c.feDomid}/${c.devid}/error`)),
    c.xs.call(XS_TYPES.READ, z(`/local/domain/${c.feDomid}/error/device/vbd/${c.devid}/error`)),
  ]);
  let backend: Record<string, string> | null = null;
  if (raw) {
    backend = {};
    for (const [k, v] of Object.entries(raw)) backend[k] = norm(v)!;
  }
  const sys = join(env.sysfsDir, `vbd-${c.feDomid}-${c.devid}`);
  const lname = c.loopDev.replace('/dev/', '');
  // bound to this sequence's own image: once freed, the number may be taken by anybody else on the host
  const raw_ = readText(`/sys/block/${lname}/loop/backing_file`);
  const backing = raw_ !== null && raw_.endsWith(`seq-${c.devid}.img`) ? raw_ : null;
  return {
    backend,
    frontendState: fs.type === XS_TYPES.ERROR ? null : fs.payload.toString('utf8'),
    frontendKeys: fk.type === XS_TYPES.ERROR ? null : fk.payload.toString('utf8').split('\0').filter(Boolean).sort(),
    error: err.type === XS_TYPES.ERROR ? null : err.payload.toString('utf8'),
    feError: feErr.type === XS_TYPES.ERROR ? null : feErr.payload.toString('utf8'),
    sysfs: { entry: existsSync(sys), physical_device: norm(readText(join(sys, 'physical_device'))), mode: readText(join(sys, 'mode')) },
    loop: { bound: backing !== null && backing !== '', autoclear: backing ? readText(`/sys/block/${lname}/loop/autoclear`) : null },
  };
}

/**
 * A loop device with autoclear that blkback no longer holds is being freed: the kernel clears it when
 * the last opener goes, possibly a little later (its rundown is asynchronous on recent kernels, and
 * udev may have it open for a moment). Such a snapshot is not final yet.
 */
const inTransit = (s: Snapshot) => s.loop.bound && s.loop.autoclear === '1' && s.sysfs.physical_device === null;

/** Whether a process other than this one has the device open (other tests scanning loop devices). */
function openedElsewhere(dev: string): boolean {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid);
  } catch {
    return false;
  }
  for (const p of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${p}/fd/${fd}`) === dev) return true;
      } catch {
        // gone
      }
    }
  }
  return false;
}

async function stableSnapshot(env: BlkEnv, c: SeqCtx, until?: (s: Snapshot) => boolean): Promise<{ snap: Snapshot; ms: number }> {
  const t0 = Date.now();
  await env.settle();
  let prev = JSON.stringify(await snapshot(env, c));
  for (let i = 0; i < 100 && Date.now() - t0 < 25_000; i++) {
    await new Promise((r) => setTimeout(r, env.pollMs));
    await env.settle();
    const cur = await snapshot(env, c);
    const s = JSON.stringify(cur);
    const transitLimit = inTransit(cur) && openedElsewhere(c.loopDev) ? 15_000 : 3000;
    const waiting = (until && !until(cur) && Date.now() - t0 < 20_000) || (inTransit(cur) && Date.now() - t0 < transitLimit);
    if (s === prev && !waiting) return { snap: cur, ms: Date.now() - t0 };
    prev = s;
  }
  return { snap: JSON.parse(prev) as Snapshot, ms: Date.now() - t0 };
}

/** Plays one sequence with a fresh loop device (freed at the end whatever happens). */
export async function playSequence(env: BlkEnv, seq: Sequence): Promise<StepSnap[]> {
  const img = join(env.tmpDir, `seq-${seq.devid}.img`);
  execFileSync('truncate', ['-s', '8M', img]);
  const loopDev = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim();
  const lname = loopDev.replace('/dev/', '');
  const pd = readFileSync(`/sys/block/${lname}/dev`, 'utf8')
    .trim()
    .split(':')
    .map((n) => Number(n).toString(16))
    .join(':');
  const xs = await RawXs.open(env.socketPath);
  const feDomid = seq.feDomid ?? FAKE_FE_DOMID;
  const c: SeqCtx = {
    xs,
    feDomid,
    devid: seq.devid,
    B: `/local/domain/0/backend/vbd/${feDomid}/${seq.devid}`,
    F: `/local/domain/${feDomid}/device/vbd/${seq.devid}`,
    loopDev,
    pd,
  };
  const out: StepSnap[] = [];
  try {
    await rm(xs, c.B);
    await rm(xs, c.F);
    await rm(xs, `/local/domain/0/error/backend/vbd/${feDomid}/${seq.devid}`);
    await rm(xs, `/local/domain/${feDomid}/error/device/vbd/${seq.devid}`);
    await env.settle();
    for (const s of seq.steps) {
      await s.run(c);
      const { snap, ms } = await stableSnapshot(env, c, s.until);
      out.push({ step: s.name, snap, ms });
    }
  } finally {
    await rm(xs, c.B).catch(() => undefined);
    await rm(xs, c.F).catch(() => undefined);
    await env.settle();
    xs.close();
    // our own loop device only: detach if still bound to our image (autoclear may have freed it);
    // on a device still held, LOOP_CLR_FD just sets autoclear: it goes when the holder lets go
    const ours = () => (readText(`/sys/block/${lname}/loop/backing_file`) ?? '').endsWith(`seq-${seq.devid}.img`);
    for (let i = 0; i < 5 && ours(); i++) {
      if (readText(`/sys/block/${lname}/loop/autoclear`) !== '1') {
        try {
          execFileSync('losetup', ['-d', loopDev], { stdio: 'ignore' });
        } catch {
          // busy
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return out;
}

export interface SnapDiff {
  index: number;
  step: string;
  fields: { field: string; real: unknown; sim: unknown }[];
}

function flatten(s: Snapshot | undefined): Record<string, unknown> {
  if (!s) return {};
  const f: Record<string, unknown> = {
    'frontend state': s.frontendState,
    'frontend nodes': s.frontendKeys === null ? null : s.frontendKeys.join(' '),
    'error node': s.error,
    'frontend error node': s.feError,
    'sysfs vbd entry': s.sysfs.entry,
    'sysfs physical_device': s.sysfs.physical_device,
    'sysfs mode': s.sysfs.mode,
    'loop bound': s.loop.bound,
    'loop autoclear': s.loop.autoclear,
    'backend dir': s.backend === null ? 'absent' : 'present',
  };
  for (const [k, v] of Object.entries(s.backend ?? {})) f[`backend ${k}`] = v;
  return f;
}

/** Per step, the fields whose values differ between the real and the simulated blkback. */
export function diffSnaps(real: StepSnap[], sim: StepSnap[]): SnapDiff[] {
  const out: SnapDiff[] = [];
  for (let i = 0; i < Math.max(real.length, sim.length); i++) {
    const a = flatten(real[i]?.snap);
    const b = flatten(sim[i]?.snap);
    const fields: SnapDiff['fields'] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) fields.push({ field: k, real: a[k] ?? '(absent)', sim: b[k] ?? '(absent)' });
    }
    if (fields.length > 0) out.push({ index: i, step: real[i]?.step ?? sim[i]?.step ?? '?', fields });
  }
  return out;
}

export function formatSnapDiffs(d: SnapDiff[]): string {
  return d
    .map((x) => `step ${x.index + 1}: ${x.step}\n${x.fields.map((f) => `    ${f.field}: real ${JSON.stringify(f.real)}, simulator ${JSON.stringify(f.sim)}`).join('\n')}`)
    .join('\n');
}

/** One line per step: what the real blkback did (for the README and the log). */
export function summarize(snaps: StepSnap[]): string {
  return snaps
    .map((s, i) => {
      const b = s.snap.backend;
      const held = s.snap.sysfs.physical_device ? 'held' : s.snap.sysfs.entry ? 'probed' : 'no vbd';
      const loop = s.snap.loop.bound ? `loop bound${s.snap.loop.autoclear === '1' ? ' (autoclear)' : ''}` : 'loop freed';
      return `${i + 1}. ${s.step}: backend ${b ? `state ${b.state ?? '-'}` : 'absent'}, frontend ${s.snap.frontendState ?? '-'}, ${held}, ${loop}${s.snap.error ? `, error "${s.snap.error}"` : ''}${s.snap.feError ? `, frontend error "${s.snap.feError}"` : ''} (${s.ms} ms)`;
    })
    .join('\n');
}
