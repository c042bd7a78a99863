// Prefer a direct IPv6 path where both sides have one. IPv6 usually has no NAT
// in front of it (no mapping to expire, no rebinding) and is what Tailscale and
// iroh prefer too (Tailscale's betterAddr ranks IPv6 above IPv4 at equal latency).
// Without this the path would follow whichever direct packet arrived last: a
// punching round probes every candidate, so the replies on v4 and v6 race.
import net from 'node:net';
import type { Path } from './path.ts';

/** An IPv6 path that answered within this long is kept against IPv4 packets. */
export const V6_HOLD_MS = 1_500;

/**
 * Keep the current direct IPv6 path although an authenticated packet came in on
 * a direct IPv4 one? Yes while the IPv6 path answers (heard within V6_HOLD_MS);
 * once it goes quiet the IPv4 path takes over at once.
 */
export function holdIpv6(current: Path | undefined, incoming: Path, currentQuietMs: number): boolean {
  return current?.kind === 'direct' && incoming.kind === 'direct' && isV6(current.host) && !isV6(incoming.host) && currentQuietMs < V6_HOLD_MS;
}

/**
 * net.isIPv6 behind a test for ':' (every IPv6 literal has one, no IPv4 one does): this runs
 * for every authenticated packet, and net.isIPv6 tries a long regular expression even on
 * "10.0.0.1" (1.5% of a receiving daemon's CPU).
 */
function isV6(host: string): boolean {
  return host.includes(':') && net.isIPv6(host);
}
