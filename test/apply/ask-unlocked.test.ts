// `xvbd apply` asking on a terminal does not hold the host-wide lock while the human thinks: the plan is
// approved without it, then the lock is taken, the host planned again, and a plan that changed meanwhile
// is refused with nothing done.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acquireApplyLock, LockHeldError } from '../../src/apply/lock.js';
import { applyOnce, PlanChangedError } from '../../src/wire/session.js';
import { startBench } from './helpers.js';

test('approveUnlocked: the lock is free while asking, held for the steps; a held lock still fails at once', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    // another applier now: refused before anything is observed or asked
    const held = await acquireApplyLock();
    let asked = false;
    await assert.rejects(
      applyOnce({ configDir: b.host.configDir, approveUnlocked: true, approve: async () => (asked = true) }),
      LockHeldError,
    );
    held.release();
    assert.equal(asked, false);

    let freeWhileAsking = false;
    const probes: Promise<string>[] = [];
    const out = await applyOnce({
      configDir: b.host.configDir,
      approveUnlocked: true,
      approve: async () => {
        const l = await acquireApplyLock(); // a daemon's pass could run now
        l.release();
        freeWhileAsking = true;
        return true;
      },
      onEvent: (e) => {
        // and during the steps it is held again
        // (flock is tried synchronously when acquireApplyLock is called)
        if (e.type === 'step-start') probes.push(acquireApplyLock().then((l) => (l.release(), 'free'), (err: unknown) => (err instanceof LockHeldError ? 'held' : String(err))));
      },
    });
    assert.ok(freeWhileAsking);
    const seen = await Promise.all(probes);
    assert.ok(seen.length > 0 && seen.every((s) => s === 'held'), seen.join(' '));
    assert.ok(out.result && out.result.steps.length > 0 && out.result.steps.every((s) => s.ok));
    const after = await applyOnce({ configDir: b.host.configDir, dryRun: true });
    assert.deepEqual(after.plan.actions, []);
  } finally {
    await b.cleanup();
  }
});

test('approveUnlocked: the host changed while asking (another apply ran): refused, nothing done', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    let other: Awaited<ReturnType<typeof applyOnce>> | undefined;
    const approvedBefore = (await applyOnce({ configDir: b.host.configDir, dryRun: true })).plan.actions.length;
    assert.ok(approvedBefore > 0);
    const stepsRun: string[] = [];
    await assert.rejects(
      applyOnce({
        configDir: b.host.configDir,
        approveUnlocked: true,
        approve: async () => {
          // someone applied the same config meanwhile: the approved attaches are no longer the plan
          other = await applyOnce({ configDir: b.host.configDir });
          return true;
        },
        onEvent: (e) => stepsRun.push(e.type),
      }),
      (e: unknown) => {
        assert.ok(e instanceof PlanChangedError);
        assert.equal(e.fresh.actions.length, 0);
        assert.match(e.message, new RegExp(`^the host changed while you were asked: the plan is now 0 actions, not the ${approvedBefore} actions approved; nothing was changed`));
        return true;
      },
    );
    assert.ok(other?.result?.steps.every((s) => s.ok));
    assert.deepEqual(stepsRun, [], 'not one step of the refused apply ran');
  } finally {
    await b.cleanup();
  }
});
