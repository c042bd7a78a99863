// NAT-PMP (RFC 6886) messages: ask the gateway to forward an external UDP port
// to our socket. Fixed-size binary; every response field is checked, since the
// gateway may be buggy or lie (RFC 6886 3.5: opcode 128+n, the internal port asked).
export const NATPMP_PORT = 5351;
const OP_MAP_UDP = 1;

/** RFC 6886 3.5 result codes. */
export const NATPMP_RESULTS: Record<number, string> = {
  0: 'success',
  1: 'unsupported version',
  2: 'not authorized (port mapping disabled on the gateway)',
  3: 'network failure (the gateway has no public address)',
  4: 'out of resources',
  5: 'unsupported opcode',
};

export function encodePmpMap(internalPort: number, suggestedExternalPort: number, lifetimeSec: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0; // version
  b[1] = OP_MAP_UDP;
  b.writeUInt16BE(internalPort, 4);
  b.writeUInt16BE(suggestedExternalPort, 6);
  b.writeUInt32BE(lifetimeSec, 8);
  return b;
}

export function encodePmpAddressRequest(): Buffer {
  return Buffer.from([0, 0]);
}

export interface PmpMapResponse {
  result: number;
  epoch: number;
  internalPort: number;
  externalPort: number;
  lifetimeSec: number;
}

/** A response to our UDP map request, or undefined when it is not one (wrong size, version or opcode). */
export function decodePmpMap(b: Buffer): PmpMapResponse | undefined {
  if (b.length < 16 || b[0] !== 0 || b[1] !== 128 + OP_MAP_UDP) return undefined;
  return {
    result: b.readUInt16BE(2),
    epoch: b.readUInt32BE(4),
    internalPort: b.readUInt16BE(8),
    externalPort: b.readUInt16BE(10),
    lifetimeSec: b.readUInt32BE(12),
  };
}

/** A response to the external-address request (opcode 0): the gateway's public IPv4 address. */
export function decodePmpAddress(b: Buffer): { result: number; epoch: number; address: string } | undefined {
  if (b.length < 12 || b[0] !== 0 || b[1] !== 128) return undefined;
  return { result: b.readUInt16BE(2), epoch: b.readUInt32BE(4), address: `${b[8]}.${b[9]}.${b[10]}.${b[11]}` };
}

/** A bare NAT-PMP result header (e.g. the "unsupported version" answer a NAT-PMP-only gateway gives to PCP). */
export function isPmpHeader(b: Buffer): boolean {
  return b.length >= 4 && b[0] === 0 && (b[1]! & 0x80) !== 0;
}
