// Keepers as systemd units (XVBD_KEEPERS=systemd, as xvbd.service and xvbd-keeper@.service set it): a
// giver that needs a keeper asks `systemctl start --no-block xvbd-keeper@<slot>.service` and spawns no
// detached keeper itself. A fake systemctl on PATH records the calls and starts the keeper as the unit
// would (marked in its environment, so the test can tell who started each keeper).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliMain, startBench, xvbd } from '../apply/helpers.js';
import { keeperLists } from '../../src/hold/keeper-client.js';

test('XVBD_KEEPERS=systemd: apply starts both keepers through systemctl, never detached by itself', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const bin = join(b.dir, 'bin');
    mkdirSync(bin);
    const log = join(b.dir, 'systemctl.log');
    writeFileSync(log, '');
    writeFileSync(
      join(bin, 'systemctl'),
      `#!/bin/sh
echo "$*" >> "${log}"
[ "$1" = start ] && [ "$2" = --no-block ] || exit 1
slot=\${3#xvbd-keeper@}; slot=\${slot%.service}
XVBD_TEST_STARTED_BY=systemctl setsid "${process.execPath}" "${cliMain}" keeper --slot "$slot" </dev/null >>"${log}.keeper" 2>&1 &
exit 0
`,
    );
    chmodSync(join(bin, 'systemctl'), 0o755);
    const env = { ...b.env, PATH: `${bin}:${process.env.PATH}`, XVBD_KEEPERS: 'systemd' };
    const r = await xvbd(env, 'apply', '--config', b.host.configDir, '--auto-approve');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const calls = readFileSync(log, 'utf8').trim().split('\n').sort();
    assert.ok(calls.includes('start --no-block xvbd-keeper@a.service'), calls.join('; '));
    assert.ok(calls.includes('start --no-block xvbd-keeper@b.service'), calls.join('; '));
    const ks = await keeperLists(b.runDir);
    assert.deepEqual(ks.map((k) => k.slot).sort(), ['a', 'b']);
    for (const k of ks) {
      const environ = readFileSync(`/proc/${k.pid}/environ`, 'utf8').split('\0');
      assert.ok(environ.includes('XVBD_TEST_STARTED_BY=systemctl'), `keeper ${k.slot} (pid ${k.pid}) was started by systemctl`);
      assert.ok(k.held.length > 0);
    }
  } finally {
    await b.cleanup();
  }
});

test('XVBD_KEEPERS with another value: a clear error, nothing attached', async () => {
  const b = await startBench({ withBlockDevice: false });
  try {
    const r = await xvbd({ ...b.env, XVBD_KEEPERS: 'sometimes' }, 'apply', '--config', b.host.configDir, '--auto-approve');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /XVBD_KEEPERS must be "systemd" or "spawn", not "sometimes"/);
    await b.sim.settle();
    assert.deepEqual(b.sim.backends(), []);
  } finally {
    await b.cleanup();
  }
});
