// Device numbers (dev_t) split into major and minor. No FFI: safe to import anywhere.

/** glibc's gnu_dev_major/minor on a 64-bit dev_t. */
export function devMajor(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}
export function devMinor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}
