// Differential xenstore programs: a sequence of raw operations on named connections, played against a
// xenstored socket; every message each connection receives (replies and watch events, in order) is
// recorded in a normalized form (transaction ids and directory generations become symbols), so the
// recording of the real xenstored and of the simulator can be compared step by step.
//
// Ordering is made deterministic with barriers: after each step every open connection sends one
// GET_DOMAIN_PATH and waits for its reply; a server that handles requests in order has by then sent
// every watch event the step caused, so the events land in that step's record (barrier replies are
// not recorded).
import { execFile } from 'node:child_process';
import { RawXs, XS_TYPES, typeName, type RawMsg } from './rawxs.js';

export type Step =
  | { k: 'op'; c: string; type: string | number; payload: Buffer; tx?: string | number; bind?: string }
  | { k: 'ls'; args: string[] }
  | { k: 'open'; c: string }
  | { k: 'close'; c: string };

export interface Program {
  name: string;
  /** run before the program, not recorded (e.g. removing leftovers) */
  prepare: string[];
  steps: Step[];
}

export interface NormMsg {
  on: string;
  type: string;
  payload: string;
  /** 'echo' when the reply carries the request's req_id, else the value */
  req?: 'echo' | number;
  /** symbolic transaction id in the header ('0' for none) */
  tx?: string;
}

export type StepRecord = { step: string; msgs: (NormMsg | { on: string; closed: true } | { on: string; timeout: true } | { ls: { code: number; out: string } })[] };

const BARRIER_BASE = 0x70000000;

/** JSON string with NULs shown as \\0 (payloads are NUL-separated). */
const show = (s: string) => JSON.stringify(s).replace(/\\u0000/g, '\\0');

