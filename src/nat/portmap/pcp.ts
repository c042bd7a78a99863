// PCP (RFC 6887) MAP requests and responses for one UDP port: the successor of
// NAT-PMP on the same port 5351. The response must echo our 12-byte nonce,
// protocol and internal port (RFC 6887 11.2); anything else is not ours.
export const PCP_VERSION = 2;
const OP_MAP = 1;
const PROTO_UDP = 17;
export const PCP_NONCE_BYTES = 12;

/** RFC 6887 7.4 result codes. */
export const PCP_RESULTS: Record<number, string> = {
  0: 'success',
  1: 'unsupported version',
  2: 'not authorized (port mapping disabled on the gateway)',
  3: 'malformed request',
  4: 'unsupported opcode',
  5: 'unsupported option',
  6: 'malformed option',
  7: 'network failure (the gateway has no public address)',
  8: 'no resources',
  9: 'unsupported protocol',
  10: 'user exceeded quota',
  11: 'cannot provide the external port',
  12: 'address mismatch (a NAT between us and the gateway)',
  13: 'excessive remote peers',
};

function v4mapped(ip: string, b: Buffer, at: number): void {
  b.fill(0, at, at + 10);
  b.writeUInt16BE(0xffff, at + 10);
  const p = ip.split('.').map(Number);
  for (let i = 0; i < 4; i++) b[at + 12 + i] = p[i] ?? 0;
}

function readV4mapped(b: Buffer, at: number): string | undefined {
  for (let i = 0; i < 10; i++) if (b[at + i] !== 0) return undefined;
  if (b.readUInt16BE(at + 10) !== 0xffff) return undefined;
  return `${b[at + 12]}.${b[at + 13]}.${b[at + 14]}.${b[at + 15]}`;
}

export interface PcpMapRequest {
  nonce: Buffer;
  /** Our own address as the gateway sees it (the request's source address; else ADDRESS_MISMATCH). */
  clientIp: string;
  internalPort: number;
  suggestedExternalPort: number;
  /** 0 deletes the mapping. */
  lifetimeSec: number;
}

export function encodePcpMap(r: PcpMapRequest): Buffer {
  const b = Buffer.alloc(60);
  b[0] = PCP_VERSION;
  b[1] = OP_MAP; // R bit clear: a request
  b.writeUInt32BE(r.lifetimeSec, 4);
  v4mapped(r.clientIp, b, 8);
  r.nonce.copy(b, 24, 0, PCP_NONCE_BYTES);
  b[36] = PROTO_UDP;
  b.writeUInt16BE(r.internalPort, 40);
  b.writeUInt16BE(r.suggestedExternalPort, 42);
  v4mapped('0.0.0.0', b, 44);
  return b;
}

/** ANNOUNCE (opcode 0, RFC 6887 14.1): a header only; the answer carries the server's epoch. */
export function encodePcpAnnounce(clientIp: string): Buffer {
  const b = Buffer.alloc(24);
  b[0] = PCP_VERSION;
  v4mapped(clientIp, b, 8);
  return b;
}

/** The epoch of an ANNOUNCE answer, or undefined when the datagram is not one. */
export function decodePcpAnnounce(b: Buffer): { result: number; epoch: number } | undefined {
  if (b.length < 24 || b.length > 1100 || b[0] !== PCP_VERSION || b[1] !== 0x80) return undefined;
  return { result: b[3]!, epoch: b.readUInt32BE(8) };
}

export interface PcpMapResponse {
  result: number;
  lifetimeSec: number;
  epoch: number;
  nonce: Buffer;
  internalPort: number;
  externalPort: number;
  /** undefined: not an IPv4 address. */
  externalIp: string | undefined;
}

/** A MAP response (R bit, opcode MAP, UDP), or undefined when the datagram is not one. */
export function decodePcpMap(b: Buffer): PcpMapResponse | undefined {
  if (b.length < 60 || b.length > 1100 || b[0] !== PCP_VERSION || b[1] !== (0x80 | OP_MAP) || b[36] !== PROTO_UDP) return undefined;
  return {
    result: b[3]!,
    lifetimeSec: b.readUInt32BE(4),
    epoch: b.readUInt32BE(8),
    nonce: Buffer.from(b.subarray(24, 24 + PCP_NONCE_BYTES)),
    internalPort: b.readUInt16BE(40),
    externalPort: b.readUInt16BE(42),
    externalIp: readV4mapped(b, 44),
  };
}
