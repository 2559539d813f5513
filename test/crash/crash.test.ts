// Issue 9's crash harness: kill -9 of `xvbd apply`, of a keeper and of the daemon (bare and under a
// fake systemd fd store) at random moments, on 100 disks of 10 auto-connecting simulated guests.
// After every crash the guests remove their frontends' state nodes (blkback closes the devices) and the
// independent checker (checker.ts) looks (a, b, d: the crash alone must not have broken them); then
// xvbd runs again (apply, or the daemon restarted) and the checker asserts everything:
//   (a) no live backend names a freed device, a re-bound one, or another disk's device;
//   (b) no read-write image is used by two backends;
//   (c) no device of ours is bound without a live backend naming it (a keeper's pending hold may
//       last its grace period: judged later);
//   (d) every device a live backend names is held in dom0 by someone besides blkback;
//   (e) `xvbd plan --detailed-exitcode` exits 0 after the re-run.
// Every trial runs and is checked; the test fails at the end with each broken invariant, the
// trials it broke in and the evidence. XVBD_CRASH_SEED=<n> replays a run; XVBD_CRASH_SCALE scales
// the number of trials.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_GRACE_MS } from '../../src/hold/keeper.js';
import { FakeSystemd } from '../daemon/fake-systemd.js';
import { checkAll, checkHeld, checkNamesOwnDevice, checkNoSharedWritable, checkPendingExpired, pendingKey, type LoopDev, type Violation } from './checker.js';
import { CrashHost, type CliRun, type Disk } from './harness.js';
import type { DaemonProc } from '../daemon/harness.js';

const SEED = process.env.XVBD_CRASH_SEED ? Number(process.env.XVBD_CRASH_SEED) : Math.floor(Math.random() * 2 ** 31);
const SCALE = process.env.XVBD_CRASH_SCALE ? Number(process.env.XVBD_CRASH_SCALE) : 1;
/** A keeper lets go of a device no backend recorded after its grace period; a little more for the scheduling. */
const PENDING_GRACE_MS = DEFAULT_GRACE_MS + 5_000;

/** mulberry32: small, seedable, good enough to pick moments and patterns. */
function makeRng(seed: number): { next(): number; int(lo: number, hi: number): number; pick<T>(xs: readonly T[]): T } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return { next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), pick: (xs) => xs[Math.floor(next() * xs.length)]! };
}

type Kind = 'apply' | 'keeper-during-apply' | 'keeper-at-rest' | 'daemon-mid-pass' | 'daemon-at-rest' | 'sd-daemon-mid-pass' | 'sd-daemon-at-rest';

/** Desired states the trials move between: every one of the 10 domains appears in several. */
const PATTERNS: Record<string, (d: Disk) => boolean> = {
  none: () => false,
  all: () => true,
  'first-half': (d) => d.devid < 51712 + 5 * 16,
  'second-half': (d) => d.devid === 51712 || d.devid >= 51712 + 5 * 16,
  'odd-domains': (d) => d.domid % 2 === 1,
  'even-domains': (d) => d.domid % 2 === 0,
};
const PRE_STATES = ['none', 'first-half', 'second-half', 'odd-domains', 'even-domains'];

type Stage = 'after the crash' | 'after the re-run';

interface TrialResult {
  n: number;
  kind: Kind;
  what: string;
  violations: (Violation & { stage: Stage })[];
  ms: number;
}

