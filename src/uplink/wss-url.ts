// The rendezvous's WebSocket-over-TLS address as configured: wss://host[:port][/path].
import net from 'node:net';
import { PilotError } from '../util/errors.ts';

export interface WssTarget {
  /** The name the server certificate must carry (or an IP literal, unbracketed). */
  host: string;
  port: number;
  path: string;
}

export function parseWssUrl(text: string, what = '--wss'): WssTarget {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new PilotError(
      'BAD_ARGUMENT',
      `${what}: ${JSON.stringify(text.slice(0, 200))} is not a URL`,
      `${what} takes wss://HOST[:PORT][/PATH], e.g. wss://rendezvous.example.com/pilot`,
    );
  }
  if (u.protocol !== 'wss:')
    throw new PilotError(
      'BAD_ARGUMENT',
      `${what}: ${u.protocol.replace(/:$/, '')}:// is not wss://`,
      `${what} takes wss://HOST[:PORT][/PATH] (TLS; port 443 by default)`,
    );
  if (u.username || u.password || u.search || u.hash)
    throw new PilotError('BAD_ARGUMENT', `${what}: credentials, query or fragment in the URL`, `${what} takes wss://HOST[:PORT][/PATH] only`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host || (host.includes(':') && !net.isIPv6(host)))
    throw new PilotError('BAD_ARGUMENT', `${what}: no host in the URL`, `${what} takes wss://HOST[:PORT][/PATH]`);
  return { host, port: u.port ? Number(u.port) : 443, path: u.pathname && u.pathname !== '/' ? u.pathname : '/pilot' };
}
