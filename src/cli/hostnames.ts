// Hostnames for lists that carry only addresses (inbox senders, received files,
// tasks): the daemon knows the hostname of each peer it has a session with or
// trusts, so one look at `peers` and `trust` names most of them. A node it knows
// nothing about stays an address: a private node's name is not ours to look up.
import type { IpcClient } from '../ipc/client.ts';

export type HostnameOf = (address: string | null | undefined) => string | null;

export async function hostnameLookup(client: IpcClient): Promise<HostnameOf> {
  const names = new Map<string, string>();
  const [peers, trust] = await Promise.all([client.call('peers').catch(() => undefined), client.call('trust').catch(() => undefined)]);
  for (const t of trust?.trusted ?? []) if (t.hostname) names.set(t.peer, t.hostname);
  for (const p of peers?.peers ?? []) if (p.hostname) names.set(p.address, p.hostname);
  return (address) => (address ? (names.get(address) ?? null) : null);
}

/** "agent-beta (0:0000.0000.0002)", or the address alone when no hostname is known. */
export function named(address: string | null | undefined, hostname: string | null): string {
  if (!address) return '-';
  return hostname ? `${hostname} (${address})` : address;
}