export function describe(s: Step): string {
  switch (s.k) {
    case 'op': {
      const t = typeof s.type === 'number' ? `type ${s.type}` : s.type;
      const tx = s.tx !== undefined && s.tx !== 0 ? `@${s.tx}` : '';
      const p = s.payload.length > 80 ? `${show(s.payload.subarray(0, 40).toString('utf8'))}...(${s.payload.length} bytes)` : show(s.payload.toString('utf8'));
      return `${s.c}: ${t}${tx} ${p}${s.bind ? ` -> ${s.bind}` : ''}`;
    }
    case 'ls':
      return `xenstore-ls ${s.args.join(' ')}`;
    case 'open':
      return `open ${s.c}`;
    case 'close':
      return `close ${s.c}`;
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((res) => {
    execFile(cmd, args, { env, encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      res({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** Plays a program against the xenstored at socketPath; returns one record per step. */
export async function play(p: Program, socketPath: string, opts: { replyTimeoutMs?: number } = {}): Promise<StepRecord[]> {
  const replyTimeout = opts.replyTimeoutMs ?? 5000;
  const conns = new Map<string, RawXs>();
  const seen = new Map<string, number>(); // inbox position already recorded, per connection
  const txNames = new Map<number, string>(); // real id -> symbol
  const txIds = new Map<string, number>(); // symbol -> real id
  let barrierId = BARRIER_BASE;
  const barrierReqs = new Set<number>();
  const env = { ...process.env, XENSTORED_PATH: socketPath };

  const open = async (c: string) => {
    const x = await RawXs.open(socketPath);
    conns.set(c, x);
    seen.set(c, 0);
  };
  const txSym = (n: number) => (n === 0 ? '0' : txNames.get(n) ?? `?${n}`);
  const normalize = (c: string, m: RawMsg, sentReq: number | undefined): NormMsg => {
    const type = typeName(m.type);
    let payload = m.payload.toString('utf8');
    if (type === 'TRANSACTION_START' && /^\d+\0$/.test(payload)) payload = '<tx>\0';
    if (type === 'DIRECTORY_PART') payload = payload.replace(/^\d+\0/, '<gen>\0');
    const n: NormMsg = { on: c, type, payload };
    if (type !== 'WATCH_EVENT') n.req = sentReq !== undefined && m.reqId === sentReq ? 'echo' : m.reqId;
    else if (m.reqId !== 0) n.req = m.reqId;
    n.tx = txSym(m.txId);
    return n;
  };
  const collect = (rec: StepRecord, sent: Map<string, number>) => {
    for (const [c, x] of conns) {
      const from = seen.get(c) ?? 0;
      for (const m of x.inbox.slice(from)) {
        if (barrierReqs.has(m.reqId) && m.type !== XS_TYPES.WATCH_EVENT) continue;
        rec.msgs.push(normalize(c, m, sent.get(c)));
      }
      seen.set(c, x.inbox.length);
      if (x.closed && !rec.msgs.some((r) => 'closed' in r && r.on === c)) {
        rec.msgs.push({ on: c, closed: true });
        conns.delete(c);
      }
    }
  };
  const barrier = async () => {
    await Promise.all(
      [...conns.values()]
        .filter((x) => !x.closed)
        .map(async (x) => {
          const id = barrierId++;
          barrierReqs.add(id);
          x.send(XS_TYPES.GET_DOMAIN_PATH, 0, Buffer.from('0\0'), id);
          await x.waitFor((ib) => ib.some((m) => m.reqId === id && m.type !== XS_TYPES.WATCH_EVENT), replyTimeout);
        }),
    );
  };

  // preparation, unrecorded, on its own connection
  const prep = await RawXs.open(socketPath);
  for (const path of p.prepare) {
    const id = prep.send(XS_TYPES.RM, 0, Buffer.from(`${path}\0`));
    await prep.waitFor((ib) => ib.some((m) => m.reqId === id), replyTimeout);
  }
  prep.close();

  const out: StepRecord[] = [];
  try {
    for (const s of p.steps) {
      const rec: StepRecord = { step: describe(s), msgs: [] };
      const sent = new Map<string, number>();
      if (s.k === 'open') {
        await open(s.c);
      } else if (s.k === 'close') {
        conns.get(s.c)?.close();
        conns.delete(s.c);
      } else if (s.k === 'ls') {
        const r = await run('xenstore-ls', s.args, env);
        rec.msgs.push({ ls: r });
      } else {
        if (!conns.has(s.c)) await open(s.c);
        const x = conns.get(s.c)!;
        const type = typeof s.type === 'number' ? s.type : XS_TYPES[s.type];
        if (type === undefined) throw new Error(`unknown xenstore message type ${s.type}`);
        let tx = 0;
        if (typeof s.tx === 'number') tx = s.tx;
        else if (typeof s.tx === 'string' && s.tx !== '0') {
          const id = txIds.get(s.tx);
          if (id === undefined) throw new Error(`program ${p.name}: transaction ${s.tx} not started`);
          tx = id;
        }
        const from = x.inbox.length;
        const req = x.send(type, tx, s.payload);
        sent.set(s.c, req);
        const got = await x.waitFor((ib) => ib.slice(from).some((m) => m.reqId === req && m.type !== XS_TYPES.WATCH_EVENT), replyTimeout);
        const reply = x.inbox.slice(from).find((m) => m.reqId === req && m.type !== XS_TYPES.WATCH_EVENT);
        if (s.bind && reply && reply.type === XS_TYPES.TRANSACTION_START) {
          const id = Number.parseInt(reply.payload.toString('utf8'), 10);
          txIds.set(s.bind, id);
          txNames.set(id, s.bind);
        }
        if (!got && !x.closed) rec.msgs.push({ on: s.c, timeout: true });
      }
      await barrier();
      collect(rec, sent);
      out.push(rec);
    }
  } finally {
    for (const x of conns.values()) x.close();
  }
  return out;
}

export interface StepDiff {
  index: number;
  step: string;
  real: StepRecord['msgs'] | undefined;
  sim: StepRecord['msgs'] | undefined;
}

/** Steps whose records differ (by JSON), in order. */
export function diffRecords(real: StepRecord[], sim: StepRecord[]): StepDiff[] {
  const out: StepDiff[] = [];
  const n = Math.max(real.length, sim.length);
  for (let i = 0; i < n; i++) {
    const a = real[i];
    const b = sim[i];
    if (JSON.stringify(a?.msgs) !== JSON.stringify(b?.msgs)) {
      out.push({ index: i, step: a?.step ?? b?.step ?? '?', real: a?.msgs, sim: b?.msgs });
    }
  }
  return out;
}

function fmtMsgs(m: StepRecord['msgs'] | undefined): string {
  if (!m) return '(no step)';
  if (m.length === 0) return '(nothing)';
  return m
    .map((x) => {
      if ('ls' in x) return `exit ${x.ls.code}:\n${x.ls.out.replace(/\n$/, '').split('\n').map((l) => `        | ${l}`).join('\n')}`;
      if ('closed' in x) return `${x.on} connection closed`;
      if ('timeout' in x) return `${x.on} no reply`;
      const extra = [x.req !== undefined && x.req !== 'echo' ? `req_id=${x.req}` : '', x.tx && x.tx !== '0' ? `tx=${x.tx}` : ''].filter(Boolean).join(' ');
      return `${x.on} ${x.type} ${show(x.payload)}${extra ? ` (${extra})` : ''}`;
    })
    .join('; ');
}

/** A readable report of differences: step, what the real xenstored sent, what the simulator sent. */
export function formatDiffs(diffs: StepDiff[]): string {
  return diffs
    .map((d) => `step ${d.index + 1}: ${d.step}\n    real xenstored: ${fmtMsgs(d.real)}\n    simulator:      ${fmtMsgs(d.sim)}`)
    .join('\n');
}