test('crash harness: kill -9 of apply, keepers and the daemon at random moments; no guest ever gets another guest\'s disk', async (t) => {
  const rng = makeRng(SEED);
  console.log(`crash harness: seed ${SEED} (replay with XVBD_CRASH_SEED=${SEED} npm test -- test/crash)`);
  const host = await CrashHost.start({ domains: 10, disksPerDomain: 10 });
  const results: TrialResult[] = [];
  const firstSeenPending = new Map<string, number>();
  const notes: string[] = [];
  const t0 = performance.now();
  let failed = true;
  try {
    const select = (name: string) => host.disks.filter(PATTERNS[name]!);
    let prune = false;

    /** Right after the crash (and the guests' state removal): nothing has been repaired yet, nothing may be broken. */
    const checkCrash = async (): Promise<Violation[]> => {
      const snap = await host.snapshot();
      return [...checkNamesOwnDevice(snap), ...checkNoSharedWritable(snap), ...checkHeld(snap)];
    };

    /** After the re-run: the whole checker, and (e) meanwhile; devices the kernel is still clearing get a moment first. */
    const checkRerun = async (): Promise<Violation[]> => {
      const planned = host.cli(['plan', '--detailed-exitcode']);
      let r = checkAll(await host.snapshot());
      for (const until = Date.now() + 3000; r.leaks.freeing.length > 0 && Date.now() < until; ) {
        await new Promise((res) => setTimeout(res, 100));
        r = checkAll(await host.snapshot());
      }
      const now = Date.now();
      for (const l of r.leaks.pending) if (!firstSeenPending.has(pendingKey(l))) firstSeenPending.set(pendingKey(l), now);
      const v = [...r.violations, ...checkPendingExpired(r.leaks.pending, firstSeenPending, now, PENDING_GRACE_MS)];
      for (const l of r.leaks.freeing) v.push({ invariant: 'c', subject: l.backFile, message: `/dev/${l.name} (diskseq ${l.diskseq}) backs ${l.backFile}, no backend names it, nobody holds it, and it stays bound` });
      const plan = await planned;
      if (plan.code !== 0) v.push({ invariant: 'e', subject: 'plan', message: `plan --detailed-exitcode exited ${plan.code} after the re-run:\n${excerpt(plan.out)}` });
      return v;
    };

    /** One trial: the crash (ending with the guests' state removal), a look, the re-run, the full check. */
    const runTrial = async (n: number, kind: Kind, crash: () => Promise<string>, rerun: () => Promise<string>) => {
      const start = performance.now();
      let what = await crash();
      const v1 = (await checkCrash()).map((v) => ({ ...v, stage: 'after the crash' as const }));
      what += await rerun();
      const v2 = (await checkRerun()).map((v) => ({ ...v, stage: 'after the re-run' as const }));
      const violations = [...v1, ...v2];
      results.push({ n, kind, what, violations, ms: performance.now() - start });
      const tag = (vs: Violation[]) => (vs.length ? `BROKEN ${[...new Set(vs.map((v) => v.invariant))].join('')} (${vs.length})` : 'ok');
      console.log(`trial ${n} ${kind}: ${what} -> after the crash ${tag(v1)}, after the re-run ${tag(v2)} (${((performance.now() - start) / 1000).toFixed(1)} s)`);
    };

    /** Where the trial starts from (reached from `current` legitimately) and the larger state it attaches. */
    let current = 'all';
    const pickStates = () => {
      const pre = rng.pick(PRE_STATES);
      const within = (a: string, b: string) => select(a).every(PATTERNS[b]!);
      const larger = Object.keys(PATTERNS).filter((p) => p !== pre && within(pre, p) && !within(p, pre));
      const target = rng.pick(['all', ...larger]);
      return { pre, target, attaching: select(target).filter((d) => !PATTERNS[pre]!(d)).length };
    };

    /**
     * Detaches down to `pre`: when only whole domains go, mostly by unplugging them as `xl destroy`
     * does (no xvbd run: fast); otherwise the config without the disks and a prune, by `apply
     * --prune` or by the daemon (prune policy). Returns what it did, or why it did not get there.
     */
    const moveTo = async (pre: string, daemon?: DaemonProc): Promise<string> => {
      const from = current;
      current = pre;
      host.writeConfig(select(pre), { prune });
      if (from === pre) return `stays at ${pre}`;
      const staying = new Set(select(pre).map((d) => d.domid));
      const entering = select(pre).some((d) => !PATTERNS[from]!(d));
      if (!entering && rng.next() < 0.85) {
        const gone = host.domains.filter((d) => !staying.has(d.domid) && select(from).some((k) => k.domid === d.domid));
        if (select(from).every((d) => PATTERNS[pre]!(d) || !staying.has(d.domid))) {
          await host.unplugDomains(gone.map((d) => d.domid));
          return `${from} -> ${pre} by unplugging ${gone.length} domains`;
        }
      }
      if (daemon) return (await host.daemonConverged(daemon)) ? `${from} -> ${pre} by the daemon` : `${from} -> ${pre}: the daemon did NOT converge`;
      const r = await host.cli(['apply', '--prune', '--auto-approve']);
      return `${from} -> ${pre} by apply --prune${r.code === 0 ? '' : ` (exited ${r.code})`}`;
    };

    // ---- phase 1: one-shot apply and the keepers --------------------------------------------
    host.writeConfig(select('all'), { prune });
    const full = await host.cli(['apply', '--auto-approve']);
    assert.equal(full.code, 0, `the first apply attaches all 100 disks:\n${excerpt(full.out)}`);
    // how long an apply takes here, to spread the kills over one: 100 attaches, and a run with nothing to do
    const idle = await host.cli(['apply', '--auto-approve']);
    const attachMs = (disks: number) => ((full.ms - idle.ms) * disks) / 100;
    notes.push(`apply here: ${idle.ms.toFixed(0)} ms with nothing to do, ${full.ms.toFixed(0)} ms for the first 100 attaches`);

    const applyKinds = shuffle<Kind>(rng, [...repeat<Kind>('apply', 9 * SCALE), ...repeat<Kind>('keeper-during-apply', 9 * SCALE), ...repeat<Kind>('keeper-at-rest', 6 * SCALE)]);
    let n = 0;
    for (const kind of applyKinds) {
      await runTrial(++n, kind, async () => {
        const { pre, target, attaching } = pickStates();
        let what = await moveTo(pre);
        host.writeConfig(select(target), { prune });
        current = target;
        what += `, then ${attaching} to attach for ${target}`;
        if (kind === 'keeper-at-rest') {
          const r = await host.cli(['apply', '--auto-approve']);
          const victims = host.keepers();
          const victim = victims.length ? rng.pick(victims) : undefined;
          if (victim) process.kill(victim, 'SIGKILL');
          what += `; apply exited ${r.code}; killed keeper ${victim ?? '(none running!)'} of ${victims.length}`;
        } else {
          what += '; ' + (await killDuringApply(host, rng, kind, { fromMs: idle.ms / 2, toMs: idle.ms + attachMs(attaching) }, attaching));
        }
        return what + `; ${await host.removeFrontendStates()} frontend states removed`;
      }, () => rerunApply(host));
    }

    // ---- phases 2 and 3: the daemon, bare and under a fake systemd --------------------------
    prune = true;
    for (const withSystemd of [false, true]) {
      const sd = withSystemd ? new FakeSystemd() : undefined;
      if (sd) host.systemds.push(sd);
      const prefix = withSystemd ? 'sd-' : '';
      host.writeConfig(select(current), { prune });
      let d = host.startDaemon(sd);
      if (!(await host.daemonConverged(d))) notes.push(`the ${prefix}daemon did not converge at its start:\n${excerpt(d.text())}`);
      const kinds = shuffle<Kind>(rng, [...repeat(`${prefix}daemon-mid-pass` as Kind, 7 * SCALE), ...repeat(`${prefix}daemon-at-rest` as Kind, 6 * SCALE)]);
      for (const kind of kinds) {
        await runTrial(++n, kind, async () => {
          const { pre, target, attaching } = pickStates();
          let what = await moveTo(pre, d);
          host.writeConfig(select(target), { prune });
          current = target;
          what += `, then ${attaching} to attach for ${target}`;
          const before = d.passes().length;
          if (kind.endsWith('at-rest')) {
            const ok = await host.daemonConverged(d);
            what += `; killed at rest${ok ? '' : ' (it had NOT converged)'}`;
          } else {
            d.child.kill('SIGHUP');
            // a pass takes about as long as apply's attaches; the trigger reaches it within the debounce
            const at = Math.round(rng.next() * (100 + attachMs(attaching)));
            await new Promise((r) => setTimeout(r, at));
            what += `; killed ${at} ms after the trigger (${d.passes().length - before} passes had ended meanwhile)`;
          }
          d.child.kill('SIGKILL');
          await d.exited;
          return what + `; ${await host.removeFrontendStates()} frontend states removed`;
        }, async () => {
          d = host.startDaemon(sd);
          const ok = await host.daemonConverged(d);
          return `; restarted${sd ? ` with ${sd.store.length} stored fd(s)` : ''}${ok ? '' : ', did NOT converge'}`;
        });
      }
      if (!withSystemd) {
        // the bare daemon stops for good: its fds go to the keeper, which the systemd daemon takes over from
        await d.stop('SIGTERM');
      }
    }

    // ---- (c), late: what keepers held for no backend must be gone once their grace is over ------
    const last = Math.max(0, ...firstSeenPending.values());
    let late: Violation[] = [];
    for (;;) {
      const r = checkAll(await host.snapshot());
      const still: LoopDev[] = r.leaks.pending;
      if (still.length === 0) break;
      late = checkPendingExpired(still, firstSeenPending, Date.now(), PENDING_GRACE_MS);
      if (late.length === still.length || Date.now() > last + PENDING_GRACE_MS + 5_000) break;
      await new Promise((res) => setTimeout(res, 2_000));
    }
    if (late.length > 0) results.push({ n: ++n, kind: 'keeper-at-rest', what: 'after the last trial: keepers\' holds past their grace', violations: late.map((v) => ({ ...v, stage: 'after the re-run' })), ms: 0 });

    notes.push(`${firstSeenPending.size} device(s) were seen held by a keeper for no backend (an adopt whose commit never came); ${late.length} outlived the keeper's grace`);
    const report = summarize(results, notes, performance.now() - t0);
    t.diagnostic(report);
    console.log(report);
    const broken = results.filter((r) => r.violations.length > 0);
    assert.equal(broken.length, 0, report);
    failed = false;
  } finally {
    const forced = await host.cleanup();
    if (forced.length > 0) {
      const msg = `cleanup had to detach loop devices of our images: ${forced.join(', ')}`;
      if (!failed) assert.fail(msg);
      console.log(msg);
    }
  }
});

