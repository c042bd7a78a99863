// HOST:PORT parsing for real (underlay) endpoints, e.g. the rendezvous address.
import net from 'node:net';
import { PilotError } from './errors.ts';

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(text: string, defaultPort?: number): HostPort {
  const t = String(text).trim();
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else {
    const i = t.lastIndexOf(':');
    if (i === -1) host = t;
    else {
      host = t.slice(0, i);
      portText = t.slice(i + 1);
    }
  }
  const port = portText === undefined ? defaultPort : /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!host || host.length > 253 || !/^[A-Za-z0-9.\-:]+$/.test(host) || port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new PilotError('BAD_ARGUMENT', `invalid HOST:PORT ${JSON.stringify(text)}`, 'use e.g. 127.0.0.1:9000 or rendezvous.example.com:9000');
  }
  return { host, port };
}

export function formatHostPort(h: HostPort): string {
  return net.isIPv6(h.host) ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`;
}
