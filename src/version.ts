// The version of xvbd (printed by --version, written into the metrics file): package.json's, read once
// (dist/src/version.js -> ../../package.json; the same from src/ under a TypeScript runner).
import { readFileSync } from 'node:fs';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export const VERSION = packageVersion();
