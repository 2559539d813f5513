// A disk's health (src/plan/health.ts), as a table: the one rule plan() fills DiskStatus.health with, and
// that status, the TUI and the textfile only read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diskHealth, HEALTH_RANK, HEALTH_STATES, type HealthFacts } from '../../src/plan/health.js';
import { XenbusState } from '../../src/model/observed.js';

const C = XenbusState.Connected;
const be = (over: Partial<NonNullable<HealthFacts['backend']>> = {}): NonNullable<HealthFacts['backend']> => ({
  state: C,
  frontendState: C,
  frontendPath: '/local/domain/3/device/vbd/51712',
  kernelHeld: true,
  ...over,
});

const rows: [string, HealthFacts, string, string | undefined][] = [
  ['no backend', {}, 'missing', undefined],
  ['both ends Connected', { backend: be(), hasDevice: true, loop: 'no' }, 'healthy', undefined],
  ['an error node', { backend: be({ error: '2 opening' }), hasDevice: true }, 'degraded', 'error: 2 opening'],
  ['hotplug-status error', { backend: be({ hotplugStatus: 'error' }), hasDevice: true }, 'degraded', 'hotplug-status error'],
  ['loop device reused', { backend: be(), hasDevice: true, loop: 'reused' }, 'degraded', 'loop device reused'],
  ['loop device gone', { backend: be(), hasDevice: true, loop: 'gone' }, 'degraded', 'loop device gone'],
  ['backend state missing', { backend: be({ state: undefined }), hasDevice: true }, 'degraded', 'backend state missing'],
  ['backend Closing', { backend: be({ state: XenbusState.Closing }), hasDevice: true }, 'degraded', 'backend Closing'],
  ['frontend Closed', { backend: be({ frontendState: XenbusState.Closed }), hasDevice: true }, 'degraded', 'frontend Closed'],
  ['no frontend', { backend: be({ frontendState: undefined, frontendPath: undefined }), hasDevice: true }, 'degraded', 'no frontend'],
  ['frontend state malformed', { backend: be({ frontendState: undefined }), hasDevice: true }, 'degraded', 'frontend state missing or malformed'],
  ['hotplug pending', { backend: be({ state: XenbusState.InitWait, frontendState: XenbusState.Initialising }), hasDevice: false }, 'progressing', 'hotplug pending (backend InitWait, frontend Initialising)'],
  ['blkback has not opened it yet', { backend: be({ state: XenbusState.InitWait, kernelHeld: false }), hasDevice: true }, 'progressing', 'blkback has not opened the device yet (backend InitWait, frontend Connected)'],
  ['connecting', { backend: be({ state: XenbusState.InitWait }), hasDevice: true }, 'progressing', 'backend InitWait, frontend Connected'],
  ['another tool\'s script provides the device', { backend: be({ state: XenbusState.InitWait }), foreignScript: '/etc/xen/scripts/block' }, 'progressing', 'hotplug pending (script /etc/xen/scripts/block)'],
  ['another tool\'s script failed', { backend: be({ hotplugStatus: 'error' }), foreignScript: '/etc/xen/scripts/block' }, 'degraded', 'hotplug-status error'],
  ['in sync, but the rw file is used elsewhere too', { backend: be(), hasDevice: true, loop: 'no', rwShared: true }, 'degraded', 'read-write file used elsewhere too'],
  ['the rw file used elsewhere, already degraded: its own reason', { backend: be({ frontendState: XenbusState.Closed }), hasDevice: true, rwShared: true }, 'degraded', 'frontend Closed'],
];

for (const [name, facts, health, reason] of rows) {
  test(`diskHealth: ${name} -> ${health}`, () => {
    assert.deepEqual(diskHealth(facts), reason === undefined ? { health } : { health, reason });
  });
}

test('every health has a rank, worst first; HEALTH_STATES lists each once', () => {
  assert.deepEqual([...HEALTH_STATES].sort(), Object.keys(HEALTH_RANK).sort());
  assert.deepEqual([...HEALTH_STATES].sort((a, b) => HEALTH_RANK[a] - HEALTH_RANK[b]), ['degraded', 'progressing', 'missing', 'healthy']);
});
