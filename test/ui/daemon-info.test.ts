// The daemon as the TUI reads it: the control socket's read-only status and events ops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlError, ControlServer } from '../../src/ipc/control.js';
import { readDaemon } from '../../src/ui/daemon-info.js';

test('no daemon listening: absent; one answering: its pid, last pass and events; a refusal: unknown with the reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-ui-daemon-'));
  const path = join(dir, 'control.sock');
  try {
    assert.deepEqual(await readDaemon(path), { state: 'absent' });
    const asked: unknown[] = [];
    const events = [{ at: '2026-12-04T19:58:03.000Z', kind: 'pass', seq: 4, ok: true, summary: 'nothing to do', durationMs: 12, steps: [] }];
    let refuse = false;
    const server = await ControlServer.listen(async (req) => {
      asked.push({ ...req, id: undefined });
      if (refuse) throw new ControlError('not allowed');
      if (req.op === 'status') return { pid: 812, last: { seq: 4, startedAt: '2026-12-04T19:58:03.000Z', ok: true, summary: 'nothing to do' } };
      if (req.op === 'events') return { kept: 100, events };
      throw new ControlError('unknown op');
    }, { path });
    try {
      assert.deepEqual(await readDaemon(path), {
        state: 'running',
        pid: 812,
        events,
        lastPass: { seq: 4, at: '2026-12-04T19:58:03.000Z', ok: true, summary: 'nothing to do' },
      });
      assert.deepEqual(asked, [{ op: 'status', id: undefined }, { op: 'events', n: 50, id: undefined }]);
      refuse = true;
      assert.deepEqual(await readDaemon(path), { state: 'unknown', error: 'not allowed' });
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
