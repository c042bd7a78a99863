// Strict reader of the Prometheus text exposition format (0.0.4), enough to
// prove /metrics is well-formed and to read values by name and labels. NaN is
// accepted in any case: Prometheus parses floats so, and prom-client writes "Nan".
import assert from 'node:assert/strict';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|[Nn][Aa][Nn]|[+-]Inf))(?: \d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"/g;

export function parsePromText(text: string): Sample[] {
  const out: Sample[] = [];
  const typed = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) {
      assert.ok(!typed.has(t[1]!), `metric ${t[1]} typed twice`);
      typed.set(t[1]!, t[2]!);
      continue;
    }
    const m = SAMPLE.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!;
    const base = m[1]!.replace(/_(bucket|sum|count|total|created)$/, '');
    assert.ok(typed.has(m[1]!) || typed.has(base), `sample ${m[1]} has no # TYPE line`);
    out.push({ name: m[1]!, labels, value: /nan/i.test(m[3]!) ? NaN : Number(m[3]) });
  }
  return out;
}

/** The value of the one sample with this name whose labels include `labels`. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(hits.length, 1, `expected one ${name}${JSON.stringify(labels)}, found ${hits.length}`);
  return hits[0]!.value;
}
