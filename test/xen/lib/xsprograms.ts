// The differential programs played against the real xenstored (dom0) and the simulator (host).
// Each is a table of raw operations; what each should return is NOT written here: the real xenstored's
// replies are the reference, recorded in dom0 and compared with the simulator's replies on the host.
import { pv, z } from './rawxs.js';
import type { Program, Step } from './xsdiff.js';

const ROOT = '/xvbd-diff';

type OpOpts = { tx?: string | number; bind?: string };
const op = (c: string, type: string | number, payload: Buffer, o: OpOpts = {}): Step => ({ k: 'op', c, type, payload, ...o });
const read = (c: string, path: string, o?: OpOpts) => op(c, 'READ', z(path), o);
const write = (c: string, path: string, v: string, o?: OpOpts) => op(c, 'WRITE', pv(path, v), o);
const mkdir = (c: string, path: string, o?: OpOpts) => op(c, 'MKDIR', z(path), o);
const rm = (c: string, path: string, o?: OpOpts) => op(c, 'RM', z(path), o);
const dir = (c: string, path: string, o?: OpOpts) => op(c, 'DIRECTORY', z(path), o);
const getPerms = (c: string, path: string, o?: OpOpts) => op(c, 'GET_PERMS', z(path), o);
const setPerms = (c: string, path: string, perms: string[], o?: OpOpts) => op(c, 'SET_PERMS', z(path, ...perms), o);
const watch = (c: string, path: string, token: string) => op(c, 'WATCH', z(path, token));
const unwatch = (c: string, path: string, token: string) => op(c, 'UNWATCH', z(path, token));
const tStart = (c: string, bind: string, o: OpOpts = {}) => op(c, 'TRANSACTION_START', z(''), { ...o, bind });
const tEnd = (c: string, tx: string | number, commit: boolean | string) =>
  op(c, 'TRANSACTION_END', z(typeof commit === 'string' ? commit : commit ? 'T' : 'F'), { tx });
const ls = (...args: string[]): Step => ({ k: 'ls', args });

function errors(): Program {
  const B = `${ROOT}/errors`;
  const long = (n: number) => `${B}/` + 'x'.repeat(n - B.length - 1);
  return {
    name: 'errors',
    prepare: [B, '/local/domain/0/xvbd-diff-rel'],
    steps: [
      write('A', `${B}/a`, '1'),
      read('A', `${B}/a`),
      read('A', `${B}/missing`),
      read('A', `${B}/missing/deeper`),
      read('A', ''),
      read('A', `${B}//a`),
      read('A', `${B}/a/`),
      read('A', 'noslash-but-relative-missing'),
      write('A', `${B}/bad name`, 'v'),
      write('A', `${B}/dotted.name`, 'v'),
      write('A', `${B}/caf\u00e9`, 'v'),
      write('A', `${B}/ok-_@09AZ`, 'v'),
      read('A', `${B}/ok-_@09AZ`),
      write('A', '@introduceDomain', 'v'),
      write('A', '@notspecial', 'v'),
      write('A', 'xvbd-diff-rel/x', 'rel'),
      read('A', '/local/domain/0/xvbd-diff-rel/x'),
      read('A', 'xvbd-diff-rel/x'),
      write('A', long(3071), 'at the limit'),
      read('A', long(3071)),
      write('A', long(3072), 'over the limit'),
      write('A', `${B}/zz`, ''),
      write('A', `${B}/aa`, ''),
      write('A', `${B}/mm`, ''),
      dir('A', B),
      dir('A', `${B}/missing`),
      dir('A', `${B}/a`),
      op('A', 'DIRECTORY_PART', z(B, '0')),
      op('A', 'DIRECTORY_PART', z(B, '3')),
      op('A', 'DIRECTORY_PART', z(`${B}/missing`, '0')),
      mkdir('A', `${B}/a`),
      read('A', `${B}/a`),
      mkdir('A', `${B}/m`),
      read('A', `${B}/m`),
      write('A', `${B}/deep/x/y`, 'v'),
      read('A', `${B}/deep`),
      read('A', `${B}/deep/x`),
      write('A', `${B}/bin`, 'a\0b'),
      read('A', `${B}/bin`),
      write('A', `${B}/empty`, ''),
      read('A', `${B}/empty`),
      rm('A', `${B}/missing`),
      rm('A', `${B}/nope/missing`),
      rm('A', `${B}/deep`),
      read('A', `${B}/deep/x/y`),
      rm('A', 'xvbd-diff-rel'),
      op('A', 'GET_DOMAIN_PATH', z('0')),
      op('A', 'GET_DOMAIN_PATH', z('7')),
      op('A', 'GET_DOMAIN_PATH', z('x')),
      op('A', 'GET_DOMAIN_PATH', z('')),
      op('A', 'IS_DOMAIN_INTRODUCED', z('0')),
      op('A', 'IS_DOMAIN_INTRODUCED', z('7')),
      read('A', `${B}/a`, { tx: 0x7eadbeef }),
      read('A', '/'),
    ],
  };
}

