import { readFileSync } from 'node:fs';

// The metrics file as Prometheus reads it: parse-prometheus-text-format is a port of
// Prometheus' own text parser (expfmt), so what it accepts and how it unescapes is what a
// scrape would see. A malformed file throws.

// eslint-disable-next-line @typescript-eslint/no-require-imports
const parsePrometheusTextFormat = require('parse-prometheus-text-format') as (text: string) => ParsedFamily[];

export interface ParsedFamily {
  name: string;
  help: string;
  type: 'GAUGE' | 'COUNTER' | 'SUMMARY' | 'HISTOGRAM' | 'UNTYPED';
  metrics: Array<{ value: string; labels?: Record<string, string> }>;
}

export function parseMetricsFile(path: string): Map<string, ParsedFamily> {
  const families = parsePrometheusTextFormat(readFileSync(path, 'utf8'));
  return new Map(families.map((f) => [f.name, f]));
}

/** The value of the one sample of `name` whose labels are exactly `labels`; undefined when none. */
export function sampleValue(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.get(name);
  const wanted = JSON.stringify(Object.entries(labels).sort());
  const found = family?.metrics.filter((m) => JSON.stringify(Object.entries(m.labels ?? {}).sort()) === wanted) ?? [];
  if (found.length > 1) throw new Error(`${name}${wanted}: ${found.length} samples with the same labels`);
  return found[0] === undefined ? undefined : Number(found[0].value);
}
