// A throw-away copy of examples/host for the demo, the tests and the benchmark: the image files are
// created (sparse) under a temp root and the config's paths rewritten to point there; the example's
// block device (/dev/vg0/db-data, an LVM volume on a real host) is replaced by a loop device of a file,
// made with losetup (not ours: no marker, no autoclear; `cleanup()` detaches exactly that one).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const EXAMPLE_IMAGES = '/var/lib/xvbd/images';
const EXAMPLE_BLOCK = '/dev/vg0/db-data';
const EXAMPLE_BLOCK_ROOT = '/dev/vg0';

export function examplesHostDir(): string {
  // dist/src/demo/example-host.js -> <repo>/examples/host
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../examples/host');
}

export interface ExampleHost {
  configDir: string;
  imagesDir: string;
  /** Domain names in the example config. */
  domains: string[];
  /** Every image file made. */
  files: string[];
  /** The loop device standing in for /dev/vg0/db-data, if made. */
  blockDev?: string;
  /** Its diskseq when made: a device name is only valid together with its diskseq. */
  blockDevDiskseq?: string;
  /** Detaches the stand-in block device (if still backed by our file) and removes the work dir. */
  cleanup(): void;
}

export interface ExampleHostOptions {
  workDir: string;
  examplesDir?: string;
  /** Keep the `db` domain, with a losetup device standing in for its LVM volume (default true). */
  withBlockDevice?: boolean;
  /** Size of each sparse image (default 64 MiB). */
  imageSize?: number;
}

/** The diskseq of /dev/loopN per sysfs, or undefined (no such device). */
export function diskseqOf(dev: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${dev.replace(/^\/dev\//, '')}/diskseq`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The backing file of /dev/loopN per sysfs, or undefined. */
function backingOf(dev: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${dev.replace(/^\/dev\//, '')}/loop/backing_file`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function prepareExampleHost(opts: ExampleHostOptions): ExampleHost {
  const src = opts.examplesDir ?? examplesHostDir();
  const withBlock = opts.withBlockDevice ?? true;
  const size = opts.imageSize ?? 64 << 20;
  const imagesDir = join(opts.workDir, 'images');
  const configDir = join(opts.workDir, 'config');
  mkdirSync(imagesDir, { recursive: true });
  mkdirSync(configDir, { recursive: true });
  const files = new Set<string>();
  const domains: string[] = [];
  let blockDev: string | undefined;
  const host: ExampleHost = {
    configDir,
    imagesDir,
    domains,
    files: [],
    cleanup() {
      // Only the device we made: same backing file and the diskseq it had then (another process may
      // have got the same name meanwhile).
      if (blockDev && backingOf(blockDev) === join(imagesDir, 'db-data.img') && diskseqOf(blockDev) === host.blockDevDiskseq) {
        try {
          execFileSync('losetup', ['-d', blockDev], { stdio: 'ignore' });
        } catch {
          // gone already
        }
      }
      rmSync(opts.workDir, { recursive: true, force: true });
    },
  };
  try {
    const names = readdirSync(src).filter((n) => /\.ya?ml$/.test(n)).sort();
    const texts = new Map(names.map((n) => [n, readFileSync(join(src, n), 'utf8')]));
    const usesBlock = [...texts.values()].some((t) => t.includes(EXAMPLE_BLOCK));
    if (withBlock && usesBlock) {
      const img = join(imagesDir, 'db-data.img');
      writeFileSync(img, '');
      truncateSync(img, size);
      files.add(img);
      blockDev = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim();
      host.blockDev = blockDev;
      const seq = diskseqOf(blockDev);
      if (seq !== undefined) host.blockDevDiskseq = seq;
    }
    for (const [name, text0] of texts) {
      if (!withBlock && text0.includes(EXAMPLE_BLOCK)) continue;
      let text = text0.split(EXAMPLE_IMAGES).join(imagesDir);
      if (blockDev) text = text.split(EXAMPLE_BLOCK).join(blockDev).split(EXAMPLE_BLOCK_ROOT).join(blockDev);
      else text = text.replace(new RegExp(`^\\s*-\\s*${EXAMPLE_BLOCK_ROOT}\\s*$\\n?`, 'm'), '');
      writeFileSync(join(configDir, name), text);
      for (const m of text.matchAll(/^\s*file:\s*(\S+)\s*$/gm)) files.add(m[1]!);
      for (const m of text.matchAll(/^kind:\s*Domain\s*$[\s\S]*?^name:\s*(\S+)/gm)) domains.push(m[1]!);
    }
    for (const f of files) {
      if (!existsSync(f)) {
        writeFileSync(f, '');
        truncateSync(f, size);
      }
    }
    host.files = [...files].sort();
    return host;
  } catch (err) {
    host.cleanup();
    throw err;
  }
}
