// Scenario discovery: every compiled test/xen/scenarios/<name>.js exporting `scenario` (see
// framework.ts), and every test/xen/scenarios/<name>.sh (a bash script run in dom0: one case, passes
// when it exits 0).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { XenScenario } from './framework.js';

export interface NamedScenario {
  name: string;
  scenario: XenScenario;
}

export const scenarioDir = join(dirname(fileURLToPath(import.meta.url)), 'scenarios');
/** The shell scenarios are not compiled: they are read from the source tree. */
export const shellScenarioDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/xen/scenarios');

function shellNames(): string[] {
  return existsSync(shellScenarioDir) ? readdirSync(shellScenarioDir).filter((f) => f.endsWith('.sh')).map((f) => f.slice(0, -3)) : [];
}

/** Scenario names on disk, sorted by name. */
export function scenarioNames(): string[] {
  const js = existsSync(scenarioDir) ? readdirSync(scenarioDir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)) : [];
  return [...new Set([...js, ...shellNames()])].sort();
}

/**
 * A shell scenario: `bash <name>.sh` in dom0, cwd a scratch dir, with XVBD_REPO (the repo, read-only),
 * XVBD_TMP (the scratch dir, tmpfs), XVBD (the CLI: "node <repo>/dist/src/cli/main.js") in its
 * environment. Its first comment line is its description; it passes when it exits 0.
 */
function shellScenario(name: string): XenScenario {
  const file = join(shellScenarioDir, `${name}.sh`);
  const text = readFileSync(file, 'utf8');
  const m = /^#(?!!)\s*(.+)$/m.exec(text);
  return {
    description: m ? m[1]!.trim() : `${name}.sh`,
    optIn: /^# xen-suite: opt-in\b/m.test(text),
    async xen(t) {
      await t.test(`${name}.sh exits 0`, async () => {
        const { code, out } = await new Promise<{ code: number | null; out: string }>((res) => {
          const p = spawn('bash', [file], {
            cwd: t.tmpDir,
            env: { ...process.env, XVBD_REPO: t.repoRoot, XVBD_TMP: t.tmpDir, XVBD: `${process.execPath} ${join(t.repoRoot, 'dist/src/cli/main.js')}` },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let out = '';
          p.stdout.on('data', (d: Buffer) => (out += d.toString()));
          p.stderr.on('data', (d: Buffer) => (out += d.toString()));
          p.on('close', (c) => res({ code: c, out }));
        });
        t.log(out.replace(/\n$/, ''));
        if (code !== 0) throw new Error(`${name}.sh exit ${code}; last lines:\n${out.split('\n').slice(-40).join('\n')}`);
      }, { timeoutMs: 280_000 });
    },
  };
}

/**
 * Loads the scenarios, restricted to `only` when given (unknown names are an error); without `only`,
 * opt-in scenarios are left out unless `all`.
 */
export async function loadScenarios(only: string[] = [], all = false): Promise<NamedScenario[]> {
  const names = scenarioNames();
  const unknown = only.filter((n) => !names.includes(n));
  if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(', ')} (have: ${names.join(', ')})`);
  const out: NamedScenario[] = [];
  const shells = shellNames();
  for (const name of names) {
    if (only.length > 0 && !only.includes(name)) continue;
    if (shells.includes(name)) {
      if (existsSync(join(scenarioDir, `${name}.js`))) throw new Error(`scenario ${name}: both ${name}.ts and ${name}.sh exist`);
      out.push({ name, scenario: shellScenario(name) });
      continue;
    }
    const mod = (await import(pathToFileURL(join(scenarioDir, `${name}.js`)).href)) as { scenario?: XenScenario };
    if (!mod.scenario || (typeof mod.scenario.xen !== 'function' && typeof mod.scenario.host !== 'function')) {
      throw new Error(`test/xen/scenarios/${name}.ts must export \`scenario: XenScenario\` with a xen and/or host part`);
    }
    out.push({ name, scenario: mod.scenario });
  }
  return out.filter((s) => only.length > 0 || all || !s.scenario.optIn).sort((a, b) => (a.scenario.order ?? 50) - (b.scenario.order ?? 50) || a.name.localeCompare(b.name));
}

/** "--only a,b --only c" -> [a, b, c] */
export function splitOnly(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}
