// What a daemon sends to have a packet relayed, built by hand so tests can
// also send what a daemon never would.
import { parseAddress, writeAddress } from '../../src/wire/address.ts';
import { PacketType } from '../../src/wire/packet-types.ts';

/** [0x20 RelaySend][6-byte dst][inner]. */
export function relaySend(dst: string, inner: Buffer): Buffer {
  const pkt = Buffer.alloc(7 + inner.length);
  pkt[0] = PacketType.RelaySend;
  writeAddress(pkt, 1, parseAddress(dst));
  inner.copy(pkt, 7);
  return pkt;
}

/** An inner Data packet of `len` bytes whose content no session can open (relay tests: bytes, not meaning). */
export function junkData(len: number): Buffer {
  const inner = Buffer.alloc(len, 7);
  inner[0] = PacketType.Data;
  return inner;
}
