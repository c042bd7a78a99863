// Roaming back to direct (issue 19): a host moves to a new NAT mid-stream, 10
// times as the stream's sender and 10 times as its receiver, in one NAT lab (the
// mover walks between three cone routers; the fixed peer sits behind a
// port-restricted cone NAT). Prints each trial, then direct-again counts and
// time to direct (p50/max). Needs root (network namespaces); prints why and exits 0 otherwise.
//   node bench/roaming.bench.ts [trials per mover, default 10]
import { natLabSupport } from '../test/helpers/natlab.ts';
import { RoamTrials, summary } from '../test/nat/roam-trials.ts';

const support = natLabSupport();
if (!support.ok) {
  console.log(`roaming bench skipped: ${support.reason}`);
  process.exit(0);
}
const n = Number(process.argv[2] ?? 10);
const t = new RoamTrials({ log: (l) => console.log(l) });
try {
  await t.start();
  const rows: string[] = [];
  for (const mover of ['sender', 'receiver'] as const) {
    const trials = await t.run(mover, n);
    for (const x of trials) if (x.detail && process.env.ROAM_VERBOSE) console.log(x.detail);
    const d = summary(trials.map((x) => x.directMs));
    const r = summary(trials.map((x) => x.relayMs));
    rows.push(`| ${mover} | ${d.ok}/${d.n} | ${d.p50 ?? '-'} ms | ${d.max ?? '-'} ms | ${r.p50 ?? '-'} ms | ${trials.filter((x) => x.intact).length}/${n} |`);
  }
  console.log('\n| mover | direct again | time to direct p50 | max | fixed side on the relay p50 | streams intact |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
} finally {
  await t.stop();
}
process.exit(0);
