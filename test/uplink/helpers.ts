// A registry client on top of a real TcpUplink (framed TCP or WebSocket), the
// way a daemon behind a UDP-blocking firewall talks to its rendezvous.
import { RegistryClient } from '../../src/registry/client.ts';
import { generateIdentity, type Identity } from '../../src/registry/signing.ts';
import { TcpUplink, type TcpUplinkOptions } from '../../src/uplink/tcp-uplink.ts';

export interface UplinkPeer {
  uplink: TcpUplink;
  client: RegistryClient;
  identity: Identity;
  /** Packets that are not registry answers (relay deliveries), oldest first. */
  received: Buffer[];
  nextPacket(type: number, timeoutMs?: number): Promise<Buffer>;
  close(): void;
}

export async function uplinkPeer(
  port: number,
  mode: TcpUplinkOptions['mode'],
  extra: Partial<TcpUplinkOptions> & { identity?: Identity } = {},
): Promise<UplinkPeer> {
  const { identity: given, ...uopts } = extra;
  const uplink = new TcpUplink({ host: '127.0.0.1', port, mode, connectTimeoutMs: 2000, backoff: { minMs: 50, maxMs: 500 }, ...uopts });
  const identity = given ?? generateIdentity();
  const client = new RegistryClient({ identity, send: (pkt) => void uplink.send(pkt), timeoutMs: 300, retries: 3 });
  const received: Buffer[] = [];
  let waiters: { type: number; fn: (b: Buffer) => void }[] = [];
  uplink.on('packet', (pkt) => {
    if (pkt[0] === 0x02 || pkt[0] === 0x03) return client.handlePacket(pkt);
    const w = waiters.find((x) => x.type === pkt[0]);
    if (w) {
      waiters = waiters.filter((x) => x !== w);
      w.fn(pkt);
    } else received.push(pkt);
  });
  await uplink.connect();
  return {
    uplink,
    client,
    identity,
    received,
    nextPacket(type, timeoutMs = 3000) {
      const i = received.findIndex((b) => b[0] === type);
      if (i >= 0) return Promise.resolve(received.splice(i, 1)[0]!);
      return new Promise((resolve, reject) => {
        const w = {
          type,
          fn: (b: Buffer) => {
            clearTimeout(t);
            resolve(b);
          },
        };
        const t = setTimeout(() => {
          waiters = waiters.filter((x) => x !== w);
          reject(new Error(`no packet of type 0x${type.toString(16)} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    close() {
      client.close();
      uplink.close();
    },
  };
}

/** Mutual trust between two registered nodes (any transport): x asks, y approves. */
export async function makeTrust(x: { client: RegistryClient }, xAddr: string, y: { client: RegistryClient }, yAddr: string): Promise<void> {
  await x.client.trustRequest(yAddr, 'test');
  await y.client.trustApprove(xAddr);
}

export { relaySend } from '../helpers/relay-packet.ts';

/** A stand-in session packet (0x12 Data) of n bytes; the relay never looks past the type byte. */
export const innerPacket = (n: number, fill = 0xab, type = 0x12): Buffer => Buffer.concat([Buffer.from([type]), Buffer.alloc(n - 1, fill)]);

export function once<T extends unknown[]>(em: { once(ev: string, fn: (...a: T) => void): unknown }, ev: string, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no '${ev}' within ${timeoutMs} ms`)), timeoutMs);
    em.once(ev, (...a: T) => {
      clearTimeout(t);
      resolve(a);
    });
  });
}
