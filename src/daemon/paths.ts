// How a peer is reached on the underlay. A session does not care: the daemon
// picks a path per packet, and learns the working one from authenticated traffic.
import type { HostPort } from '../util/hostport.ts';

export type Path =
  | { kind: 'direct'; host: string; port: number }
  | { kind: 'relay-udp' };

export function describePath(p: Path | undefined): string {
  if (!p) return 'none';
  return p.kind === 'direct' ? `direct ${p.host}:${p.port}` : 'relay (udp)';
}

export function samePath(a: Path | undefined, b: Path | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.kind !== b.kind) return false;
  return a.kind === 'direct' && b.kind === 'direct' ? a.host === b.host && a.port === b.port : true;
}

export function parseEndpoint(text: string): HostPort | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1]!, port } : undefined;
}
