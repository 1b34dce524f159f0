// A tiny writer for the Prometheus text exposition format (version 0.0.4), used by the agent's
// node_exporter textfile and the control plane's /metrics. Written here rather than taken from
// prom-client: the agent is a short-lived process whose start-up cost is tracked (docs/benchmarks.md),
// it needs a dozen gauges written once per run, not a registry, default process collectors or timers.
//
// Format rules this follows (prometheus.io, "Exposition formats", text format details):
// - one `# HELP name text` and one `# TYPE name type` per metric family, before its samples, and all
//   samples of a family together; HELP text escapes `\` and line feed;
// - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and not `__*`;
// - label values are quoted, escaping `\`, `"` and line feed (a host name or a refusal reason comes
//   from outside and must never break a line or a quote);
// - values are Go floats: NaN, +Inf, -Inf or a decimal; no timestamps (the textfile collector refuses them);
// - lines end in LF, the last one too.

export type MetricType = 'counter' | 'gauge' | 'untyped';

export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A metric or label name the format cannot carry: a programming error, named. */
export class InvalidMetric extends Error {
  constructor(
    readonly metric: string,
    detail: string,
  ) {
    super(`metric ${JSON.stringify(metric)}: ${detail}`);
    this.name = 'InvalidMetric';
  }
}

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(family: string, labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  for (const [k] of entries) {
    if (!LABEL_NAME.test(k) || k.startsWith('__'))
      throw new InvalidMetric(family, `label name ${JSON.stringify(k)} is not allowed`);
  }
  return `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

/** The families as exposition text. Family names must be unique. */
export function renderMetrics(families: readonly MetricFamily[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const f of families) {
    if (!METRIC_NAME.test(f.name)) throw new InvalidMetric(f.name, 'not a valid metric name');
    if (seen.has(f.name)) throw new InvalidMetric(f.name, 'family listed twice');
    seen.add(f.name);
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples)
      out.push(`${f.name}${formatLabels(f.name, s.labels)} ${formatValue(s.value)}`);
  }
  return out.length ? out.join('\n') + '\n' : '';
}

/** Content-Type of the text format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** An "enum" family: one sample per state, 1 for the current one, 0 for the others (the usual idiom). */
export function stateSamples(
  states: readonly string[],
  current: string | null,
  label = 'state',
  extra: Record<string, string> = {},
): Sample[] {
  return states.map((s) => ({ labels: { ...extra, [label]: s }, value: s === current ? 1 : 0 }));
}
