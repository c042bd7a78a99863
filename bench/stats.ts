// Small helpers shared by the benchmarks: percentiles, process RSS/CPU from /proc,
// and the machine line every report starts with.
import fs from 'node:fs';
import os from 'node:os';

export interface Summary {
  n: number;
  avg: number;
  p50: number;
  p99: number;
  min: number;
}

export function summarize(v: number[]): Summary {
  const s = [...v].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  return { n: v.length, avg: v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN, p50: q(0.5), p99: q(0.99), min: s[0] ?? NaN };
}

/** "p50 0.061 / p99 0.180 / avg 0.072 ms" */
export function fmtMs(s: Summary): string {
  return `p50 ${s.p50.toFixed(3)} / p99 ${s.p99.toFixed(3)} / avg ${s.avg.toFixed(3)} ms`;
}

/** Resident set size of a process, in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** CPU seconds (user + system) a process used so far. */
export function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks (USER_HZ = 100)
}

export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}, load ${os.loadavg()[0]!.toFixed(1)}`;
}

export const MiB = 1024 * 1024;

/** Wait for a condition (polled), rejecting after `ms`. */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
