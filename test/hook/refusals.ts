// Every way the hook refuses a backend, as tables shared by the tests with and without a daemon.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bench } from '../apply/helpers.js';
import { libxlDiskAdd, libxlDiskRemove } from './libxl.js';
import { hookEnv, setServe } from './helpers.js';

const WEB1 = 1;
const XVDB = 51728;
const XVDC = 51744;

function image(b: Bench, name: string): string {
  return join(b.host.imagesDir, name);
}

/** One refusal: the backend libxl wrote, what the test changes first, and the hotplug-error expected. */
export interface Refusal {
  what: string;
  fe: number;
  devid: number;
  vdev: string;
  target: (b: Bench) => string;
  mode: 'r' | 'w';
  script?: string;
  before?: (b: Bench) => void | Promise<void>;
  after?: (b: Bench) => void | Promise<void>;
  error: RegExp;
}

/**
 * Every way the hook refuses, with or without a daemon (test/hook/daemon.test.ts runs them too); the policy
 * case last (with a daemon, serve: attach has it attach the other disks), restoring `serve`.
 */
export function refusals(serve: 'both' | 'hook'): Refusal[] {
  return [
  {
    what: 'params is not the desired source',
    fe: WEB1,
    devid: XVDC,
    vdev: 'xvdc',
    target: (b) => image(b, 'web2-scratch.img'),
    mode: 'w',
    error: /^web1 xvdc: the toolstack's backend names .*web2-scratch\.img, desired .*web1-scratch\.img; xvbd does not serve it$/,
  },
  { what: 'mode mismatch', fe: WEB1, devid: XVDB, vdev: 'xvdb', target: (b) => image(b, 'web1-private.img'), mode: 'r', error: /^web1 xvdb: the toolstack's backend mode ro, desired rw; xvbd does not serve it$/ },
  { what: 'a domain the config does not name', fe: 9, devid: 51712, vdev: 'xvda', target: (b) => image(b, 'web1-scratch.img'), mode: 'w', error: /^domain stranger \(9\) is not in the desired state$/ },
  { what: 'a vdev the domain does not have', fe: WEB1, devid: 51808, vdev: 'xvdg', target: (b) => image(b, 'web1-scratch.img'), mode: 'w', error: /^domain web1 has no disk with devid 51808 in the desired state$/ },
  {
    what: "another tool's script",
    fe: WEB1,
    devid: XVDB,
    vdev: 'xvdb',
    target: (b) => image(b, 'web1-private.img'),
    mode: 'w',
    script: '/etc/xen/scripts/block',
    error: /^web1 xvdb: backend .* belongs to another tool \(script \/etc\/xen\/scripts\/block\); xvbd never touches it$/,
  },
  {
    what: 'an invalid config',
    fe: WEB1,
    devid: XVDB,
    vdev: 'xvdb',
    target: (b) => image(b, 'web1-private.img'),
    mode: 'w',
    before: (b) => writeFileSync(join(b.host.configDir, 'broken.yaml'), 'apiVersion: xvbd/v1\nkind: Domain\nname: [\n'),
    after: (b) => execFileSync('rm', ['-f', join(b.host.configDir, 'broken.yaml')]),
    error: /^the xvbd configuration in .* is invalid \(\d+ error\(s\)\): .*broken\.yaml/,
  },
  {
    what: 'policy serve: attach',
    fe: WEB1,
    devid: XVDB,
    vdev: 'xvdb',
    target: (b) => image(b, 'web1-private.img'),
    mode: 'w',
    before: (b) => setServe(b, 'attach'),
    after: (b) => setServe(b, serve),
    error: /^web1 xvdb: the toolstack created .* for xvbd to serve, but policy serve=attach$/,
  },
  ];
}

/** Runs every refusal through `hook` (the C client or the Node one); checks what libxl would see. */
export async function checkRefusals(b: Bench, serve: 'both' | 'hook', hook: (env: NodeJS.ProcessEnv) => Promise<{ code: number | null; out: string }>): Promise<void> {
  for (const c of refusals(serve)) {
    await c.before?.(b);
    const p = await libxlDiskAdd(b.xs, { frontendDomid: c.fe, devid: c.devid, vdev: c.vdev, target: c.target(b), mode: c.mode, script: c.script ?? 'xvbd' });
    const before = b.loops().size;
    try {
      const r = await hook(hookEnv(b, c.fe, c.devid));
      assert.equal(r.code, 1, `${c.what}: ${r.out}`);
      assert.equal(b.sim.read(`${p.backend}/hotplug-status`), 'error', c.what);
      assert.match(b.sim.read(`${p.backend}/hotplug-error`) ?? '(none)', c.error, c.what);
      assert.match(r.out, /refused by/, c.what);
      assert.equal(b.sim.read(`${p.backend}/physical-device`), undefined, c.what);
      assert.equal(b.loops().size, before, `${c.what}: no loop device made`);
    } finally {
      await libxlDiskRemove(b.xs, p);
      await c.after?.(b);
    }
  }
}

