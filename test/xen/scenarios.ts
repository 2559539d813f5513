// Scenario discovery: every compiled test/xen/scenarios/<name>.js exporting `scenario` (see framework.ts).
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { XenScenario } from './framework.js';

export interface NamedScenario {
  name: string;
  scenario: XenScenario;
}

export const scenarioDir = join(dirname(fileURLToPath(import.meta.url)), 'scenarios');

/** Scenario names on disk, sorted by name. */
export function scenarioNames(): string[] {
  return readdirSync(scenarioDir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .sort();
}

/** Loads the scenarios, restricted to `only` when given; unknown names are an error. */
export async function loadScenarios(only: string[] = []): Promise<NamedScenario[]> {
  const names = scenarioNames();
  const unknown = only.filter((n) => !names.includes(n));
  if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(', ')} (have: ${names.join(', ')})`);
  const out: NamedScenario[] = [];
  for (const name of names) {
    if (only.length > 0 && !only.includes(name)) continue;
    const mod = (await import(pathToFileURL(join(scenarioDir, `${name}.js`)).href)) as { scenario?: XenScenario };
    if (!mod.scenario || (typeof mod.scenario.xen !== 'function' && typeof mod.scenario.host !== 'function')) {
      throw new Error(`test/xen/scenarios/${name}.ts must export \`scenario: XenScenario\` with a xen and/or host part`);
    }
    out.push({ name, scenario: mod.scenario });
  }
  return out.sort((a, b) => (a.scenario.order ?? 50) - (b.scenario.order ?? 50) || a.name.localeCompare(b.name));
}

/** "--only a,b --only c" -> [a, b, c] */
export function splitOnly(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}
