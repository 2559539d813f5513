// `npm run bench -- <name> [--json] [options]`: each benchmark prints its figures side by side
// with the alternative, measured in one run. Benchmarks live in bench/<name>.ts and export run().
interface BenchEntry {
  name: string;
  summary: string;
  load(): Promise<{ run(argv: string[]): Promise<number> }>;
}

// Each benchmark adds its own line here when it lands.
const BENCHES: BenchEntry[] = [
  { name: 'loops', summary: 'loop attach: xvbd registry vs losetup -f vs bare ioctls, and listLoops() at N devices', load: () => import('./loops.js') },
  { name: 'xenstore', summary: 'xenstore client round trips/s vs the simulator: sequential, pipelined, transactions; vs forked xenstore-read', load: () => import('./xenstore.js') },
  { name: 'observe', summary: 'observe() at 1,000 backends: one transaction vs plain reads, quiet and under churn; plan on it', load: () => import('./observe.js') },
  { name: 'hook', summary: "domain start through libxl's hotplug scripts: block script vs xvbd hook (no daemon, daemon) vs node -e 0, N = 1, 8, 32", load: () => import('./hook.js') },
  { name: 'daemon', summary: 'reconcile --watch at D domains x N disks: first converge, no-op pass, edit to converged, RSS; vs no observation cache', load: () => import('./daemon.js') },
  { name: 'attach', summary: 'per-disk attach: xvbd executor vs the Xen block script on the simulator; no-op plan at 1,000 disks', load: () => import('./attach.js') },
];

const [name, ...rest] = process.argv.slice(2);
const entry = BENCHES.find((b) => b.name === name);
if (!entry) {
  process.stderr.write(
    `usage: npm run bench -- <name> [--json]\n\n${BENCHES.map((b) => `  ${b.name.padEnd(10)} ${b.summary}`).join('\n')}\n`,
  );
  process.exit(name === undefined ? 0 : 2);
}
process.exitCode = await (await entry.load()).run(rest);
