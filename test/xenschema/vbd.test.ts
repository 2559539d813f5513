// The vbd schema's parsers (src/xen/vbd.ts), as tables: every form each one takes, and the near misses
// it refuses. One strictness for every caller (observe, plan, apply, the hook, the keeper, the daemon).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  backendPath,
  formatPhysicalDevice,
  MAX_DEVID,
  MAX_DOMID,
  parseBackendArg,
  parseBackendPath,
  parseDevid,
  parseDomid,
  parseInode,
  parsePhysicalDevice,
  parseU64,
  readPhysicalDevice,
} from '../../src/xen/vbd.js';

test('parseDomid: canonical decimal below DOMID_FIRST_RESERVED', () => {
  const rows: [string | undefined, number | undefined][] = [
    ['0', 0],
    ['5', 5],
    [String(MAX_DOMID), 0x7fef],
    [String(MAX_DOMID + 1), undefined],
    ['99999', undefined],
    ['00', undefined],
    ['05', undefined],
    ['-1', undefined],
    ['+1', undefined],
    [' 1', undefined],
    ['1\n', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [s, want] of rows) assert.equal(parseDomid(s), want, JSON.stringify(s));
});

test('parseDevid: canonical decimal up to 2^32 - 1 (libxl and the C hook agree)', () => {
  const rows: [string, number | undefined][] = [
    ['0', 0],
    ['51712', 51712],
    [String(2 ** 30), 2 ** 30],
    [String(MAX_DEVID), 0xffffffff],
    ['4294967296', undefined],
    ['051712', undefined],
    ['1e3', undefined],
    ['', undefined],
  ];
  for (const [s, want] of rows) assert.equal(parseDevid(s), want, s);
});

test('parseU64: digits only, no leading zeros, at most 2^64 - 1', () => {
  const rows: [string | undefined, string | undefined][] = [
    ['0', '0'],
    ['42', '42'],
    ['18446744073709551615', '18446744073709551615'],
    ['18446744073709551616', undefined],
    ['042', undefined],
    ['-1', undefined],
    ['4 2', undefined],
    ['0x2a', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [s, want] of rows) assert.equal(parseU64(s), want, JSON.stringify(s));
});

test('parseInode: "<st_dev>:<st_ino>", both u64', () => {
  assert.deepEqual(parseInode('2049:131'), { dev: '2049', ino: '131' });
  for (const bad of ['', '2049', '2049:', ':131', '02049:131', '1:2:3', '1: 2', undefined]) assert.equal(parseInode(bad), undefined, String(bad));
});

test('physical-device: parsePhysicalDevice takes exactly what xvbd writes; readPhysicalDevice what any hotplug script may', () => {
  // [value, strict (as written by xvbd / the block script), read (as observed and counted as used)]
  const rows: [string, { major: number; minor: number } | undefined, { major: number; minor: number } | undefined][] = [
    ['7:0', { major: 7, minor: 0 }, { major: 7, minor: 0 }],
    ['fd:1', { major: 253, minor: 1 }, { major: 253, minor: 1 }],
    ['103:fffff', { major: 259, minor: 0xfffff }, { major: 259, minor: 0xfffff }],
    ['FD:1', undefined, { major: 253, minor: 1 }],
    ['07:00', undefined, { major: 7, minor: 0 }],
    ['7:100000', undefined, { major: 7, minor: 0x100000 }],
    ['1000:0', undefined, { major: 0x1000, minor: 0 }],
    [' 7:0', undefined, undefined],
    ['7:0\n', undefined, undefined],
    ['0x7:0x0', undefined, undefined],
    ['7', undefined, undefined],
    ['7:', undefined, undefined],
    ['7:0:0', undefined, undefined],
    ['g:0', undefined, undefined],
    ['123456789:0', undefined, undefined],
    ['', undefined, undefined],
  ];
  for (const [s, strict, read] of rows) {
    assert.deepEqual(parsePhysicalDevice(s), strict, `strict ${JSON.stringify(s)}`);
    assert.deepEqual(readPhysicalDevice(s), read, `read ${JSON.stringify(s)}`);
  }
  for (const [ma, mi] of [[7, 0], [253, 1], [259, 0xfffff]] as const) {
    assert.deepEqual(parsePhysicalDevice(formatPhysicalDevice(ma, mi)), { major: ma, minor: mi }, 'what xvbd writes parses back');
  }
});

test('parseBackendPath / parseBackendArg: canonical vbd backend paths within the limits', () => {
  const id = { backendDomid: 0, frontendDomid: 3, devid: 51712 };
  assert.deepEqual(parseBackendPath('/local/domain/0/backend/vbd/3/51712'), id);
  assert.equal(backendPath(id), '/local/domain/0/backend/vbd/3/51712');
  assert.deepEqual(parseBackendArg('backend/vbd/3/51712'), id, 'XENBUS_PATH as libxl gives it, relative to dom0');
  assert.deepEqual(parseBackendArg('/local/domain/0/backend/vbd/3/51712'), id);
  assert.deepEqual(parseBackendPath(`/local/domain/${MAX_DOMID}/backend/vbd/${MAX_DOMID}/${MAX_DEVID}`), { backendDomid: MAX_DOMID, frontendDomid: MAX_DOMID, devid: MAX_DEVID });
  for (const bad of [
    '/local/domain/0/backend/vbd/3/51712/',
    '/local/domain/0/backend/vbd/3/51712/params',
    '/local/domain/0/backend/vif/3/0',
    '/local/domain/00/backend/vbd/3/51712',
    '/local/domain/0/backend/vbd/03/51712',
    '/local/domain/0/backend/vbd/3/051712',
    `/local/domain/0/backend/vbd/${MAX_DOMID + 1}/51712`,
    `/local/domain/${MAX_DOMID + 1}/backend/vbd/3/51712`,
    '/local/domain/0/backend/vbd/3/4294967296',
    'local/domain/0/backend/vbd/3/51712',
    '/local/domain/0/backend/vbd/3',
  ]) {
    assert.equal(parseBackendPath(bad), undefined, bad);
  }
  for (const bad of ['backend/vbd/3', 'backend/vbd/3/51712/x', '../backend/vbd/3/1', 'backend/vbd/-1/1']) assert.equal(parseBackendArg(bad), undefined, bad);
});

test('the vbd schema imports nothing but the model', () => {
  const src = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src/xen');
  for (const f of readdirSync(src).filter((x) => x.endsWith('.ts'))) {
    const imports = [...readFileSync(join(src, f), 'utf8').matchAll(/from '([^']+)'/g)].map((m) => m[1]!);
    for (const i of imports) assert.match(i, /^\.\.\/model\//, `${f} imports ${i}`);
  }
});
