// The client conformance suite: pure async cases, each working under its own `base` path,
// cleaning up after itself, using only what a dom0 socket client can do. Run against the
// simulator by client.test.ts and against real xenstored by the Xen harness (test/xen).
import type { XsClient, XsWatchEvent } from '../../src/xenstore/api.js';
import { XsError } from '../../src/xenstore/errors.js';

export interface ConformanceCase {
  name: string;
  run(c: XsClient, ctx: { base: string }): Promise<void>;
}

class Fail extends Error {}

function eq<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Fail(`${what}: expected ${e}, got ${a}`);
}

function ok(cond: unknown, what: string): void {
  if (!cond) throw new Fail(what);
}

async function rejects(p: Promise<unknown>, errno: string, what: string): Promise<XsError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof XsError && err.errno === errno) return err;
    throw new Fail(`${what}: expected XsError ${errno}, got ${err instanceof Error ? `${err.name} ${(err as XsError).errno ?? ''} ${err.message}` : String(err)}`);
  }
  throw new Fail(`${what}: expected XsError ${errno}, but it succeeded`);
}

/** One events() iterator; next(token) skips events of other tokens (earlier cases, other watches). */
class Tap {
  private readonly it: AsyncIterator<XsWatchEvent>;
  private pending: Promise<IteratorResult<XsWatchEvent>> | undefined;
  constructor(c: XsClient) {
    this.it = c.events()[Symbol.asyncIterator]();
  }

  async next(token: string, timeoutMs = 2000): Promise<XsWatchEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      this.pending ??= this.it.next();
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        this.pending,
        new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), left))),
      ]);
      clearTimeout(timer);
      if (r === 'timeout') return undefined;
      this.pending = undefined;
      if (r.done) return undefined;
      if (r.value.token === token) return r.value;
    }
  }

  /** Collects the events of `token` arriving within `ms`. */
  async drain(token: string, ms = 150): Promise<string[]> {
    const out: string[] = [];
    for (;;) {
      const ev = await this.next(token, ms);
      if (!ev) return out;
      out.push(ev.path);
    }
  }

  close(): void {
    void this.it.return?.();
  }
}

let tokenSeq = 0;
function token(name: string): string {
  return `xvbd-conf-${name}-${process.pid}-${++tokenSeq}`;
}

