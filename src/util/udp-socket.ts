// UDP sockets whose send() to an IP literal leaves at once. dgram passes every
// destination through dns.lookup, which answers a literal on the next tick: one
// closure and nextTick per packet, and the packet waits until the current
// callback has unwound. Peers and the rendezvous are always IP literals here;
// names still go through dns.lookup.
import dgram from 'node:dgram';
import dns from 'node:dns';
import { ipFamily } from './ip-family.ts';

type LookupCb = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

function literalLookup(host: string, options: dns.LookupOneOptions | number, cb: LookupCb): void {
  const family = ipFamily(host);
  if (family !== 0) return cb(null, host, family);
  dns.lookup(host, options as dns.LookupOneOptions, cb);
}

export function createUdpSocket(opts: Omit<dgram.SocketOptions, 'lookup'>): dgram.Socket {
  return dgram.createSocket({ ...opts, lookup: literalLookup as dgram.SocketOptions['lookup'] });
}
