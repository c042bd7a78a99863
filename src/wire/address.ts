// 48-bit virtual addresses: 16-bit network id + 32-bit node id, written
// N:XXXX.YYYY.YYYY: the network in decimal, then the full 48-bit value as
// three 4-digit hex groups (network, node high half, node low half).
import { PilotError } from '../util/errors.ts';

export interface Address {
  readonly network: number; // 0..0xffff
  readonly node: number; // 0..0xffffffff
}

const ADDR_RE = /^(\d{1,5}):([0-9a-fA-F]{4})\.([0-9a-fA-F]{4})\.([0-9a-fA-F]{4})$/;

export function makeAddress(network: number, node: number): Address {
  if (!Number.isInteger(network) || network < 0 || network > 0xffff) {
    throw new PilotError('BAD_ADDRESS', `network id out of range: ${network}`, 'network is 0..65535');
  }
  if (!Number.isInteger(node) || node < 0 || node > 0xffffffff) {
    throw new PilotError('BAD_ADDRESS', `node id out of range: ${node}`, 'node is 0..0xFFFFFFFF');
  }
  return { network, node };
}

export function parseAddress(text: string): Address {
  if (typeof text !== 'string' || text.length > 32) {
    throw new PilotError('BAD_ADDRESS', 'address must be a short string', 'format is N:XXXX.YYYY.YYYY, e.g. 0:0000.0000.002A');
  }
  const m = ADDR_RE.exec(text.trim());
  if (!m) {
    throw new PilotError('BAD_ADDRESS', `malformed address: ${JSON.stringify(text)}`, 'format is N:XXXX.YYYY.YYYY, e.g. 0:0000.0000.002A');
  }
  const network = Number(m[1]);
  // The 12 hex digits are the whole 48-bit address (network, then node), so
  // the first group repeats the decimal network prefix and must agree with it.
  const hi = parseInt(m[2]!, 16);
  const node = (parseInt(m[3]!, 16) * 0x10000 + parseInt(m[4]!, 16)) >>> 0;
  if (hi !== network) {
    throw new PilotError(
      'BAD_ADDRESS',
      `address network ${network} does not match its first group ${m[2]}`,
      'the first hex group repeats the network id, e.g. 1:0001.0000.002A',
    );
  }
  return makeAddress(network, node);
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

export function formatAddress(a: Address): string {
  return `${a.network}:${hex4(a.network)}.${hex4(a.node >>> 16)}.${hex4(a.node & 0xffff)}`;
}

export function addressEquals(a: Address, b: Address): boolean {
  return a.network === b.network && a.node === b.node;
}

/** 6-byte binary form used on the wire. */
export const ADDRESS_BYTES = 6;

export function writeAddress(buf: Buffer, offset: number, a: Address): number {
  buf.writeUInt16BE(a.network, offset);
  buf.writeUInt32BE(a.node, offset + 2);
  return offset + ADDRESS_BYTES;
}

export function readAddress(buf: Buffer, offset: number): Address {
  if (offset + ADDRESS_BYTES > buf.length) throw new PilotError('BAD_REQUEST', 'truncated address');
  return { network: buf.readUInt16BE(offset), node: buf.readUInt32BE(offset + 2) };
}

/** A numeric key for maps: network * 2^32 + node (fits in a double exactly). */
export function addressKey(a: Address): number {
  return a.network * 0x100000000 + a.node;
}

/** Parse a bare node id ("42", "0x2A", "2A" hex) into an address on network 0. */
export function parseNodeId(text: string, network = 0): Address | undefined {
  const t = text.trim();
  let n: number;
  if (/^0x[0-9a-fA-F]{1,8}$/.test(t)) n = parseInt(t.slice(2), 16);
  else if (/^\d{1,10}$/.test(t)) n = Number(t);
  else return undefined;
  if (n > 0xffffffff) return undefined;
  return makeAddress(network, n);
}

/** A socket address on the overlay: N:XXXX.YYYY.YYYY:PORT */
export interface SocketAddress {
  readonly addr: Address;
  readonly port: number;
}

export function parsePort(text: string | number): number {
  const n = typeof text === 'number' ? text : /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) {
    throw new PilotError('BAD_ARGUMENT', `invalid port: ${String(text)}`, 'a virtual port is 0..65535');
  }
  return n;
}

export function parseSocketAddress(text: string): SocketAddress {
  const i = text.lastIndexOf(':');
  if (i <= 0) throw new PilotError('BAD_ADDRESS', `malformed socket address: ${JSON.stringify(text)}`, 'format is N:XXXX.YYYY.YYYY:PORT');
  return { addr: parseAddress(text.slice(0, i)), port: parsePort(text.slice(i + 1)) };
}

export function formatSocketAddress(s: SocketAddress): string {
  return `${formatAddress(s.addr)}:${s.port}`;
}
