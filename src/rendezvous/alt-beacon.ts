// A second UDP port that answers only `hello` (the beacon's "what is my
// endpoint?"). A daemon asks both ports from its one socket: the same mapped
// port twice means its NAT maps endpoint-independently (hole punching works
// from either side); two different ports mean address/port-dependent mapping
// (a "symmetric" NAT, which needs birthday probing or the relay).
import dgram from 'node:dgram';
import { parseRequest } from '../registry/envelope.ts';
import { formatEndpoint } from '../registry/endpoint.ts';
import { bindFirst } from '../util/dual-stack-listen.ts';
import type { Link } from './link.ts';

export interface AltBeacon {
  readonly port: number;
  close(): Promise<void>;
}

export async function startAltBeacon(host: string, port: number, answer: (pkt: Buffer, link: Link) => void, onGarbage: () => void): Promise<AltBeacon> {
  const udp = await bindFirst(
    host,
    (h) =>
      new Promise<dgram.Socket>((resolve, reject) => {
        const s = dgram.createSocket({ type: h.includes(':') ? 'udp6' : 'udp4' });
        s.once('error', reject);
        s.bind({ port, address: h, exclusive: true }, () => {
          s.off('error', reject);
          resolve(s);
        });
      }),
  );
  udp.on('error', () => {});
  udp.on('message', (msg, rinfo) => {
    let isHello = false;
    try {
      isHello = parseRequest(msg).kind === 'hello';
    } catch {
      isHello = false;
    }
    if (!isHello) return onGarbage();
    answer(msg, {
      kind: 'udp',
      id: `udp-alt:${rinfo.address}:${rinfo.port}`,
      observed: formatEndpoint(rinfo.address, rinfo.port),
      send: (pkt) => {
        udp.send(pkt, rinfo.port, rinfo.address);
        return true;
      },
    });
  });
  return {
    port: udp.address().port,
    close: () => new Promise<void>((r) => udp.close(() => r())),
  };
}
