// The NAT lab as a benchmark: every pair of {public, cone, symmetric, double NAT,
// same LAN, UDP blocked} through real netfilter NAT in network namespaces; path
// chosen, cold time to first byte, ping RTT and 10 MiB echo time per pair.
// Needs root (network namespaces); prints why and exits 0 otherwise.
import { natLabSupport } from '../test/helpers/natlab.ts';
import { formatGrid, runMatrix } from '../test/nat/matrix.ts';

const support = natLabSupport();
if (!support.ok) {
  console.log(`NAT matrix skipped: ${support.reason}`);
  process.exit(0);
}
const m = await runMatrix({ concurrency: 2, pairTimeoutMs: 60_000 });
console.log(formatGrid(m).replace(/^# ?/gm, ''));
console.log('');
console.log('| pair | path | first byte | ping avg | 10 MiB echo | MB/s (both ways) |');
console.log('|---|---|---|---|---|---|');
for (const r of m.results) {
  const mbps = r.ok && r.streamSeconds ? ((2 * (r.bytes ?? 0)) / r.streamSeconds / 1e6).toFixed(1) : '-';
  console.log(
    `| ${r.a} x ${r.b} | ${r.ok ? r.pathA : `FAIL(${r.failedAt})`} | ${r.firstByteMs ?? '-'} ms | ${r.pingAvgMs ?? '-'} ms | ${r.streamSeconds?.toFixed(2) ?? '-'} s | ${mbps} |`,
  );
}
console.log(`\n${m.results.length} pairs in ${m.seconds.toFixed(1)} s (lab setup ${m.setupSeconds.toFixed(1)} s)`);
process.exit(0);
