// Usage errors of every command, through the real binary: exit 2, one line in xvbd's words naming the
// option (with a suggestion when one is close) and pointing at the command's --help; Node's own parser
// wording never shows. Also: unknown commands, `xvbd version`, `--version`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');

function xvbd(...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, XVBD_RUN_DIR: '/nonexistent/xvbd-usage-test', XENSTORED_PATH: '/nonexistent/xvbd-usage-test.sock' };
  delete env.XVBD_CONFIG;
  return spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', env, timeout: 20_000 });
}

/** One line on stderr, nothing on stdout, no usage text, no parseArgs wording, no stack. */
function oneLine(r: ReturnType<typeof xvbd>, what: string): string {
  assert.equal(r.status, 2, `${what}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  assert.equal(r.stdout, '', what);
  assert.equal(r.stderr.split('\n').length, 2, `${what}: one line:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Usage:|ERR_PARSE_ARGS|argument is ambiguous|To specify|positional|\n\s+at /, what);
  return r.stderr;
}

const COMMANDS = ['plan', 'apply', 'show', 'status', 'reconcile', 'tui', 'validate', 'sim', 'keeper', 'demo'];

test('an unknown option is a usage error for every command: exit 2, the option named, see --help', () => {
  for (const cmd of COMMANDS) {
    const err = oneLine(xvbd(cmd, '--bogus'), cmd);
    assert.equal(err, `xvbd ${cmd}: unknown option --bogus; see \`xvbd ${cmd} --help\`\n`, cmd);
  }
  for (const sub of ['install', 'server']) {
    assert.equal(oneLine(xvbd('hook', sub, '--bogus'), sub), 'xvbd hook: unknown option --bogus; see `xvbd hook --help`\n');
  }
  // a close one is suggested
  assert.match(oneLine(xvbd('plan', '--detailed-exitcodes'), 'plan'), /unknown option --detailed-exitcodes \(did you mean --detailed-exitcode\?\)/);
  assert.match(oneLine(xvbd('status', '--jsno'), 'status'), /\(did you mean --json\?\)/);
  assert.match(oneLine(xvbd('validate', '-x'), 'validate'), /^xvbd validate: unknown option -x; see/);
  assert.match(oneLine(xvbd('plan', 'extra'), 'positional'), /^xvbd plan: unexpected argument extra \(xvbd plan takes options only\); see/);
});

test('bad option values: exit 2, said in a sentence, never parseArgs wording', () => {
  // a value starting with a dash is the value, judged by the command
  assert.equal(oneLine(xvbd('reconcile', '--resync', '-5'), 'resync'), 'xvbd reconcile: --resync must be a whole number from 0 to 86400, not "-5"; see `xvbd reconcile --help`\n');
  assert.match(oneLine(xvbd('reconcile', '--debounce', 'soon'), 'debounce'), /--debounce must be a whole number/);
  assert.equal(oneLine(xvbd('reconcile', '--resync'), 'missing'), 'xvbd reconcile: --resync needs a value; see `xvbd reconcile --help`\n');
  for (const cmd of ['plan', 'status', 'validate', 'apply', 'reconcile', 'tui']) {
    assert.equal(oneLine(xvbd(cmd, '--config='), cmd), `xvbd ${cmd}: --config needs a value, and it is empty; see \`xvbd ${cmd} --help\`\n`);
  }
  assert.match(oneLine(xvbd('plan', '--config', '--json'), 'followed'), /--config needs a value, but --json follows it/);
  assert.match(oneLine(xvbd('plan', '--json=yes'), 'flag value'), /--json takes no value/);
  assert.match(oneLine(xvbd('tui', '--interval', 'x'), 'interval'), /--interval: expected seconds/);
  assert.match(oneLine(xvbd('sim', '--domain', 'a b'), 'domain'), /invalid --domain "a b"/);
  assert.match(oneLine(xvbd('keeper', '--slot', 'c'), 'slot'), /--slot takes a or b/);
  assert.match(oneLine(xvbd('hook', 'server', '--ready-fd', '1'), 'ready-fd'), /--ready-fd must be an fd number >= 3/);
});

test('unknown commands get a suggestion; no command is a usage error', () => {
  assert.equal(oneLine(xvbd('plna'), 'plna'), 'xvbd: unknown command "plna" (did you mean plan?); see `xvbd --help`\n');
  assert.match(oneLine(xvbd('stat'), 'stat'), /unknown command "stat" \(did you mean status\?\)/);
  assert.match(oneLine(xvbd('reconcil'), 'reconcil'), /\(did you mean reconcile\?\)/);
  assert.equal(oneLine(xvbd('frobnicate'), 'frob'), 'xvbd: unknown command "frobnicate"; see `xvbd --help`\n');
  assert.match(oneLine(xvbd('hook', 'instal'), 'hook instal'), /unknown subcommand "instal" \(did you mean install\?\)/);
  assert.match(oneLine(xvbd('hook'), 'hook'), /xvbd hook add\|remove\|install\|server/);
  const none = xvbd();
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^xvbd: a declarative reconciler/);
});

test('xvbd version and --version print the package version', () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const a of ['version', '--version', '-V']) {
    const r = xvbd(a);
    assert.equal(r.status, 0, a);
    assert.equal(r.stdout, `xvbd ${version}\n`, a);
  }
  oneLine(xvbd('version', 'x'), 'version x');
  assert.match(xvbd('--help').stdout, /^ {2}version +print the version/m);
});

test('--help of every command (and hook install/server): exit 0, the exit codes named, no literal \\n', () => {
  for (const args of [...COMMANDS.map((c) => [c, '--help']), ['hook', '--help'], ['hook', 'install', '--help'], ['hook', 'server', '-h'], ['--help']]) {
    const r = xvbd(...args);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: xvbd/, args.join(' '));
    assert.match(r.stdout, /Exit status/, `${args.join(' ')} documents its exit status`);
    assert.doesNotMatch(r.stdout, /\\n/, `${args.join(' ')}: a literal \\n`);
    assert.equal(r.stderr, '');
  }
  // --help wins over a bad option next to it
  assert.equal(xvbd('plan', '--bogus', '--help').status, 0);
});

test("Terraform's single-dash long options: -out=FILE, -target X are --out, --target; -x alone is still a short option", async () => {
  const { checkArgv } = await import('../../src/cli/args.js');
  const opts = { out: { type: 'string' }, target: { type: 'string', multiple: true }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;
  assert.deepEqual(checkArgv('plan', ['-out=p.plan', '-target', 'web1', '-json', '-target=db/xvda'], opts, false), ['--out=p.plan', '--target=web1', '--json', '--target=db/xvda']);
  assert.throws(() => checkArgv('plan', ['-outt', 'x'], opts, false), /unknown option -o \(in -outt\)/);
  assert.throws(() => checkArgv('plan', ['-out'], opts, false), /--out needs a value/);
  // through the binary: show and apply take the same forms
  const r = oneLine(xvbd('apply', '-target'), 'apply -target');
  assert.match(r, /--target needs a value; see `xvbd apply --help`/);
  const s = xvbd('show', '-json');
  assert.equal(s.status, 2);
  assert.match(s.stderr, /^xvbd show: name the saved plan: xvbd show FILE; see `xvbd show --help`/);
});
