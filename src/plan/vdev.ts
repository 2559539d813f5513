// devid -> vdev name, the inverse of docs/misc/vbd-interface.txt, for display of backends that no
// desired disk names (a desired disk carries its vdev as written).
//   xvd:      (202 << 8) | (disk << 4) | partition      disk 0..15, partition 0..15
//   extended: (1 << 28) | (disk << 8) | partition      disk 0..(2^20-1), partition 0..255
//   sd:       (8 << 8)  | (disk << 4) | partition      disk 0..15
//   hd:       (3 << 8) | (disk << 6) | partition (hda, hdb); (22 << 8) | ... (hdc, hdd)

/** 0 -> "a", 25 -> "z", 26 -> "aa", 701 -> "zz", 702 -> "aaa" (the Linux sd/xvd naming). */
export function diskLetters(disk: number): string {
  let n = disk + 1;
  let s = '';
  while (n > 0) {
    const r = (n - 1) % 26;
    s = String.fromCharCode(97 + r) + s;
    n = Math.floor((n - 1) / 26);
  }
  return s;
}

function withPart(base: string, partition: number): string {
  return partition === 0 ? base : `${base}${partition}`;
}

/** The vdev a devid names, or `d<devid>` when it does not decode. */
export function devidToVdev(devid: number): string {
  if (!Number.isInteger(devid) || devid < 0) return `d${devid}`;
  if (devid & (1 << 28)) {
    if (devid >= 2 ** 29) return `d${devid}`;
    const disk = (devid >> 8) & 0xfffff;
    const partition = devid & 0xff;
    return withPart(`xvd${diskLetters(disk)}`, partition);
  }
  if (devid >= 1 << 16) return `d${devid}`;
  const major = devid >> 8;
  const minor = devid & 0xff;
  switch (major) {
    case 202:
      return withPart(`xvd${diskLetters(minor >> 4)}`, minor & 15);
    case 8:
      return withPart(`sd${diskLetters(minor >> 4)}`, minor & 15);
    case 3:
      return withPart(`hd${diskLetters(minor >> 6)}`, minor & 63);
    case 22:
      return withPart(`hd${diskLetters(2 + (minor >> 6))}`, minor & 63);
    default:
      return `d${devid}`;
  }
}
