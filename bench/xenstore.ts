// `npm run bench -- xenstore [--json] [--n N] [--forks N]`: xvbd's client round trips per
// second against the simulator (run as its own process, `xvbd sim`), sequential and pipelined
// reads and writes, side by side with the real `xenstore-read` forked once per call.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from '../src/xenstore/client.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

async function startSim(sock: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [MAIN, 'sim', '--socket', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
  if (!existsSync(sock)) {
    child.kill('SIGTERM');
    throw new Error('the simulator did not start');
  }
  return child;
}

function rate(n: number, ns: bigint): number {
  return n / (Number(ns) / 1e9);
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, path: { type: 'string' }, n: { type: 'string' }, forks: { type: 'string' }, depth: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    process.stdout.write('usage: npm run bench -- xenstore [--json] [--path SOCKET (an existing xenstored instead of a fresh simulator)] [--n 20000] [--forks 300] [--depth 64]\n');
    return 0;
  }
  const n = Number(values.n ?? 20000);
  const forks = Number(values.forks ?? 300);
  const depth = Number(values.depth ?? 64);
  const dir = mkdtempSync(join(tmpdir(), 'xvbd-bench-xs-'));
  const sock = values.path ?? join(dir, 'xs.sock');
  const sim = values.path === undefined ? await startSim(sock) : undefined;
  try {
    const c = await connect({ path: sock });
    const base = '/bench/xenstore';
    for (let i = 0; i < 100; i++) await c.write(`${base}/k${i}`, `value-${i}`);
    // warm-up
    for (let i = 0; i < Math.min(2000, Math.ceil(n / 5)); i++) await c.read(`${base}/k${i % 100}`);

    let t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await c.read(`${base}/k${i % 100}`);
    const seqRead = rate(n, process.hrtime.bigint() - t);

    t = process.hrtime.bigint();
    for (let i = 0; i < n; i += depth) {
      await Promise.all(Array.from({ length: Math.min(depth, n - i) }, (_, j) => c.read(`${base}/k${(i + j) % 100}`)));
    }
    const pipeRead = rate(n, process.hrtime.bigint() - t);

    t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await c.write(`${base}/w${i % 100}`, `v${i}`);
    const seqWrite = rate(n, process.hrtime.bigint() - t);

    t = process.hrtime.bigint();
    for (let i = 0; i < n; i += depth) {
      await Promise.all(Array.from({ length: Math.min(depth, n - i) }, (_, j) => c.write(`${base}/w${(i + j) % 100}`, `v${i + j}`)));
    }
    const pipeWrite = rate(n, process.hrtime.bigint() - t);

    const txN = Math.max(100, Math.floor(n / 20));
    t = process.hrtime.bigint();
    for (let i = 0; i < txN; i++) {
      await c.transaction(async (tx) => {
        await tx.read(`${base}/k${i % 100}`);
        await tx.write(`${base}/t${i % 100}`, String(i));
      });
    }
    const txRate = rate(txN, process.hrtime.bigint() - t);

    const env = { ...process.env, XENSTORED_PATH: sock };
    t = process.hrtime.bigint();
    for (let i = 0; i < forks; i++) {
      const r = spawnSync('xenstore-read', [`${base}/k${i % 100}`], { env, encoding: 'utf8' });
      if (r.status !== 0 || r.stdout !== `value-${i % 100}\n`) throw new Error(`xenstore-read failed: ${r.stderr}`);
    }
    const forkRead = rate(forks, process.hrtime.bigint() - t);
    await c.rm('/bench');
    await c.close();

    const result = {
      bench: 'xenstore',
      target: values.path === undefined ? 'xvbd sim (separate process, unix socket)' : values.path,
      n,
      pipelineDepth: depth,
      clientSequentialReadsPerSec: Math.round(seqRead),
      clientPipelinedReadsPerSec: Math.round(pipeRead),
      clientSequentialWritesPerSec: Math.round(seqWrite),
      clientPipelinedWritesPerSec: Math.round(pipeWrite),
      clientTransactionsPerSec: Math.round(txRate),
      xenstoreReadForkPerSec: Math.round(forkRead),
      ratioSequentialReadVsFork: Number((seqRead / forkRead).toFixed(1)),
      ratioPipelinedReadVsFork: Number((pipeRead / forkRead).toFixed(1)),
    };
    if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
    else {
      const row = (k: string, v: number, extra = '') => `  ${k.padEnd(44)} ${String(v).padStart(9)} /s${extra}`;
      process.stdout.write(
        [
          `xenstore round trips against ${result.target}`,
          row('client read, sequential (await each)', result.clientSequentialReadsPerSec, `   x${result.ratioSequentialReadVsFork} vs fork`),
          row(`client read, pipelined (depth ${depth})`, result.clientPipelinedReadsPerSec, `   x${result.ratioPipelinedReadVsFork} vs fork`),
          row('client write, sequential', result.clientSequentialWritesPerSec),
          row(`client write, pipelined (depth ${depth})`, result.clientPipelinedWritesPerSec),
          row('client transaction (read + write + commit)', result.clientTransactionsPerSec),
          row('xenstore-read, forked per call', result.xenstoreReadForkPerSec),
        ].join('\n') + '\n',
      );
    }
    return 0;
  } finally {
    if (sim) {
      sim.kill('SIGTERM');
      await new Promise((r) => sim.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
