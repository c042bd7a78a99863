// NAT classification from two beacon answers to the same local socket.
//   none: the beacon sees one of our own addresses (no NAT)
//   eim:  endpoint-independent mapping: both beacon ports saw the same ip:port
//         (a "cone": whatever the peer learns from the beacon works for it too)
//   edm:  endpoint-dependent mapping ("symmetric"): each destination gets a new port
//   unknown: the second answer never came (old rendezvous, or loss)
export type NatType = 'none' | 'eim' | 'edm' | 'unknown';

export function classifyNat(first: string | undefined, second: string | undefined, localAddresses: readonly string[]): NatType {
  if (first === undefined) return 'unknown';
  const host = first.slice(0, first.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  if (localAddresses.includes(host)) return 'none';
  if (second === undefined) return 'unknown';
  return first === second ? 'eim' : 'edm';
}

/** Can a peer behind `a` and one behind `b` expect a direct path? (birthday probing covers eim x edm) */
export function directLikely(a: NatType, b: NatType): boolean {
  return !(a === 'edm' && b === 'edm');
}
