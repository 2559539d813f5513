// The admin's words: the config's rw/ro for modes, plural forms, a sentence for xenstore's error
// replies, a clear error for a regular file as XENSTORED_PATH, and which read-only disks of a plan
// share the loop device the plan makes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSimulator } from '../../src/sim/index.js';
import { connect } from '../../src/xenstore/client.js';
import { describeXsFailure } from '../../src/xenstore/errors.js';
import { plan } from '../../src/plan/index.js';
import { modeWords } from '../../src/plan/identity.js';
import { renderPlan, sharingNotes } from '../../src/render/plan.js';
import { confirmQuestion } from '../../src/cli/commands/apply.js';
import { desired, disk, fileSrc, observed, sources } from '../plan/fixtures.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');

test('a regular file as XENSTORED_PATH: said so, not "frame announces N bytes"', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-wording-'));
  try {
    // a YAML file: its bytes 12-15 ("xvbd") read as a frame length would announce 1,684,174,456 bytes
    const notSock = join(dir, 'web.yaml');
    writeFileSync(notSock, 'apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks: []\n');
    const cfg = join(dir, 'cfg');
    mkdirSync(cfg);
    writeFileSync(join(cfg, 'web.yaml'), 'apiVersion: xvbd/v1\nkind: Domain\nname: web\ndisks: []\n');
    for (const cmd of ['plan', 'status']) {
      const r = spawnSync(process.execPath, [CLI, cmd, '--config', cfg], { encoding: 'utf8', env: { ...process.env, XENSTORED_PATH: notSock }, timeout: 20_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot read xenstore: .*${notSock.replace(/[.]/g, '\\.')}: it is a regular file, not xenstored's socket nor the xenbus device \\(/dev/xen/xenbus\\)`));
      assert.doesNotMatch(r.stderr, /frame announces/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("xenstore's error replies are sentences: what could not be done to which node, and why", async () => {
  assert.equal(
    describeXsFailure('ENOENT', 'SET_PERMS', '/local/domain/3/device/vbd/51712'),
    'xenstore could not set the permissions of /local/domain/3/device/vbd/51712: it does not exist (removed meanwhile? a domain that went away takes its nodes with it) [ENOENT]',
  );
  assert.match(describeXsFailure('EACCES', 'WRITE', '/local/domain/5/x'), /^xenstore could not write \/local\/domain\/5\/x: permission denied/);
  assert.match(describeXsFailure('EWHAT', 'FROB'), /^xenstore could not do FROB on: xenstored refused \[EWHAT\]$/);
  // through the real client against the simulator: the message a failed step carries
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-wording-'));
  const sim = await startSimulator({ socketPath: join(dir, 'xs.sock'), sysfsDir: join(dir, 'sysfs'), domains: [] });
  const xs = await connect({ path: sim.socketPath });
  try {
    await assert.rejects(xs.setPerms('/local/domain/3/device/vbd/51712', [{ domid: 3, perm: 'n' }]), (err: Error) => {
      assert.match(err.message, /^xenstore could not set the permissions of \/local\/domain\/3\/device\/vbd\/51712: it does not exist .*\[ENOENT\]$/);
      assert.doesNotMatch(err.message, /^ENOENT: SET_PERMS/);
      return true;
    });
  } finally {
    await xs.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('modes in the config words (rw/ro), never xenstore\'s w/r', () => {
  assert.deepEqual(['w', 'r', undefined, 'x'].map(modeWords), ['rw', 'ro', '(none)', '"x"']);
});

test('plural forms: "this action", "these 2 actions"', () => {
  assert.match(confirmQuestion(1), /Do you want to perform this action\?/);
  assert.match(confirmQuestion(2), /Do you want to perform these 2 actions\?/);
});

test('the plan says which read-only disks will share the loop device it makes (as apply then does)', () => {
  const T = '/srv/t.img';
  const d = desired({ web: [disk('xvda', T, 'ro'), disk('xvdb', '/srv/w.img')], db: [disk('xvda', T, 'ro')], build: [disk('xvda', T, 'ro')] }, { allowedRoots: ['/srv'] });
  const o = observed({
    domains: [
      { domid: 0, name: 'Domain-0' },
      { domid: 3, name: 'web' },
      { domid: 4, name: 'db' },
      { domid: 5, name: 'build' },
    ],
    sources: sources(fileSrc(T, 11), fileSrc('/srv/w.img', 12)),
  });
  const p = plan(d, o, d.policy);
  const notes = [...sharingNotes(p).values()];
  assert.equal(notes.length, 3);
  const text = renderPlan(p);
  const line = (dom: string, vdev: string) => text.split('\n').find((l) => l.includes(`attach  ${dom} ${vdev} `)) ?? '';
  const first = p.actions.find((a) => a.kind === 'attach' && a.disk.source === T)!;
  const firstName = first.kind === 'attach' ? `${first.domain} ${first.disk.vdev}` : '';
  assert.match(line(...(firstName.split(' ') as [string, string])), /\(ro\)\s+new loop device, shared read-only with 2 more disks$/);
  for (const [dom, vdev] of [['web', 'xvda'], ['db', 'xvda'], ['build', 'xvda']] as const) {
    if (`${dom} ${vdev}` === firstName) continue;
    assert.match(line(dom, vdev), new RegExp(`\\(ro\\)\\s+shares the new loop device of ${firstName}$`), text);
  }
  assert.match(line('web', 'xvdb'), /\(rw\)\s+new loop device$/);
});
