// When a backend of ours is handed to the kernel's probe again (src/plan/reprobe.ts), one row per case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackendObs } from '../../src/model/observed.js';
import { reprobeOf } from '../../src/plan/reprobe.js';

/** A backend of ours whose frontend was recreated: blkback unregistered, the new frontend Initialising. */
const base: BackendObs = {
  backendDomid: 0,
  frontendDomid: 5,
  devid: 51728,
  path: '/local/domain/0/backend/vbd/5/51728',
  ours: true,
  online: true,
  physicalDevice: '7:3',
  diskseq: '42',
  state: 4,
  frontendPath: '/local/domain/5/device/vbd/51728',
  frontendState: 1,
  frontendExists: true,
  kernelHeld: false,
  kernelRegistered: false,
};

/** [case, change to the base, served, expected: 'frontend' (written anew), 'backend' (probe only) or 'no'] */
const rows: [string, Partial<BackendObs>, boolean, 'frontend' | 'backend' | 'no'][] = [
  ['new frontend waits, blkback gone, backend left Connected', {}, true, 'backend'],
  ['backend left Closed (an unbind before)', { state: 6 }, true, 'backend'],
  ['frontend already Initialised (it read a stale InitWait)', { frontendState: 3 }, true, 'backend'],
  ['frontend dir removed by the guest, blkback still registered', { frontendExists: false, frontendState: undefined, kernelRegistered: true, kernelHeld: true }, true, 'frontend'],
  ['frontend dir removed, blkback gone', { frontendExists: false, frontendState: undefined }, true, 'frontend'],
  ['frontend dir removed, backend offline', { frontendExists: false, frontendState: undefined, online: false }, true, 'no'],
  ['frontend dir removed, another device at physical-device', { frontendExists: false, frontendState: undefined }, false, 'no'],
  ['frontend dir removed, backend state 1', { frontendExists: false, frontendState: undefined, state: 1 }, true, 'no'],
  ['frontend elsewhere than device/vbd/<devid>', { frontendExists: false, frontendState: undefined, frontendPath: '/local/domain/5/device/vbd/1' }, true, 'no'],
  ['frontend dir not observed, state missing', { frontendExists: undefined, frontendState: undefined }, true, 'no'],
  ['not ours', { ours: false }, true, 'no'],
  ['served device not the recorded one', {}, false, 'no'],
  ['offline (a toolstack tears it down)', { online: false }, true, 'no'],
  ['online node missing', { online: undefined }, true, 'no'],
  ['no physical-device', { physicalDevice: undefined }, true, 'no'],
  ['blkback registered (it keeps its own state)', { kernelRegistered: true }, true, 'no'],
  ['blkback holds the device', { kernelHeld: true, kernelRegistered: true }, true, 'no'],
  ['registration not observed (an older saved observation)', { kernelRegistered: undefined }, true, 'no'],
  ['backend state 1: a probe is already due', { state: 1 }, true, 'no'],
  ['backend state missing', { state: undefined }, true, 'no'],
  ['frontend Connected', { frontendState: 4 }, true, 'no'],
  ['frontend Closed', { frontendState: 6 }, true, 'no'],
  ['frontend state node removed (the dir stays)', { frontendState: undefined }, true, 'no'],
];

for (const [name, patch, served, want] of rows) {
  test(`reprobe: ${name} -> ${want}`, () => {
    const b = { ...base, ...patch };
    for (const k of Object.keys(patch) as (keyof BackendObs)[]) if (patch[k] === undefined) delete b[k];
    const r = reprobeOf(b, served);
    assert.equal(r === undefined ? 'no' : r.frontend ? 'frontend' : 'backend', want, r?.reason);
  });
}
