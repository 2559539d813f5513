// openSource: no symlink anywhere, allowed roots, kinds; and the symlink-swap attack, with openat2 and
// with the component-by-component walk.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, linkSync, mkdirSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { SourceError, closeSource, isUnderRoots, openSource } from '../../src/linux/source.js';
import { attachLoop } from '../../src/linux/loopdev.js';
import { Scratch, losetup, losetupDetach, sysfs } from './helpers.js';

const scratch = new Scratch('source');
after(() => scratch.finish());

const root = `${scratch.dir}/root`;
mkdirSync(`${root}/vm`, { recursive: true });
mkdirSync(`${scratch.dir}/outside`, { recursive: true });
const good = scratch.image('root/vm/disk.img');
const secret = scratch.image('outside/secret.img');
symlinkSync(good, `${root}/vm/link.img`); // final component is a symlink
symlinkSync(`${root}/vm`, `${root}/vmlink`); // a directory component is a symlink
symlinkSync(`${scratch.dir}/outside`, `${root}/escape`);
linkSync(good, `${root}/vm/hard.img`);
mkdirSync(`${root}/vm/dir.img`);
execFileSync('mkfifo', [`${root}/vm/fifo.img`]);
writeFileSync(`${root}/vm/x (deleted)`, '');

function why(fn: () => unknown): string {
  try {
    const s = fn() as { fd: number };
    closeSource(s);
    return 'ok';
  } catch (e) {
    if (e instanceof SourceError) return e.reason;
    throw e;
  }
}

for (const noOpenat2 of [false, true]) {
  const mode = noOpenat2 ? 'walk' : 'openat2';
  test(`openSource refusals and acceptances (table, ${mode})`, () => {
    const roots = [root];
    const cases: Array<[string, Partial<{ readOnly: boolean; kind: 'file' | 'block'; roots: string[] }>, string]> = [
      [`${root}/vm/disk.img`, {}, 'ok'],
      [`${root}/vm/disk.img`, { readOnly: false }, 'ok'],
      [`${root}/vm/hard.img`, {}, 'ok'],
      [`${root}//vm/./disk.img`, {}, 'ok'],
      [`${root}/vm/x (deleted)`, {}, 'ok'],
      [`${root}/vm/link.img`, {}, 'symlink'],
      [`${root}/vmlink/disk.img`, {}, 'symlink'],
      [`${root}/escape/secret.img`, {}, 'symlink'],
      [`${root}/../outside/secret.img`, {}, 'outside-roots'],
      [secret, {}, 'outside-roots'],
      [secret, { roots: [] }, 'ok'],
      [`${root}x/vm/disk.img`, {}, 'outside-roots'],
      ['vm/disk.img', {}, 'not-absolute'],
      ['', {}, 'bad-path'],
      [`${root}/vm/disk.img\0`, {}, 'bad-path'],
      [`${root}/vm/missing.img`, {}, 'not-found'],
      [`${root}/vm/disk.img/x`, {}, 'not-found'],
      [`${root}/vm/dir.img`, {}, 'not-regular'],
      [`${root}/vm/fifo.img`, {}, 'not-regular'],
      [`${root}/vm/disk.img`, { kind: 'block' }, 'not-block'],
      ['/', { roots: [] }, 'not-regular'],
      ['/dev/null', { roots: [] }, 'not-regular'],
    ];
    for (const [path, o, expected] of cases) {
      const got = why(() =>
        openSource(path, { allowedRoots: o.roots ?? roots, readOnly: o.readOnly ?? true, kind: o.kind ?? 'file', noOpenat2 }),
      );
      assert.equal(got, expected, `${JSON.stringify(path)} ${JSON.stringify(o)}`);
    }
  });

  test(`openSource gives the fd's own identity (${mode})`, () => {
    const s = openSource(good, { allowedRoots: [root], readOnly: true, noOpenat2 });
    try {
      const st = fstatSync(s.fd, { bigint: true });
      assert.equal(s.stat.ino, String(st.ino));
      assert.equal(s.stat.dev, String(st.dev));
      assert.equal(s.stat.kind, 'file');
      assert.equal(s.stat.size, String(4 * 1024 * 1024));
      assert.equal(s.devB, st.dev);
    } finally {
      closeSource(s);
    }
  });
}

test('isUnderRoots is lexical over normalised paths (table)', () => {
  const table: Array<[string, string[], boolean]> = [
    ['/srv/vm/a.img', ['/srv/vm'], true],
    ['/srv/vm/a.img', ['/srv/vm/'], true],
    ['/srv/vmx/a.img', ['/srv/vm'], false],
    ['/srv/vm', ['/srv/vm'], true],
    ['/srv/a.img', ['/srv/vm', '/srv'], true],
    ['/a.img', ['/'], true],
    ['/a.img', [], true],
    ['/etc/passwd', ['/srv/vm'], false],
  ];
  for (const [p, roots, ok] of table) assert.equal(isUnderRoots(p, roots), ok, `${p} ${roots}`);
});

