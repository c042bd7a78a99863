// IPv4 subnets for gateway mappings: parse a CIDR, hand out the next free host
// address. 127.0.0.0/8 is special: every address in it is already local on
// Linux, so mapping there needs no alias and no root.
import net from 'node:net';
import { PilotError } from '../util/errors.ts';

export interface Subnet {
  readonly cidr: string;
  /** Network address as an unsigned 32-bit integer. */
  readonly base: number;
  readonly prefix: number;
}

/** With root (or the subnet made local), the seed's subnet; without, one inside 127/8. */
export const DEFAULT_SUBNET = '10.4.0.0/16';
export const NO_ROOT_SUBNET = '127.4.0.0/16';

export function ipToInt(ip: string): number {
  if (!net.isIPv4(ip)) throw new PilotError('BAD_ARGUMENT', `not an IPv4 address: ${JSON.stringify(ip)}`, 'use e.g. 10.4.0.7');
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export function parseSubnet(text: string): Subnet {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(String(text).trim());
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || !net.isIPv4(m[1]!) || prefix < 8 || prefix > 30) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `invalid subnet ${JSON.stringify(text)}`,
      'an IPv4 CIDR with a prefix of /8 to /30, e.g. 10.4.0.0/16 (or 127.4.0.0/16 without root)',
    );
  }
  const size = 2 ** (32 - prefix);
  const base = ipToInt(m[1]!) - (ipToInt(m[1]!) % size);
  return { cidr: `${intToIp(base)}/${prefix}`, base, prefix };
}

export function inSubnet(s: Subnet, ip: string): boolean {
  const n = ipToInt(ip);
  return n >= s.base && n < s.base + 2 ** (32 - s.prefix);
}

/** Addresses that are local without any alias (Linux routes all of 127/8 to lo). */
export function isLoopback127(ip: string): boolean {
  return net.isIPv4(ip) && ip.startsWith('127.');
}

/** Host addresses of the subnet in order, skipping the network and broadcast addresses. */
export function* hostAddresses(s: Subnet): Generator<string> {
  const size = 2 ** (32 - s.prefix);
  for (let i = 1; i < size - 1; i++) yield intToIp(s.base + i);
}
