// The keeper's protocol, alone: one request against a fake Keeper, one line (bad JSON, errors as
// replies, every parsed request bracketed by begin/end so the idle exit can wait for it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answerKeeperLine, answerKeeperRequest, type KeeperState } from '../../src/hold/keeper.js';
import type { KeeperReply, KeeperRequest } from '../../src/hold/keeper-protocol.js';

function fakeKeeper() {
  const calls: string[] = [];
  const k: KeeperState = {
    xsConnected: true,
    list: () => [{ backend: '/local/domain/0/backend/vbd/1/51712', diskseq: '9', fd: 5, major: 7, minor: 0, live: true }],
    adopt: async (req) => void calls.push(`adopt ${req.pid}:${req.fd}`),
    dropByGiver: (b, d) => {
      calls.push(`drop ${b} ${d ?? '-'}`);
      return 1;
    },
  };
  return { k, calls };
}

test('answerKeeperRequest: each op (table)', async () => {
  const { k, calls } = fakeKeeper();
  const paths = ['/run/xenstored/socket'];
  assert.deepEqual(await answerKeeperRequest(k, paths, { op: 'ping' }), { ok: true, pid: process.pid, xenstore: paths, xsConnected: true });
  const list = await answerKeeperRequest(k, paths, { op: 'list' });
  assert.equal(list.ok && list.held?.length, 1);
  assert.deepEqual(await answerKeeperRequest(k, paths, { op: 'adopt', pid: 12, fd: 3, backend: 'b' }), { ok: true, pid: process.pid });
  assert.deepEqual(await answerKeeperRequest(k, paths, { op: 'drop', backend: 'b', diskseq: '9' }), { ok: true, pid: process.pid });
  assert.deepEqual(calls, ['adopt 12:3', 'drop b 9']);
  await assert.rejects(answerKeeperRequest(k, paths, { op: 'drop' } as unknown as KeeperRequest), /drop: backend missing/);
  await assert.rejects(answerKeeperRequest(k, paths, { op: 'nope' } as unknown as KeeperRequest), /unknown op/);
  await assert.rejects(answerKeeperRequest(k, paths, null as unknown as KeeperRequest), /unknown op/);
});

test('answerKeeperLine: bad JSON is no request; an error becomes a reply; begin/end bracket every request', async () => {
  const log: string[] = [];
  const begin = () => void log.push('begin');
  const end = () => void log.push('end');
  const ok = async (): Promise<KeeperReply> => ({ ok: true, pid: 1 });
  assert.deepEqual(await answerKeeperLine('{', ok, begin, end), { ok: false, error: 'bad JSON' });
  assert.deepEqual(log, []);
  assert.deepEqual(await answerKeeperLine('{"op":"ping"}', ok, begin, end), { ok: true, pid: 1 });
  const failing = async (): Promise<KeeperReply> => {
    throw new Error('no such fd');
  };
  assert.deepEqual(await answerKeeperLine('{"op":"adopt"}', failing, begin, end), { ok: false, error: 'no such fd' });
  const throwsString = async (): Promise<KeeperReply> => {
    throw 'odd';
  };
  assert.deepEqual(await answerKeeperLine('{}', throwsString, begin, end), { ok: false, error: 'odd' });
  assert.deepEqual(log, ['begin', 'end', 'begin', 'end', 'begin', 'end']);
});
