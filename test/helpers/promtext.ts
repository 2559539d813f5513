// A strict parser of the Prometheus text exposition format (version 0.0.4, what node_exporter's
// textfile collector reads), for the tests of the daemon's metrics file. It refuses anything the format
// does not allow or that the collector would reject: a sample before its TYPE, a family split in two,
// a HELP or TYPE twice, a duplicate series, bad names, bad escapes, bad numbers, a missing final newline.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help?: string;
  samples: Sample[];
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s: string, where: string): number {
  if (s === 'NaN') return NaN;
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!/^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$/.test(s)) throw new Error(`${where}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

/** Parses `{a="x",b="y"}` starting at i (at the `{`); returns the labels and the index after `}`. */
function parseLabels(line: string, i: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  i++; // {
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
    if (!m) throw new Error(`${where}: bad label name at column ${i + 1}`);
    const name = m[0];
    i += name.length;
    if (line[i] !== '=' || line[i + 1] !== '"') throw new Error(`${where}: expected ="`);
    i += 2;
    let v = '';
    for (;;) {
      const c = line[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const n = line[i + 1];
        if (n === '\\') v += '\\';
        else if (n === '"') v += '"';
        else if (n === 'n') v += '\n';
        else throw new Error(`${where}: bad escape \\${n ?? ''}`);
        i += 2;
        continue;
      }
      v += c;
      i++;
    }
    i++; // closing quote
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label ${name} twice`);
    if (!LABEL.test(name) || name.startsWith('__')) throw new Error(`${where}: reserved or bad label name ${name}`);
    labels[name] = v;
    if (line[i] === ',') {
      i++;
      if (line[i] === '}') return { labels, end: i + 1 };
      continue;
    }
    if (line[i] === '}') return { labels, end: i + 1 };
    throw new Error(`${where}: expected , or }`);
  }
}

export function parsePromText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the text does not end with a newline');
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current: string | undefined;
  const open = (name: string, where: string): Family => {
    if (closed.has(name)) throw new Error(`${where}: family ${name} appears again after another family`);
    if (current !== undefined && current !== name) closed.add(current);
    current = name;
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', samples: [] }));
    return f;
  };
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (line === '') throw new Error(`${where}: empty line`);
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) return; // a plain comment
      const [, what, name, rest] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      const f = open(name, where);
      if (what === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
        if (/\\(?![\\n])/.test(rest ?? '')) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest ?? '';
      } else {
        if (f.samples.length) throw new Error(`${where}: TYPE for ${name} after its samples`);
        if ((f as { typed?: boolean }).typed) throw new Error(`${where}: second TYPE for ${name}`);
        if (!TYPES.has(rest ?? '')) throw new Error(`${where}: bad type ${rest ?? ''}`);
        f.type = rest as Family['type'];
        (f as { typed?: boolean }).typed = true;
      }
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nm) throw new Error(`${where}: bad sample line`);
    const name = nm[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i, where));
    if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`);
    const rest = line.slice(i + 1).split(' ');
    if (rest.length < 1 || rest.length > 2 || rest.some((x) => x === '')) throw new Error(`${where}: bad value/timestamp`);
    const value = parseValue(rest[0]!, where);
    if (rest[1] !== undefined && !/^-?[0-9]+$/.test(rest[1])) throw new Error(`${where}: bad timestamp`);
    // counters and gauges: the sample is the family itself (histogram/summary suffixes are not used here)
    const f = open(name, where);
    if (f.type === 'untyped' && !(f as { typed?: boolean }).typed) throw new Error(`${where}: sample of ${name} before its TYPE`);
    if (f.type === 'counter' && (value < 0 || Number.isNaN(value))) throw new Error(`${where}: a counter must not be negative`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: duplicate series ${key}`);
    series.add(key);
    f.samples.push({ name, labels, value });
  });
  return families;
}

/** The value of one series (labels exactly), or undefined. */
export function sampleValue(fams: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return fams.get(name)?.samples.find((s) => JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}