function perms(): Program {
  const B = `${ROOT}/perms`;
  return {
    name: 'perms',
    prepare: [B],
    steps: [
      write('A', `${B}/p`, 'v'),
      getPerms('A', `${B}/p`),
      getPerms('A', B),
      setPerms('A', `${B}/p`, ['n0', 'r1']),
      getPerms('A', `${B}/p`),
      write('A', `${B}/p/child`, 'c'),
      getPerms('A', `${B}/p/child`),
      mkdir('A', `${B}/p/dir`),
      getPerms('A', `${B}/p/dir`),
      setPerms('A', `${B}/p`, ['b0']),
      getPerms('A', `${B}/p`),
      getPerms('A', `${B}/p/child`),
      setPerms('A', `${B}/q`, ['r0', 'w3', 'n5']),
      write('A', `${B}/q`, 'q'),
      setPerms('A', `${B}/q`, ['r0', 'w3', 'n5']),
      getPerms('A', `${B}/q`),
      setPerms('A', `${B}/o`, ['n0']),
      write('A', `${B}/o`, 'owned by 7'),
      setPerms('A', `${B}/o`, ['b7']),
      getPerms('A', `${B}/o`),
      read('A', `${B}/o`),
      write('A', `${B}/o`, 'dom0 writes anyway'),
      setPerms('A', `${B}/p`, ['x0']),
      setPerms('A', `${B}/p`, ['n']),
      setPerms('A', `${B}/p`, ['nx']),
      setPerms('A', `${B}/p`, []),
      op('A', 'SET_PERMS', Buffer.from(`${B}/p\0n0`)),
      setPerms('A', `${B}/p`, ['n0', 'r0']),
      getPerms('A', `${B}/p`),
      setPerms('A', `${B}/missing`, ['n0']),
      getPerms('A', `${B}/missing`),
      getPerms('A', '@introduceDomain'),
      getPerms('A', '@releaseDomain'),
      getPerms('A', '/'),
      getPerms('A', '/local/domain/0'),
      setPerms('A', `${B}/p`, ['n0', 'r1', 'w2', 'b3']),
      ls('-p', B),
      ls('-f', '-p', B),
      ls('-p', `${B}/missing`),
    ],
  };
}

