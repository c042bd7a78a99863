// A target on the command line is an address (0:0000.0000.002A), a bare node
// id (42, 0x2A) or a hostname. This turns the text into a registry query.
import { parseAddress, parseNodeId, type Address } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';

export interface ResolvedNode {
  address: Address;
  publicKey: Buffer;
  hostname: string | undefined;
  endpoints: string[];
  public: boolean;
  online: boolean;
  /** Fleets: the networks we share with the node and its tags there, as the rendezvous says (a hint). */
  networks?: { net: number; tags: string[] }[];
  /** The rotation statement that bound publicKey, when the registry sent one (issue 18 key rotation). */
  rotation?: { statement: string; sig: Buffer } | undefined;
}

const HOSTNAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

export function parseTarget(text: string, network: number): { address: Address } | { hostname: string } {
  const t = String(text ?? '').trim();
  if (t.includes(':')) return { address: parseAddress(t) };
  const id = parseNodeId(t, network);
  if (id) return { address: id };
  if (HOSTNAME_RE.test(t)) return { hostname: t.toLowerCase() };
  throw new PilotError('BAD_ADDRESS', `not an address, node id or hostname: ${JSON.stringify(t)}`, 'use e.g. 0:0000.0000.002A, 42, or agent-alpha');
}

export async function resolveTargetText(
  text: string,
  network: number,
  resolve: (q: { address?: Address; hostname?: string }) => Promise<ResolvedNode>,
): Promise<ResolvedNode> {
  return resolve(parseTarget(text, network));
}
