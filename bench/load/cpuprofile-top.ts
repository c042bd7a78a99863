// Reads a V8 .cpuprofile (node --cpu-prof) and lists where the time went:
// self time per function, heaviest first, as a Markdown table.
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export function topSelfTime(file: string, limit = 20): string {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  prof.samples.forEach((id, i) => {
    const dt = prof.timeDeltas[i] ?? 0;
    total += dt;
    const f = byId.get(id)?.callFrame;
    if (!f) return;
    const where = f.url ? `${path.basename(f.url.replace(/^file:\/\//, ''))}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, limit);
  const pct = (us: number) => `${((us / total) * 100).toFixed(1)}%`;
  return [
    `${path.basename(file)}: ${(total / 1e6).toFixed(1)} s sampled`,
    '',
    '| self time | share | function |',
    '|---|---|---|',
    ...rows.map(([k, us]) => `| ${(us / 1e6).toFixed(2)} s | ${pct(us)} | \`${k}\` |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of process.argv.slice(2)) console.log(topSelfTime(f, 30), '\n');
}
