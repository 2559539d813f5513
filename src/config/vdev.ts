// Virtual device names (vdev) and their numeric xenstore device ids (devid), exactly as
// Xen's docs/misc/vbd-interface.txt defines the encoding and as libxl parses the names:
//
//     1 << 28 | disk << 8 | partition      xvd, disks or partitions 16 onwards
//    202 << 8 | disk << 4 | partition      xvd, disks and partitions up to 15
//      8 << 8 | disk << 4 | partition      sd, disks and partitions up to 15
//      3 << 8 | disk << 6 | partition      hd, disks 0..1, partitions 0..63
//     22 << 8 | (disk-2) << 6 | partition  hd, disks 2..3, partitions 0..63
//     2 << 28 onwards                      reserved for future use
//
// Accepted spellings: xvd<letters>[<partition>], sd<letter>[<partition>], hd<letter>[<partition>],
// d<disk>[p<partition>] and a plain number (decimal, 0x-hex or 0-octal, written to xenstore as is).
// Disk letters are bijective base 26 (a = 0, z = 25, aa = 26, ..., xvdtq = disk 536).
// Partition numbers have no leading zeros (libxl rejects "xvda01" and "xvda0").

/** The first value of the extended xvd form, 1 << 28. */
export const EXTENDED_BASE = 1 << 28;
/** Values from 2 << 28 onwards are reserved for future use. */
export const RESERVED_FROM = 2 * (1 << 28);
/** xvd disks go up to (1 << 20) - 1 in the extended form. */
export const XVD_MAX_DISK = (1 << 20) - 1;
export const XVD_MAX_PARTITION = 255;

export type VdevType = 'xvd' | 'sd' | 'hd' | 'number';

export interface VdevInfo {
  devid: number;
  type: VdevType;
  /** Disk number (undefined for a plain number that is not a recognised encoding). */
  disk?: number;
  /** Partition number, 0 = whole disk. */
  partition?: number;
}

/** A vdev that Xen would not accept; `message` is one sentence for a human. */
export class VdevError extends Error {
  constructor(
    readonly vdev: string,
    message: string,
  ) {
    super(message);
    this.name = 'VdevError';
  }
}

/** Decodes the bijective base-26 disk letters ("a" = 0, "aa" = 26); -1 when above max. */
function lettersToDisk(letters: string, max: number): number {
  let n = -1;
  for (const ch of letters) {
    n = (n + 1) * 26 + (ch.charCodeAt(0) - 97);
    if (n > max) return -1;
  }
  return n;
}

/** Encodes a disk number as bijective base-26 letters (0 = "a", 26 = "aa"). */
export function diskToLetters(disk: number): string {
  let s = '';
  let n = disk;
  for (;;) {
    s = String.fromCharCode(97 + (n % 26)) + s;
    if (n < 26) return s;
    n = Math.floor(n / 26) - 1;
  }
}

function xvdDevid(disk: number, partition: number): number {
  if (disk <= 15 && partition <= 15) return (202 << 8) | (disk << 4) | partition;
  return EXTENDED_BASE + disk * 256 + partition;
}

