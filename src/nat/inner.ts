// The first byte of every session plaintext says who it is for: the stream
// transport, or the path layer's own messages. Path messages ride inside the
// encrypted session, so a connectivity check cannot be forged or replayed by
// anyone on the path (unlike STUN-style checks in the clear).
//
//   0x00 transport packet (the rest is a Connection packet)
//   0x01 PROBE        nonce(8)              "does this path work?" (sent on a chosen path)
//   0x02 PROBE_REPLY  nonce(8)              answered on the path the probe came in on
//   0x03 CANDIDATES   JSON {eps, nat, reply} our endpoints and NAT type: start punching now
import { PilotError } from '../util/errors.ts';
import { parseEndpoint } from './path.ts';
import type { NatType } from './nat-type.ts';

export const Inner = {
  Transport: 0x00,
  Probe: 0x01,
  ProbeReply: 0x02,
  Candidates: 0x03,
} as const;

export const NONCE_BYTES = 8;
const MAX_CANDIDATES_JSON = 1024;
const MAX_EPS = 8;
const NAT_TYPES: readonly NatType[] = ['none', 'eim', 'edm', 'unknown'];

export function encodeProbe(type: typeof Inner.Probe | typeof Inner.ProbeReply, nonce: Buffer): Buffer {
  const b = Buffer.allocUnsafe(1 + NONCE_BYTES);
  b[0] = type;
  nonce.copy(b, 1, 0, NONCE_BYTES);
  return b;
}

export interface CandidatesMsg {
  eps: string[];
  nat: NatType;
  /** The sender wants our candidates back (it has not heard them in this session). */
  reply: boolean;
}

export function encodeCandidates(m: CandidatesMsg): Buffer {
  const json = Buffer.from(JSON.stringify({ eps: m.eps.slice(0, MAX_EPS), nat: m.nat, reply: m.reply }));
  return Buffer.concat([Buffer.from([Inner.Candidates]), json]);
}

/** Hostile input: the peer is authenticated, but may still be buggy or malicious. */
export function decodeCandidates(body: Buffer): CandidatesMsg {
  if (body.length > MAX_CANDIDATES_JSON) throw new PilotError('BAD_REQUEST', 'candidates message too large');
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new PilotError('BAD_REQUEST', 'candidates message is not JSON');
  }
  if (typeof v !== 'object' || v === null) throw new PilotError('BAD_REQUEST', 'candidates message is not an object');
  const o = v as Record<string, unknown>;
  const eps = Array.isArray(o.eps) ? o.eps.filter((e): e is string => typeof e === 'string' && parseEndpoint(e) !== undefined).slice(0, MAX_EPS) : [];
  const nat = NAT_TYPES.includes(o.nat as NatType) ? (o.nat as NatType) : 'unknown';
  return { eps, nat, reply: o.reply === true };
}