function transactions(): Program {
  const B = `${ROOT}/tx`;
  return {
    name: 'transactions',
    prepare: [B],
    steps: [
      { k: 'open', c: 'A' },
      { k: 'open', c: 'B' },
      write('A', `${B}/x`, '0'),
      write('A', `${B}/y`, '0'),
      // read in T1, outside write of what T1 read, T1 writes elsewhere: conflict
      tStart('A', 'T1'),
      read('A', `${B}/x`, { tx: 'T1' }),
      write('B', `${B}/x`, '1'),
      write('A', `${B}/y`, 't1', { tx: 'T1' }),
      tEnd('A', 'T1', true),
      read('A', `${B}/y`),
      // both write the same node
      tStart('A', 'T2'),
      write('A', `${B}/x`, 't2', { tx: 'T2' }),
      write('B', `${B}/x`, '2'),
      tEnd('A', 'T2', true),
      read('A', `${B}/x`),
      // no conflict: committed
      tStart('A', 'T3'),
      write('A', `${B}/x`, 't3', { tx: 'T3' }),
      read('A', `${B}/x`, { tx: 'T3' }),
      read('B', `${B}/x`),
      tEnd('A', 'T3', true),
      read('B', `${B}/x`),
      // read-only transaction
      tStart('A', 'T4'),
      read('A', `${B}/x`, { tx: 'T4' }),
      tEnd('A', 'T4', true),
      // abort
      tStart('A', 'T5'),
      write('A', `${B}/x`, 't5', { tx: 'T5' }),
      tEnd('A', 'T5', false),
      read('A', `${B}/x`),
      // two transactions, disjoint existing nodes
      tStart('A', 'T6'),
      tStart('B', 'T7'),
      write('A', `${B}/x`, '6', { tx: 'T6' }),
      write('B', `${B}/y`, '7', { tx: 'T7' }),
      tEnd('A', 'T6', true),
      tEnd('B', 'T7', true),
      read('A', `${B}/x`),
      read('A', `${B}/y`),
      // new children of the same parent, one in a transaction, one outside
      tStart('A', 'T8'),
      write('A', `${B}/new1`, 'n', { tx: 'T8' }),
      write('B', `${B}/new2`, 'n'),
      tEnd('A', 'T8', true),
      dir('A', B),
      // changed outside after the start but before the transaction's first access
      tStart('A', 'T9'),
      write('B', `${B}/x`, '9'),
      read('A', `${B}/x`, { tx: 'T9' }),
      write('A', `${B}/y`, 't9', { tx: 'T9' }),
      tEnd('A', 'T9', true),
      read('A', `${B}/y`),
      // a node missing in the transaction, created outside
      tStart('A', 'T10'),
      read('A', `${B}/ghost`, { tx: 'T10' }),
      write('B', `${B}/ghost`, 'g'),
      write('A', `${B}/y`, 't10', { tx: 'T10' }),
      tEnd('A', 'T10', true),
      // nested start, bad end argument, unknown ids
      tStart('A', 'T11'),
      op('A', 'TRANSACTION_START', z(''), { tx: 'T11' }),
      tEnd('A', 'T11', 'X'),
      tEnd('A', 'T11', false),
      tEnd('A', 'T11', false),
      tEnd('A', 0x7eadbeef, true),
      tEnd('A', 0, true),
      // rm, directory, mkdir and perms inside a transaction
      tStart('A', 'T12'),
      rm('A', `${B}/y`, { tx: 'T12' }),
      dir('A', B, { tx: 'T12' }),
      dir('B', B),
      mkdir('A', `${B}/d`, { tx: 'T12' }),
      setPerms('A', `${B}/d`, ['n0', 'r2'], { tx: 'T12' }),
      getPerms('A', `${B}/d`, { tx: 'T12' }),
      getPerms('B', `${B}/d`),
      tEnd('A', 'T12', true),
      dir('B', B),
      getPerms('B', `${B}/d`),
      // a transaction left open when its connection closes
      tStart('B', 'T13'),
      write('B', `${B}/left`, 'open', { tx: 'T13' }),
      { k: 'close', c: 'B' },
      read('A', `${B}/left`),
    ],
  };
}

