// Relay traffic between rendezvous instances that share one registry:
//   [0x22][16-byte tag][6-byte src address][RelaySend packet: 0x20, dst, inner]
// The sending instance has already authenticated the source node and applied
// the trust policy; the tag (HMAC-SHA256 under the cluster secret kept in the
// shared database, truncated to 128 bits) is what lets the receiving instance
// believe that, so nobody else can inject packets "from" a node. The inner
// packet is end-to-end encrypted as always.
import crypto from 'node:crypto';
import { PacketType } from '../wire/packet-types.ts';
import { ADDRESS_BYTES, readAddress, writeAddress, type Address } from '../wire/address.ts';

const TAG_BYTES = 16;
const HEADER = 1 + TAG_BYTES + ADDRESS_BYTES;

/** A KeyObject (made once) rather than raw bytes: an HMAC from a raw key prepares it on every packet. */
type Secret = Buffer | crypto.KeyObject;

function tag(secret: Secret, body: Buffer): Buffer {
  return crypto.createHmac('sha256', secret).update(body).digest().subarray(0, TAG_BYTES);
}

/** Wraps a RelaySend packet (already checked by this instance) for another instance. */
export function encodeRelayForward(secret: Secret, src: Address, relaySend: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + relaySend.length);
  out[0] = PacketType.RelayForward;
  writeAddress(out, 1 + TAG_BYTES, src);
  relaySend.copy(out, HEADER);
  tag(secret, out.subarray(1 + TAG_BYTES)).copy(out, 1);
  return out;
}

/** The source and the RelaySend packet, or undefined when the tag does not verify (or the packet is too short). */
export function decodeRelayForward(secret: Secret, pkt: Buffer): { src: Address; relaySend: Buffer } | undefined {
  if (pkt.length < HEADER + 1 + ADDRESS_BYTES + 1 || pkt[0] !== PacketType.RelayForward) return undefined;
  const expected = tag(secret, pkt.subarray(1 + TAG_BYTES));
  if (!crypto.timingSafeEqual(expected, pkt.subarray(1, 1 + TAG_BYTES))) return undefined;
  const relaySend = pkt.subarray(HEADER);
  if (relaySend[0] !== PacketType.RelaySend) return undefined;
  return { src: readAddress(pkt, 1 + TAG_BYTES), relaySend };
}