/** Parses and checks a vdev; throws VdevError with a clear sentence when Xen would reject it. */
export function parseVdev(input: string): VdevInfo {
  const vdev = input.toLowerCase();
  if (vdev === '') throw new VdevError(input, 'the vdev is empty; write a name such as `xvda`');
  if (vdev.length > 32) throw new VdevError(input, `vdev \`${vdev.slice(0, 32)}...\` is too long to be a Xen device name`);

  // d<disk>p<partition> (and d<disk>, which vbd-interface.txt lists as the same as d<disk>p0).
  let m = /^d(\d+)(?:p(\d+))?$/.exec(vdev);
  if (m) {
    const [, ds, ps] = m as unknown as [string, string, string | undefined];
    if (/^0\d/.test(ds) || (ps !== undefined && /^0\d/.test(ps))) {
      throw new VdevError(input, `vdev \`${vdev}\` has a leading zero in a number; write \`d${Number(ds)}${ps === undefined ? '' : `p${Number(ps)}`}\``);
    }
    const disk = Number(ds);
    const partition = ps === undefined ? 0 : Number(ps);
    if (disk > XVD_MAX_DISK) throw new VdevError(input, `vdev \`${vdev}\` names disk ${ds}; Xen virtual disks go up to ${XVD_MAX_DISK}`);
    if (partition > XVD_MAX_PARTITION) throw new VdevError(input, `vdev \`${vdev}\` names partition ${ps}; Xen virtual disk partitions go up to ${XVD_MAX_PARTITION}`);
    return { devid: xvdDevid(disk, partition), type: 'xvd', disk, partition };
  }

  // A plain number: decimal, 0x-hex or 0-octal, as libxl's strtoul(..., 0).
  if (/^[0-9]/.test(vdev)) {
    let n: number;
    if (/^0x[0-9a-f]+$/.test(vdev)) n = parseInt(vdev.slice(2), 16);
    else if (/^0[0-7]*$/.test(vdev)) n = vdev === '0' ? 0 : parseInt(vdev.slice(1), 8);
    else if (/^[1-9][0-9]*$/.test(vdev)) n = Number(vdev);
    else throw new VdevError(input, `vdev \`${vdev}\` is not a number (decimal, 0x-hex or 0-octal) nor a device name such as \`xvda\``);
    if (!Number.isSafeInteger(n) || n >= RESERVED_FROM) {
      throw new VdevError(input, `vdev \`${vdev}\` is ${n >= RESERVED_FROM ? `${n}, in the range reserved for future use (2 << 28 onwards)` : 'too large'}`);
    }
    return numberInfo(n);
  }

  m = /^(xvd|sd|hd)([a-z]*)(.*)$/.exec(vdev);
  if (!m) {
    throw new VdevError(input, `vdev \`${vdev}\` is not a Xen device name; use xvd* (e.g. \`xvda\`), sd*, hd*, d<disk>p<partition> or a number`);
  }
  const [, prefix, letters, rest] = m as unknown as [string, 'xvd' | 'sd' | 'hd', string, string];
  if (letters === '') throw new VdevError(input, `vdev \`${vdev}\` has no disk letter after \`${prefix}\`; write e.g. \`${prefix}a\``);
  const limits = { xvd: [XVD_MAX_DISK, XVD_MAX_PARTITION, 'xvd'], sd: [15, 15, 'sdp'], hd: [3, 63, 'hdd'] } as const;
  const [maxDisk, maxPart, lastName] = limits[prefix];
  let partition = 0;
  if (rest !== '') {
    if (!/^[0-9]+$/.test(rest)) throw new VdevError(input, `vdev \`${vdev}\` has \`${rest}\` after the disk letters; only a partition number may follow`);
    if (rest.startsWith('0')) {
      const p = Number(rest);
      throw new VdevError(
        input,
        p === 0
          ? `vdev \`${vdev}\` names partition 0; the whole disk is written \`${prefix}${letters}\``
          : `vdev \`${vdev}\` has a leading zero in the partition number; write \`${prefix}${letters}${p}\``,
      );
    }
    partition = Number(rest);
    if (partition > maxPart) {
      throw new VdevError(input, `vdev \`${vdev}\` names partition ${rest}; ${prefix} disks have partitions 1 to ${maxPart}`);
    }
  }
  const disk = lettersToDisk(letters, maxDisk);
  if (disk < 0) {
    throw new VdevError(
      input,
      prefix === 'xvd'
        ? `vdev \`${vdev}\` is beyond the last Xen virtual disk (disk ${XVD_MAX_DISK})`
        : `vdev \`${vdev}\` is beyond \`${lastName}\`, the last ${prefix} disk Xen can encode; use xvd* names for more disks`,
    );
  }
  let devid: number;
  if (prefix === 'xvd') devid = xvdDevid(disk, partition);
  else if (prefix === 'sd') devid = (8 << 8) | (disk << 4) | partition;
  else devid = ((disk < 2 ? 3 : 22) << 8) | ((disk & 1) << 6) | partition;
  return { devid, type: prefix, disk, partition };
}

function numberInfo(n: number): VdevInfo {
  const d = decodeDevid(n);
  return d ? { devid: n, type: 'number', disk: d.disk, partition: d.partition } : { devid: n, type: 'number' };
}

/** Recognises the canonical encodings of the table above; undefined for anything else. */
function decodeDevid(devid: number): { prefix: 'xvd' | 'sd' | 'hd'; disk: number; partition: number } | undefined {
  if (devid >= EXTENDED_BASE && devid < RESERVED_FROM) {
    const minor = devid - EXTENDED_BASE;
    const disk = Math.floor(minor / 256);
    const partition = minor % 256;
    // Disks and partitions up to 15 have only the 202 << 8 form; the extended one is not canonical.
    if (disk <= 15 && partition <= 15) return undefined;
    return { prefix: 'xvd', disk, partition };
  }
  const major = devid >> 8;
  const minor = devid & 0xff;
  if (devid < 0 || devid > 0xffff) return undefined;
  if (major === 202) return { prefix: 'xvd', disk: minor >> 4, partition: minor & 15 };
  if (major === 8) return { prefix: 'sd', disk: minor >> 4, partition: minor & 15 };
  // hd: two disks per major (disk << 6); minors 128..255 of majors 3 and 22 are not hd encodings.
  if (major === 3 && minor < 128) return { prefix: 'hd', disk: minor >> 6, partition: minor & 63 };
  if (major === 22 && minor < 128) return { prefix: 'hd', disk: 2 + (minor >> 6), partition: minor & 63 };
  return undefined;
}

/** The numeric xenstore device id of a vdev (xvda = 51712, xvdq = 268439552, hda = 768, sda = 2048). Throws VdevError. */
export function vdevToDevid(vdev: string): number {
  return parseVdev(vdev).devid;
}

/**
 * The vdev name of a devid: the name of its encoding (51712 = "xvda", 268439552 = "xvdq", 768 = "hda",
 * 5632 = "hdc", 2049 = "sda1"). A number in [0, 2 << 28) that is not a canonical encoding (a
 * deprecated value, or the extended form of a disk that has a 202 << 8 form) comes back as its
 * decimal string, so that vdevToDevid(devidToVdev(n)) === n for every accepted n.
 * Throws RangeError for negative, non-integer or reserved (2 << 28 onwards) values.
 */
export function devidToVdev(devid: number): string {
  if (!Number.isInteger(devid) || devid < 0 || devid >= RESERVED_FROM) {
    throw new RangeError(`devid ${devid} is not a valid Xen virtual block device number`);
  }
  const d = decodeDevid(devid);
  if (!d) return String(devid);
  return `${d.prefix}${diskToLetters(d.disk)}${d.partition === 0 ? '' : d.partition}`;
}
