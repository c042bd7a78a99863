// "ip:port" endpoint strings as carried in registry messages (IPv6 in brackets).
// Only literal IPs: the registry never resolves names on behalf of a node.
import net from 'node:net';

export const MAX_ENDPOINT_CHARS = 47; // "[" + 39-char IPv6 + "]:" + 5-digit port

export interface Endpoint {
  host: string;
  port: number;
}

export function parseEndpoint(text: string): Endpoint | undefined {
  if (typeof text !== 'string' || text.length > MAX_ENDPOINT_CHARS) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined ? !net.isIPv6(host) : !net.isIPv4(host)) return undefined;
  return { host, port };
}

/** IPv4-mapped IPv6 (from dual-stack sockets) is reported as plain IPv4. */
export function normalizeIp(ip: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  return m ? m[1]! : ip;
}

export function formatEndpoint(host: string, port: number): string {
  const h = normalizeIp(host);
  return net.isIPv6(h) ? `[${h}]:${port}` : `${h}:${port}`;
}
