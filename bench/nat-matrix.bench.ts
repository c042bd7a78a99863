// The NAT lab as a benchmark: every pair of {public, cone, symmetric, double NAT,
// same LAN, UDP blocked} through real netfilter NAT in network namespaces; path
// chosen, cold time to first byte, ping RTT and 10 MiB echo time per pair.
// Needs root (network namespaces); prints why and exits 0 otherwise.
import { natLabSupport } from '../test/helpers/natlab.ts';
import { formatGrid, runMatrix } from '../test/nat/matrix.ts';
import { nat64Support, v6LabSupport } from '../test/helpers/natlab-v6.ts';
import { formatIpv6Table, runIpv6Lab } from '../test/nat/ipv6-lab.ts';
import { miniupnpdSupport } from '../test/helpers/miniupnpd.ts';
import { runPortmapPairs } from '../test/nat/portmap/pairs.ts';

const support = natLabSupport();
if (!support.ok) {
  console.log(`NAT matrix skipped: ${support.reason}`);
  process.exit(0);
}
// `npm run bench:nat -- --only matrix|ipv6|portmap`: just those rows (default: all three).
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const want = (part: string): boolean => only === undefined || only === part;
if (want('matrix')) await matrix();
if (want('ipv6')) await ipv6();
if (want('portmap')) await portmap();
process.exit(0);

/** Issue 19: the IPv6 kinds (dual-stack behind IPv4 NAT + IPv6 firewalls, IPv6-only behind NAT64) in their own lab. */
async function ipv6(): Promise<void> {
  const v6Support = [v6LabSupport(), nat64Support()].find((s) => !s.ok);
  if (v6Support && !v6Support.ok) {
    console.log(`\nIPv6 kinds skipped: ${v6Support.reason}`);
    return;
  }
  const v6 = await runIpv6Lab();
  console.log(`\n${formatIpv6Table(v6)}\n\n${v6.results.length} IPv6 pairs in ${v6.seconds.toFixed(1)} s (lab setup ${v6.setupSeconds.toFixed(1)} s)`);
}

/** Issue 19: a symmetric NAT whose router maps (miniupnpd: PCP, NAT-PMP, UPnP-IGD), each next to a plain symmetric one. */
async function portmap(): Promise<void> {
  const mu = miniupnpdSupport();
  if (!mu.ok) {
    console.log(`\nport-mapping rows skipped: ${mu.reason}`);
    return;
  }
  const t0 = Date.now();
  const rows = await runPortmapPairs();
  console.log('\n| pair | path | via mapping | first byte | time to direct | 10 MiB echo | router bytes toward the peer |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.kind} x ${r.partner} | ${r.ok ? r.path : `FAIL(${r.error})`} | ${r.viaMapping ? 'yes' : 'no'} | ${r.firstByteMs ?? '-'} ms | ${r.directAfterMs ?? '-'} ms | ${r.echoSeconds?.toFixed(2) ?? '-'} s | ${r.routerDirectBytes ?? '-'} |`,
    );
  console.log(`\n${rows.length} port-mapping pairs in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

async function matrix(): Promise<void> {
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
}