export function conformanceCases(): ConformanceCase[] {
  return [
    {
      name: 'write then read a value; read of a missing node is undefined; readStrict throws ENOENT',
      async run(c, { base }) {
        await c.write(`${base}/a`, 'hello');
        eq(await c.read(`${base}/a`), 'hello', 'read back');
        eq(await c.read(`${base}/missing`), undefined, 'missing node');
        await rejects(c.readStrict(`${base}/missing`), 'ENOENT', 'readStrict missing');
        await c.write(`${base}/a`, '');
        eq(await c.read(`${base}/a`), '', 'empty value');
        await c.write(`${base}/u`, 'ünïcødé ✓ "quotes" \\ back');
        eq(await c.read(`${base}/u`), 'ünïcødé ✓ "quotes" \\ back', 'unicode value');
        await c.rm(base);
      },
    },
    {
      name: 'writing a deep path creates the parents (empty values, in creation order)',
      async run(c, { base }) {
        await c.write(`${base}/x/y/z`, 'v');
        eq(await c.read(`${base}/x`), '', 'implicit parent value');
        eq(await c.read(`${base}/x/y`), '', 'implicit parent value');
        await c.write(`${base}/x/b`, '1');
        await c.write(`${base}/x/a`, '2');
        eq(await c.directory(`${base}/x`), ['y', 'b', 'a'], 'children in creation order');
        eq(await c.directory(`${base}/nope`), [], 'directory of a missing node');
        eq(await c.directory(`${base}/x/y/z`), [], 'directory of a leaf');
        await c.rm(base);
      },
    },
    {
      name: 'mkdir creates an empty node and is fine on an existing one (value kept)',
      async run(c, { base }) {
        await c.mkdir(`${base}/d/e`);
        eq(await c.read(`${base}/d/e`), '', 'new dir value');
        await c.write(`${base}/d`, 'keep');
        await c.mkdir(`${base}/d`);
        eq(await c.read(`${base}/d`), 'keep', 'mkdir keeps the value');
        eq(await c.directory(`${base}/d`), ['e'], 'children');
        await c.rm(base);
      },
    },
    {
      name: 'rm removes a whole subtree; removing a missing node (even with a missing parent) is fine',
      async run(c, { base }) {
        await c.write(`${base}/t/a/b`, '1');
        await c.write(`${base}/t/c`, '2');
        await c.rm(`${base}/t`);
        eq(await c.read(`${base}/t/a/b`), undefined, 'descendant gone');
        eq(await c.read(`${base}/t`), undefined, 'node gone');
        eq(await c.directory(base), [], 'parent has no children');
        await c.rm(`${base}/t`);
        await c.rm(`${base}/no/such/parent`);
        await c.rm(base);
        eq(await c.read(base), undefined, 'base gone');
      },
    },
    {
      name: 'invalid paths are refused before sending, with EINVAL naming the path',
      async run(c, { base }) {
        const bad = [`${base}/a b`, `${base}//x`, `${base}/trailing/`, '', `${base}/ümlaut`, `${base}/semi;colon`, '@introduceDomain'];
        for (const p of bad) {
          const e = await rejects(c.write(p, 'x'), 'EINVAL', `write ${JSON.stringify(p)}`);
          ok(e.message.includes(p.slice(0, 40)), `message names the path: ${e.message}`);
        }
        await rejects(c.read(`${base}/a:b`), 'EINVAL', 'read with ":"');
        await rejects(c.write(`${base}/${'a'.repeat(3100)}`, 'x'), 'EINVAL', 'path longer than 3072');
        eq(await c.read(base), undefined, 'nothing was created');
      },
    },
    {
      name: 'payload limit: a request over the limit is E2BIG before sending; one under it works',
      async run(c, { base }) {
        const path = `${base}/big`;
        // 4096 bytes of payload on a socket; over /dev/xen/xenbus header + payload fit in 4096
        const room = 4080 - (Buffer.byteLength(path) + 1);
        await c.write(path, 'x'.repeat(room));
        eq((await c.read(path))?.length, room, 'value read back');
        await rejects(c.write(path, 'x'.repeat(4097 - (Buffer.byteLength(path) + 1))), 'E2BIG', 'one byte over 4096');
        await rejects(c.write(path, 'é'.repeat(2100)), 'E2BIG', 'counted in bytes, not characters');
        eq((await c.read(path))?.length, room, 'unchanged after the refused writes');
        eq(await c.read(base), '', 'the connection still works');
        await c.rm(base);
      },
    },
    {
      name: 'permissions: inherited from the parent on creation; setPerms/getPerms round trip',
      async run(c, { base }) {
        await c.write(`${base}/p`, '');
        await c.setPerms(`${base}/p`, [{ domid: 0, perm: 'r' }]);
        eq(await c.getPerms(`${base}/p`), [{ domid: 0, perm: 'r' }], 'set perms read back');
        await c.write(`${base}/p/child/grandchild`, 'v');
        eq(await c.getPerms(`${base}/p/child`), [{ domid: 0, perm: 'r' }], 'implicit parent inherits');
        eq(await c.getPerms(`${base}/p/child/grandchild`), [{ domid: 0, perm: 'r' }], 'new node inherits');
        await c.setPerms(`${base}/p`, [{ domid: 0, perm: 'n' }]);
        eq(await c.getPerms(`${base}/p`), [{ domid: 0, perm: 'n' }], 'perms changed');
        eq(await c.getPerms(`${base}/p/child`), [{ domid: 0, perm: 'r' }], 'children keep theirs');
        await rejects(c.getPerms(`${base}/missing`), 'ENOENT', 'getPerms of a missing node');
        await rejects(c.setPerms(`${base}/missing`, [{ domid: 0, perm: 'n' }]), 'ENOENT', 'setPerms of a missing node');
        await rejects(c.setPerms(`${base}/p`, [{ domid: 32000, perm: 'n' }]), 'ENOENT', 'owner domain does not exist');
        await c.rm(base);
      },
    },
    {
      name: 'directory with more than 4096 bytes of names (DIRECTORY_PART) returns every child in order',
      async run(c, { base }) {
        const names = Array.from({ length: 260 }, (_, i) => `child-with-a-long-name-${String(i).padStart(4, '0')}`);
        await c.transaction(async (tx) => {
          for (const n of names) await tx.write(`${base}/many/${n}`, '');
        });
        const got = await c.directory(`${base}/many`);
        eq(got.length, names.length, 'number of children');
        eq(got, names, 'children');
        await c.rm(base);
      },
    },
    {
      name: 'transaction: writes are invisible outside until commit; abort discards them',
      async run(c, { base }) {
        await c.write(`${base}/v`, 'old');
        const tx = await c.transactionStart();
        ok(tx.id > 0, 'transaction id');
        await tx.write(`${base}/v`, 'new');
        await tx.write(`${base}/w/deep`, '1');
        eq(await tx.read(`${base}/v`), 'new', 'inside sees its write');
        eq(await c.read(`${base}/v`), 'old', 'outside does not');
        eq(await c.read(`${base}/w/deep`), undefined, 'outside does not see the new node');
        await c.transactionEnd(tx, true);
        eq(await c.read(`${base}/v`), 'new', 'committed');
        eq(await c.read(`${base}/w/deep`), '1', 'committed new node');
        const tx2 = await c.transactionStart();
        await tx2.write(`${base}/v`, 'aborted');
        await tx2.rm(`${base}/w`);
        await c.transactionEnd(tx2, false);
        eq(await c.read(`${base}/v`), 'new', 'abort discards');
        eq(await c.read(`${base}/w/deep`), '1', 'abort discards rm');
        await rejects(tx2.readStrict(`${base}/v`), 'ENOENT', 'using an ended transaction');
        await c.rm(base);
      },
    },
    {
      name: 'transaction conflict: a node read in the transaction changed outside -> EAGAIN at commit',
      async run(c, { base }) {
        await c.write(`${base}/counter`, '1');
        const tx = await c.transactionStart();
        const v = await tx.read(`${base}/counter`);
        await c.write(`${base}/counter`, '5');
        await tx.write(`${base}/counter`, String(Number(v) + 1));
        await rejects(c.transactionEnd(tx, true), 'EAGAIN', 'commit after a conflicting write');
        eq(await c.read(`${base}/counter`), '5', 'the conflicting transaction left nothing');
        await c.rm(base);
      },
    },
    {
      name: 'transaction(fn) reruns fn on EAGAIN and returns its result; an exception aborts',
      async run(c, { base }) {
        await c.write(`${base}/n`, '10');
        let attempts = 0;
        const r = await c.transaction(async (tx) => {
          attempts++;
          const v = Number(await tx.read(`${base}/n`));
          if (attempts === 1) await c.write(`${base}/n`, '20'); // conflict with ourselves
          await tx.write(`${base}/n`, String(v + 1));
          return v + 1;
        });
        eq(attempts, 2, 'attempts');
        eq(r, 21, 'result of the second attempt');
        eq(await c.read(`${base}/n`), '21', 'committed value');
        let threw = false;
        try {
          await c.transaction(async (tx) => {
            await tx.write(`${base}/n`, 'never');
            throw new Error('boom');
          });
        } catch (err) {
          threw = (err as Error).message === 'boom';
        }
        ok(threw, 'the exception propagates');
        eq(await c.read(`${base}/n`), '21', 'aborted');
        let tries = 0;
        await rejects(
          c.transaction(
            async (tx) => {
              tries++;
              await tx.read(`${base}/n`);
              await c.write(`${base}/n`, String(tries));
              await tx.write(`${base}/n`, 'x');
            },
            { maxAttempts: 3 },
          ),
          'EAGAIN',
          'always conflicting',
        );
        eq(tries, 3, 'bounded attempts');
        await c.rm(base);
      },
    },
    {
      name: 'concurrent transactions creating children of the same parent: one gets EAGAIN',
      async run(c, { base }) {
        await c.mkdir(`${base}/dir`);
        const t1 = await c.transactionStart();
        const t2 = await c.transactionStart();
        await t1.write(`${base}/dir/one`, '1');
        await t2.write(`${base}/dir/two`, '2');
        await c.transactionEnd(t1, true);
        await rejects(c.transactionEnd(t2, true), 'EAGAIN', 'second commit');
        eq(await c.directory(`${base}/dir`), ['one'], 'only the first');
        await c.rm(base);
      },
    },
    {
      name: 'watch: fires once on registration, then on the node and on descendants; unwatch stops it',
      async run(c, { base }) {
        const tok = token('w');
        const tap = new Tap(c);
        try {
          await c.watch(`${base}/w`, tok);
          eq((await tap.next(tok))?.path, `${base}/w`, 'initial event (node does not exist yet)');
          await c.write(`${base}/w`, '1');
          eq((await tap.next(tok))?.path, `${base}/w`, 'event on the node');
          await c.write(`${base}/w/child/x`, '1');
          eq((await tap.next(tok))?.path, `${base}/w/child/x`, 'event on a descendant');
          await c.write(`${base}/other`, '1');
          await c.write(`${base}/wx`, '1');
          eq(await tap.drain(tok), [], 'no event for siblings or name prefixes');
          await c.rm(`${base}/w/child`);
          eq((await tap.next(tok))?.path, `${base}/w/child`, 'event on rm of a descendant');
          await c.unwatch(`${base}/w`, tok);
          await c.write(`${base}/w`, '2');
          eq(await tap.drain(tok), [], 'nothing after unwatch');
        } finally {
          tap.close();
          await c.unwatch(`${base}/w`, tok).catch(() => undefined);
          await c.rm(base);
        }
      },
    },
    {
      name: 'watch: rm of an ancestor fires the watch below it with the watched path',
      async run(c, { base }) {
        const tok = token('rm');
        const tap = new Tap(c);
        try {
          await c.write(`${base}/a/b/c`, 'v');
          await c.watch(`${base}/a/b/c`, tok);
          eq((await tap.next(tok))?.path, `${base}/a/b/c`, 'initial');
          await c.rm(`${base}/a`);
          eq((await tap.next(tok))?.path, `${base}/a/b/c`, 'fired by the removal of an ancestor');
        } finally {
          tap.close();
          await c.unwatch(`${base}/a/b/c`, tok).catch(() => undefined);
          await c.rm(base);
        }
      },
    },
    {
      name: 'watch: same path and token twice is EEXIST; unwatching an unknown watch is ENOENT',
      async run(c, { base }) {
        const tok = token('dup');
        await c.watch(`${base}/d`, tok);
        try {
          await rejects(c.watch(`${base}/d`, tok), 'EEXIST', 'duplicate watch');
          await c.watch(`${base}/d`, `${tok}-2`);
          await c.unwatch(`${base}/d`, `${tok}-2`);
        } finally {
          await c.unwatch(`${base}/d`, tok);
        }
        await rejects(c.unwatch(`${base}/d`, tok), 'ENOENT', 'unknown watch');
      },
    },
    {
      name: 'watch events of a transaction arrive at commit, none for an aborted one',
      async run(c, { base }) {
        const tok = token('tx');
        const tap = new Tap(c);
        try {
          await c.watch(base, tok);
          eq((await tap.next(tok))?.path, base, 'initial');
          const tx = await c.transactionStart();
          await tx.write(`${base}/a`, '1');
          await tx.write(`${base}/b`, '2');
          eq(await tap.drain(tok), [], 'nothing before commit');
          await c.transactionEnd(tx, true);
          const got = await tap.drain(tok, 300);
          eq([...got].sort(), [`${base}/a`, `${base}/b`], 'events at commit');
          const tx2 = await c.transactionStart();
          await tx2.write(`${base}/c`, '3');
          await c.transactionEnd(tx2, false);
          eq(await tap.drain(tok), [], 'nothing for an aborted transaction');
        } finally {
          tap.close();
          await c.unwatch(base, tok).catch(() => undefined);
          await c.rm(base);
        }
      },
    },
    {
      name: 'relative paths: resolved under /local/domain/0; relative watches report relative paths',
      async run(c, { base }) {
        const name = `xvbd-conf-rel-${base.replace(/[^A-Za-z0-9]/g, '').slice(-24)}`;
        const tok = token('rel');
        const tap = new Tap(c);
        try {
          await c.write(`${name}/x`, 'r');
          eq(await c.read(`/local/domain/0/${name}/x`), 'r', 'absolute view of a relative write');
          eq(await c.read(`${name}/x`), 'r', 'relative read');
          await c.watch(name, tok);
          eq((await tap.next(tok))?.path, name, 'initial event is relative');
          await c.write(`/local/domain/0/${name}/x/y`, '1');
          eq((await tap.next(tok))?.path, `${name}/x/y`, 'change event is relative');
        } finally {
          tap.close();
          await c.unwatch(name, tok).catch(() => undefined);
          await c.rm(`/local/domain/0/${name}`);
        }
        eq(await c.read(`${name}/x`), undefined, 'cleaned');
        void base;
      },
    },
    {
      name: 'special watches: @introduceDomain and @releaseDomain fire once on registration',
      async run(c) {
        const tok = token('special');
        const tap = new Tap(c);
        try {
          await c.watch('@introduceDomain', tok);
          eq((await tap.next(tok))?.path, '@introduceDomain', 'initial @introduceDomain');
          await c.watch('@releaseDomain', tok);
          eq((await tap.next(tok))?.path, '@releaseDomain', 'initial @releaseDomain');
        } finally {
          tap.close();
          await c.unwatch('@introduceDomain', tok).catch(() => undefined);
          await c.unwatch('@releaseDomain', tok).catch(() => undefined);
        }
      },
    },
    {
      name: 'getDomainPath gives /local/domain/<domid>',
      async run(c) {
        eq(await c.getDomainPath(0), '/local/domain/0', 'dom0');
        eq(await c.getDomainPath(7), '/local/domain/7', 'domid 7');
        await rejects(c.getDomainPath(-1), 'EINVAL', 'negative domid');
      },
    },
    {
      name: 'dom0 initial nodes: /local/domain/0/name is Domain-0, domid 0',
      async run(c) {
        eq(await c.read('/local/domain/0/name'), 'Domain-0', 'name');
        eq(await c.read('/local/domain/0/domid'), '0', 'domid');
        ok((await c.directory('/')).includes('local'), '/local exists');
        ok((await c.directory('/')).includes('tool'), '/tool exists');
      },
    },
    {
      name: 'pipelined requests: 300 concurrent writes and reads all answered correctly',
      async run(c, { base }) {
        const n = 300;
        await Promise.all(Array.from({ length: n }, (_, i) => c.write(`${base}/p/${i}`, `v${i}`)));
        const vals = await Promise.all(Array.from({ length: n }, (_, i) => c.read(`${base}/p/${i}`)));
        for (let i = 0; i < n; i++) eq(vals[i], `v${i}`, `value ${i}`);
        eq((await c.directory(`${base}/p`)).length, n, 'children');
        await c.rm(base);
      },
    },
  ];
}
