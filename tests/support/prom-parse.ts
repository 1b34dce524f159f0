// A strict parser for the Prometheus text exposition format (0.0.4), written from the spec
// (prometheus.io "Exposition formats", text format details) to check what the project writes. Stricter
// than Prometheus where the project promises more: every family has HELP and TYPE before its samples,
// samples of a family are contiguous, no duplicate series, no timestamps (node_exporter's textfile
// collector refuses them), only counter/gauge/untyped (the project writes no histograms).
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const VALUE = /^(NaN|[+-]Inf|[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)$/;

export interface ParsedSample {
  labels: Record<string, string>;
  value: number;
}
export interface ParsedFamily {
  name: string;
  help: string;
  type: string;
  samples: ParsedSample[];
}

export class PromParseError extends Error {
  constructor(line: number, detail: string) {
    super(`line ${line}: ${detail}`);
  }
}

function unescapeHelp(s: string, line: number): string {
  return s.replace(/\\(.?)/g, (_m, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new PromParseError(line, `bad escape \\${c} in HELP`);
  });
}

/** Parses `{a="x",b="y"}` starting at s[i] === '{'; returns the labels and the index after '}'. */
function parseLabels(
  s: string,
  i: number,
  line: number,
): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  i++;
  for (;;) {
    if (s[i] === '}') return { labels, end: i + 1 };
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new PromParseError(line, 'label without =');
    const name = s.slice(i, eq);
    if (!LABEL_NAME.test(name) || name.startsWith('__'))
      throw new PromParseError(line, `bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new PromParseError(line, `label ${name} twice`);
    if (s[eq + 1] !== '"') throw new PromParseError(line, `label ${name}: value not quoted`);
    let j = eq + 2;
    let v = '';
    for (;;) {
      const c = s[j];
      if (c === undefined) throw new PromParseError(line, `label ${name}: unterminated value`);
      if (c === '"') break;
      if (c === '\\') {
        const n = s[j + 1];
        if (n === '\\') v += '\\';
        else if (n === '"') v += '"';
        else if (n === 'n') v += '\n';
        else throw new PromParseError(line, `label ${name}: bad escape \\${n ?? ''}`);
        j += 2;
        continue;
      }
      v += c;
      j++;
    }
    labels[name] = v;
    i = j + 1;
    if (s[i] === ',') i++;
    else if (s[i] !== '}')
      throw new PromParseError(line, `label ${name}: expected , or } after the value`);
  }
}

export function parsePrometheusText(text: string): Map<string, ParsedFamily> {
  if (text.length > 0 && !text.endsWith('\n'))
    throw new PromParseError(0, 'the last line must end with a line feed');
  const families = new Map<string, ParsedFamily>();
  const closed = new Set<string>();
  let currentSamples: string | null = null;
  const lines = text.split('\n');
  lines.pop();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, help: '', type: '', samples: [] }));
    return f;
  };
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw);
      if (!m) return; // a plain comment
      const [, kw, name, rest] = m;
      if (!METRIC_NAME.test(name!))
        throw new PromParseError(n, `bad metric name ${JSON.stringify(name)}`);
      if (closed.has(name!) || currentSamples === name)
        throw new PromParseError(n, `${kw} for ${name} after its samples`);
      const f = family(name!);
      if (kw === 'HELP') {
        if (f.help) throw new PromParseError(n, `second HELP for ${name}`);
        f.help = unescapeHelp(rest ?? '', n) || ' ';
      } else {
        if (f.type) throw new PromParseError(n, `second TYPE for ${name}`);
        if (!['counter', 'gauge', 'untyped'].includes(rest ?? ''))
          throw new PromParseError(n, `unexpected type ${JSON.stringify(rest)}`);
        f.type = rest!;
      }
      return;
    }
    const nameEnd = raw.search(/[{ ]/);
    if (nameEnd <= 0) throw new PromParseError(n, 'sample without value');
    const name = raw.slice(0, nameEnd);
    if (!METRIC_NAME.test(name))
      throw new PromParseError(n, `bad metric name ${JSON.stringify(name)}`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (raw[i] === '{') ({ labels, end: i } = parseLabels(raw, i, n));
    if (raw[i] !== ' ') throw new PromParseError(n, 'expected a space before the value');
    const tokens = raw.slice(i + 1).split(' ');
    if (tokens.length !== 1)
      throw new PromParseError(
        n,
        `expected exactly one value (no timestamp), got ${JSON.stringify(tokens)}`,
      );
    if (!VALUE.test(tokens[0]!))
      throw new PromParseError(n, `bad value ${JSON.stringify(tokens[0])}`);
    const f = families.get(name);
    if (!f || !f.type || !f.help)
      throw new PromParseError(n, `sample of ${name} without HELP and TYPE before it`);
    if (closed.has(name)) throw new PromParseError(n, `samples of ${name} are not contiguous`);
    if (currentSamples !== null && currentSamples !== name) closed.add(currentSamples);
    currentSamples = name;
    const key = JSON.stringify(Object.entries(labels).sort());
    if (f.samples.some((s) => JSON.stringify(Object.entries(s.labels).sort()) === key))
      throw new PromParseError(n, `duplicate series ${name}${key}`);
    const t = tokens[0]!;
    f.samples.push({
      labels,
      value: t === 'NaN' ? NaN : t === '+Inf' ? Infinity : t === '-Inf' ? -Infinity : Number(t),
    });
  });
  for (const f of families.values())
    if (!f.type || !f.help) throw new PromParseError(0, `family ${f.name} lacks HELP or TYPE`);
  return families;
}

/** The value of the one sample of `name` whose labels include `labels`; throws when not exactly one. */
export function sampleValue(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const f = families.get(name);
  if (!f) throw new Error(`no metric ${name}`);
  const hits = f.samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length !== 1)
    throw new Error(`${name}${JSON.stringify(labels)}: ${hits.length} samples`);
  return hits[0]!.value;
}
