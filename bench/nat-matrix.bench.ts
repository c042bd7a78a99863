// The NAT lab as a benchmark: every pair of {public, cone, symmetric, double NAT,
// same LAN, UDP blocked} through real netfilter NAT in network namespaces; path
// chosen, cold time to first byte, ping RTT and 10 MiB echo time per pair.
// Needs root (network namespaces); prints why and exits 0 otherwise.
import { natLabSupport } from '../test/helpers/natlab.ts';
import { formatGrid, runMatrix } from '../test/nat/matrix.ts';
import { nat64Support, v6LabSupport } from '../test/helpers/natlab-v6.ts';
import { formatIpv6Table, runIpv6Lab } from '../test/nat/ipv6-lab.ts';

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
// The IPv6 kinds (dual-stack behind IPv4 NAT + IPv6 firewalls, IPv6-only behind NAT64) in their own lab.
const v6Support = [v6LabSupport(), nat64Support()].find((s) => !s.ok);
if (v6Support && !v6Support.ok) console.log(`\nIPv6 kinds skipped: ${v6Support.reason}`);
else {
  const v6 = await runIpv6Lab();
  console.log(`\n${formatIpv6Table(v6)}\n\n${v6.results.length} IPv6 pairs in ${v6.seconds.toFixed(1)} s (lab setup ${v6.setupSeconds.toFixed(1)} s)`);
}
process.exit(0);