/** kill -9 of the apply itself or of one keeper, at a random line of apply's progress or a random time. */
async function killDuringApply(host: CrashHost, rng: ReturnType<typeof makeRng>, kind: Kind, window: { fromMs: number; toMs: number }, attaching: number): Promise<string> {
  let what = '';
  let fired = false;
  const victimAt = rng.next(); // drawn now: the moment of the kill must not change what the seed picks next
  const hit = (child: { kill(s: NodeJS.Signals): boolean }) => {
    if (fired) return;
    fired = true;
    if (kind === 'apply') {
      child.kill('SIGKILL');
      return;
    }
    // a keeper may not be up yet at the first steps: keep looking until the apply ends
    const tryKill = () => {
      const ks = host.keepers();
      if (ks.length > 0) {
        const victim = ks[Math.floor(victimAt * ks.length)]!;
        process.kill(victim, 'SIGKILL');
        what += ` (keeper ${victim} of ${ks.length})`;
      } else if (running) setTimeout(tryKill, 5);
    };
    tryKill();
  };
  let running = true;
  const byLine = rng.next() < 0.5;
  // the progress lines: "[i] attach ...", "[i]   using /dev/loopN ...", "[i] done ..." (3 a disk)
  const line = rng.int(1, Math.max(1, 3 * attaching));
  // by time: from half way through the start-up (node, config, observation, plan) to about the last attach
  const atMs = Math.round(window.fromMs + rng.next() * (window.toMs - window.fromMs));
  let steps = 0;
  const { child, done } = host.spawnCli(['apply', '--auto-approve'], {
    ...(byLine ? {} : { afterMs: atMs, onTime: () => hit(child) }),
    onLine: (l) => {
      if (/^\[\d+\]/.test(l) && ++steps === line && byLine) hit(child);
    },
  });
  const r: CliRun = await done;
  running = false;
  const target = kind === 'apply' ? 'apply' : 'a keeper';
  const when = byLine ? `at progress line ${line} of ~${3 * attaching}` : `at ${atMs} ms of ~${window.toMs.toFixed(0)}`;
  if (!fired || (kind !== 'apply' && what === '')) return `apply ran to its end (exit ${r.code}) before killing ${target} ${when}`;
  return `killed ${target}${what} ${when}: apply ${r.signal ? `killed after ${steps} progress lines` : `exited ${r.code}`}`;
}