for (const noOpenat2 of [false, true]) {
  test(`symlink swapped in between check and open never redirects us (${noOpenat2 ? 'walk' : 'openat2'})`, async () => {
    // <base>/d is, in turn, the real directory (with disk.img) and a symlink to <base>/evil (with its own
    // disk.img): an attacker renaming in a loop. Every open that succeeds must give the real inode.
    const base = `${scratch.dir}/swap-${noOpenat2}`;
    mkdirSync(`${base}/real`, { recursive: true });
    mkdirSync(`${base}/evil`, { recursive: true });
    const realImg = scratch.image(`swap-${noOpenat2}/real/disk.img`, 1);
    scratch.image(`swap-${noOpenat2}/evil/disk.img`, 1);
    const realIno = scratch.inode(realImg).ino;
    symlinkSync(`${base}/evil`, `${base}/link`);
    const swapper = spawn(
      process.execPath,
      [
        '-e',
        `const fs=require('fs');const b=${JSON.stringify(base)};
         for(;;){try{fs.renameSync(b+'/real',b+'/d');fs.renameSync(b+'/d',b+'/real');
         fs.renameSync(b+'/link',b+'/d');fs.renameSync(b+'/d',b+'/link');}catch{}}`,
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise((r) => swapper.once('exit', r));
    const seen: Record<string, number> = {};
    let naiveEvil = 0;
    try {
      const until = Date.now() + 4000;
      while (Date.now() < until && ((seen['ok'] ?? 0) < 50 || (seen['symlink'] ?? 0) < 50 || naiveEvil === 0)) {
        for (let i = 0; i < 200; i++) {
          try {
            const s = openSource(`${base}/d/disk.img`, { allowedRoots: [base], readOnly: true, noOpenat2 });
            const ino = s.stat.ino;
            closeSource(s);
            assert.equal(ino, realIno, 'opened a file through a swapped-in symlink');
            seen['ok'] = (seen['ok'] ?? 0) + 1;
          } catch (e) {
            if (!(e instanceof SourceError)) throw e;
            seen[e.reason] = (seen[e.reason] ?? 0) + 1;
          }
          // Control: a plain open follows the symlink whenever it is there.
          try {
            const fd = openSync(`${base}/d/disk.img`, 'r');
            if (String(fstatSync(fd, { bigint: true }).ino) !== realIno) naiveEvil++;
            closeSync(fd);
          } catch {
            // missing in between renames
          }
        }
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      swapper.kill();
      await exited;
    }
    assert.ok((seen['ok'] ?? 0) > 0, `never opened the real file: ${JSON.stringify(seen)}`);
    assert.ok((seen['symlink'] ?? 0) > 0, `never met the symlink: ${JSON.stringify(seen)}`);
    assert.ok(naiveEvil > 0, 'the attack did not work against a plain open either: the test exercised nothing');
    for (const r of Object.keys(seen)) assert.ok(['ok', 'symlink', 'not-found'].includes(r), `unexpected refusal ${r}`);
  });
}

test('block sources: udev-style links inside /dev are followed to a /dev node; links out of /dev are not', () => {
  const img = scratch.image('blk-link.img');
  const theirs = losetup(img);
  const inDev = `/dev/xvbd-test-${process.pid}-blk`;
  const outOfDev = `/dev/xvbd-test-${process.pid}-out`;
  const dangling = `/dev/xvbd-test-${process.pid}-dangling`;
  symlinkSync(`/dev/${theirs}`, inDev);
  symlinkSync(img, outOfDev);
  try {
    const s = openSource(inDev, { allowedRoots: ['/dev'], readOnly: true, kind: 'block' });
    try {
      assert.equal(s.path, `/dev/${theirs}`);
      assert.equal(`${s.stat.major}:${s.stat.minor}`, sysfs(theirs, 'dev'));
    } finally {
      closeSource(s);
    }
    assert.equal(why(() => openSource(outOfDev, { allowedRoots: [], readOnly: true, kind: 'block' })), 'symlink');
    assert.equal(why(() => openSource(inDev, { allowedRoots: [], readOnly: true, kind: 'file' })), 'symlink');
    assert.equal(why(() => openSource(inDev, { allowedRoots: [root], readOnly: true, kind: 'block' })), 'outside-roots');
    symlinkSync(`/dev/xvbd-test-${process.pid}-nothing`, dangling);
    assert.equal(why(() => openSource(dangling, { allowedRoots: [], readOnly: true, kind: 'block' })), 'not-found');
  } finally {
    for (const l of [inDev, outOfDev, dangling]) rmSync(l, { force: true });
    losetupDetach(theirs);
  }
});

test('block size must be one the kernel takes', async () => {
  const s = openSource(good, { allowedRoots: [root], readOnly: true });
  try {
    for (const bs of [100, 513, 8192, 3000]) {
      await assert.rejects(attachLoop({ fd: s.fd, dev: s.devB, ino: s.inoB }, { readOnly: true, blockSize: bs }), RangeError);
    }
  } finally {
    closeSource(s);
  }
});