function watches(): Program {
  const B = `${ROOT}/watch`;
  return {
    name: 'watches',
    prepare: [B, '/local/domain/0/xvbd-diff-relw'],
    steps: [
      { k: 'open', c: 'W' },
      { k: 'open', c: 'M' },
      write('M', `${B}/p`, ''),
      watch('W', `${B}/w`, 'tok1'),
      write('M', `${B}/w`, '1'),
      write('M', `${B}/w/c`, '2'),
      write('M', B, 'parent'),
      watch('W', `${B}/w`, 'tok2'),
      write('M', `${B}/w`, '3'),
      watch('W', `${B}/w`, 'tok1'),
      write('W', `${B}/w`, '4'),
      write('M', `${B}/w`, '4'),
      mkdir('M', `${B}/w`),
      setPerms('M', `${B}/w`, ['n0', 'r1']),
      rm('M', `${B}/w`),
      unwatch('W', `${B}/w`, 'tok2'),
      unwatch('W', `${B}/w`, 'nope'),
      write('M', `${B}/w`, '5'),
      watch('W', `${B}/x/y`, 'deep'),
      write('M', `${B}/x`, 'v'),
      write('M', `${B}/x/y/z`, 'v'),
      rm('M', `${B}/x`),
      watch('W', 'xvbd-diff-relw', 'rel'),
      write('M', '/local/domain/0/xvbd-diff-relw/k', 'v'),
      write('M', 'xvbd-diff-relw', 'v'),
      watch('W', '@introduceDomain', 'intro'),
      watch('W', '@releaseDomain', 'release'),
      watch('W', '', 'empty'),
      watch('W', `${B}//bad`, 't'),
      watch('W', `${B}/sp`, 'token with spaces/and:stuff'),
      write('M', `${B}/sp`, 'v'),
      tStart('M', 'TW'),
      write('M', `${B}/w`, 'tx', { tx: 'TW' }),
      write('M', `${B}/w/inner`, 'tx', { tx: 'TW' }),
      tEnd('M', 'TW', true),
      tStart('M', 'TW2'),
      write('M', `${B}/w`, 'tx2', { tx: 'TW2' }),
      tEnd('M', 'TW2', false),
      watch('M', `${B}/w`, 'mine'),
      write('M', `${B}/w`, 'own'),
      op('W', 'RESET_WATCHES', z('')),
      write('M', `${B}/w`, 'after reset'),
      rm('M', B),
    ],
  };
}

function protocol(): Program {
  const B = `${ROOT}/proto`;
  return {
    name: 'protocol',
    prepare: [B],
    steps: [
      write('A', `${B}/a`, '1'),
      // arguments without their terminating NUL
      op('C1', 'READ', Buffer.from(`${B}/a`)),
      read('C1', `${B}/a`),
      op('C1', 'READ', Buffer.from(`${B}/missing`)),
      op('C1', 'DIRECTORY', Buffer.from(B)),
      op('C1', 'GET_PERMS', Buffer.from(`${B}/a`)),
      op('C1', 'MKDIR', Buffer.from(`${B}/nonul`)),
      read('C1', `${B}/nonul`),
      op('C1', 'RM', Buffer.from(`${B}/nonul`)),
      op('C1', 'WRITE', Buffer.from(`${B}/nonul-write`)),
      read('C1', `${B}/nonul-write`),
      op('C1', 'WATCH', Buffer.from(`${B}/a\0tok`)),
      op('C1', 'GET_DOMAIN_PATH', Buffer.from('0')),
      op('C1', 'TRANSACTION_START', Buffer.alloc(0)),
      op('C1', 'READ', Buffer.alloc(0)),
      op('C2', 99, z('')),
      read('C2', `${B}/a`),
      op('C3', 20, z('')),
      read('C3', `${B}/a`),
      op('C4', 'WATCH_EVENT', z(`${B}/a`, 't')),
      read('C4', `${B}/a`),
      op('C5', 'WRITE', pv(`${B}/big`, 'v'.repeat(4096 - `${B}/big`.length - 1))),
      read('C5', `${B}/big`),
      op('C6', 'WRITE', pv(`${B}/big`, 'v'.repeat(4097 - `${B}/big`.length - 1))),
      read('A', `${B}/a`),
    ],
  };
}

/** All programs, in the order they are played. */
export function programs(): Program[] {
  return [errors(), perms(), transactions(), watches(), protocol()];
}
