// prom-client helpers for values that already live in counters elsewhere
// (Relay.counters, RegistryService.counters...): the metric reads them at
// scrape time instead of every hot path calling into prom-client.
import { Counter, Gauge, type Registry } from 'prom-client';

type Labels = Record<string, string>;

/**
 * A Prometheus counter mirroring monotonic values read at scrape time. Each
 * scrape adds only the growth since the previous one, so the series stays a
 * true counter (never decreases) even if the source is recreated.
 */
export function mirrorCounter(reg: Registry, name: string, help: string, labelNames: string[], read: () => [Labels, number][]): Counter<string> {
  const last = new Map<string, number>();
  return new Counter({
    name,
    help,
    labelNames,
    registers: [reg],
    collect() {
      for (const [labels, value] of read()) {
        const k = JSON.stringify(labels);
        const was = last.get(k);
        last.set(k, value);
        const grow = was === undefined || value < was ? value : value - was;
        this.inc(labels, grow);
      }
    },
  });
}

/** A Prometheus gauge set from `read` at scrape time (labels absent from a read are reset). */
export function mirrorGauge(reg: Registry, name: string, help: string, labelNames: string[], read: () => [Labels, number][]): Gauge<string> {
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [reg],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}