/** `apply` again, as an operator would after a crash. */
async function rerunApply(host: CrashHost): Promise<string> {
  const again = await host.cli(['apply', '--auto-approve']);
  const m = /Plan: (\d+) to attach/.exec(again.out);
  return `; re-run exited ${again.code}${m ? ` (${m[1]} to attach)` : ''}`;
}

function repeat<T>(x: T, n: number): T[] {
  return Array.from({ length: Math.max(1, Math.round(n)) }, () => x);
}

function shuffle<T>(rng: ReturnType<typeof makeRng>, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

function excerpt(out: string, lines = 25): string {
  const ls = out.trimEnd().split('\n');
  return ls.length <= lines ? ls.join('\n') : [...ls.slice(0, lines), `... (${ls.length - lines} more lines)`].join('\n');
}

/** Per invariant: how many trials broke it, of which kinds, and the first pieces of evidence. */
function summarize(results: TrialResult[], notes: string[], ms: number): string {
  const names: Record<Violation['invariant'], string> = {
    a: 'a backend names a freed, re-bound or other disk\'s device',
    b: 'a read-write image used by two backends',
    c: 'a device of ours bound with no live backend (leaked)',
    d: 'a device a live backend names, held by nobody but blkback',
    e: 'plan not empty after the re-run',
  };
  const missed = results.filter((r) => /ran to its end/.test(r.what)).length;
  const out = [`${results.length} trials in ${(ms / 1000).toFixed(0)} s (seed ${SEED}; in ${missed} the apply ended before its kill); per kind:`];
  const kinds = [...new Set(results.map((r) => r.kind))];
  for (const k of kinds) {
    const rs = results.filter((r) => r.kind === k);
    const bad = rs.filter((r) => r.violations.length > 0);
    out.push(`  ${k}: ${rs.length} trials, ${bad.length} broke an invariant${bad.length ? ` (${[...new Set(bad.flatMap((r) => r.violations.map((v) => v.invariant)))].sort().join(', ')})` : ''}, ${(rs.reduce((s, r) => s + r.ms, 0) / rs.length / 1000).toFixed(1)} s each`);
  }
  for (const inv of Object.keys(names) as Violation['invariant'][]) {
    const parts: string[] = [];
    const examples: string[] = [];
    for (const stage of ['after the crash', 'after the re-run'] as const) {
      const hit = results.filter((r) => r.violations.some((v) => v.invariant === inv && v.stage === stage));
      if (hit.length === 0) continue;
      const byKind = new Map<Kind, number>();
      for (const r of hit) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
      parts.push(`${stage} in ${hit.length} trials (${[...byKind].map(([k, c]) => `${k} ${c}`).join(', ')})`);
      // one piece of evidence per kind of trial
      for (const k of byKind.keys()) {
        const r = hit.find((x) => x.kind === k)!;
        const vs = r.violations.filter((v) => v.invariant === inv && v.stage === stage);
        examples.push(`    trial ${r.n} ${k}, ${stage} (${vs.length} like it): ${r.what}\n      ${vs[0]!.message.split('\n').join('\n      ')}`);
      }
    }
    out.push(`(${inv}) ${names[inv]}: ${parts.length ? parts.join('; ') : 'never'}`, ...examples);
  }
  out.push(...notes.map((x) => `note: ${x}`));
  return out.join('\n');
}
