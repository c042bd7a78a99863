// Test harness: a real rendezvous on 127.0.0.1:0 and RegistryClients talking to
// it over their own UDP socket or TCP connection, like the daemon does.
import dgram from 'node:dgram';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.ts';
import { generateIdentity, type Identity } from '../../src/registry/signing.ts';
import { startRendezvous, type Rendezvous, type RendezvousOptions } from '../../src/rendezvous/server.ts';
import { encodeFrame, FrameDecoder } from '../../src/wire/tcp-framing.ts';

export function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-rdv-'));
}

export async function startServer(extra: Partial<RendezvousOptions> = {}): Promise<Rendezvous & { dataDir: string }> {
  const dataDir = extra.dataDir ?? tmpDir();
  const s = await startRendezvous({ host: '127.0.0.1', port: 0, ...extra, dataDir });
  return Object.assign(s, { dataDir });
}

export interface Peer {
  client: RegistryClient;
  identity: Identity;
  /** Every packet the peer received (registry ones are also fed to the client). */
  received: Buffer[];
  /** Sends a raw packet to the rendezvous on this peer's socket/connection. */
  sendRaw(pkt: Buffer): void;
  localPort: number;
  close(): Promise<void>;
  nextPacket(type?: number, timeoutMs?: number): Promise<Buffer>;
}

function waiterQueue() {
  const received: Buffer[] = [];
  let waiters: { type: number | undefined; fn: (b: Buffer) => void }[] = [];
  return {
    received,
    push(b: Buffer) {
      const w = waiters.find((x) => x.type === undefined || x.type === b[0]);
      if (w) {
        waiters = waiters.filter((x) => x !== w);
        w.fn(b);
      } else received.push(b);
    },
    /** Next packet (of `type`, if given) received on this peer, oldest first. */
    next(type?: number, timeoutMs = 2000): Promise<Buffer> {
      const i = received.findIndex((b) => type === undefined || b[0] === type);
      if (i >= 0) return Promise.resolve(received.splice(i, 1)[0]!);
      return new Promise((resolve, reject) => {
        const w = {
          type,
          fn: (x: Buffer) => {
            clearTimeout(t);
            resolve(x);
          },
        };
        const t = setTimeout(() => {
          waiters = waiters.filter((x) => x !== w);
          reject(new Error(`no packet${type === undefined ? '' : ` of type 0x${type.toString(16)}`} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

/**
 * A return-routability cookie for this peer's UDP source (from a hello), for
 * tests that hand-craft signed requests; the hello answer is taken off the queue.
 */
export async function cookieOf(p: Peer): Promise<string> {
  const h = await p.client.hello();
  p.received.length = 0;
  if (h.cookie === undefined) throw new Error('the hello answer carried no cookie');
  return h.cookie;
}

type ClientOpts = Partial<Omit<RegistryClientOptions, 'send'>>;

export async function udpPeer(port: number, opts: ClientOpts = {}): Promise<Peer> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const identity = opts.identity ?? generateIdentity();
  const send = (pkt: Buffer) => sock.send(pkt, port, '127.0.0.1');
  const client = new RegistryClient({ timeoutMs: 300, retries: 2, ...opts, identity, send });
  const q = waiterQueue();
  sock.on('message', (msg, rinfo) => {
    if (rinfo.port === port && (msg[0] === 0x02 || msg[0] === 0x03 || msg[0] === 0x04)) client.handlePacket(msg);
    q.push(msg);
  });
  return {
    client,
    identity,
    received: q.received,
    sendRaw: send,
    localPort: sock.address().port,
    nextPacket: q.next,
    close: async () => {
      client.close();
      await new Promise<void>((r) => sock.close(() => r()));
    },
  };
}

export async function tcpPeer(port: number, opts: ClientOpts = {}): Promise<Peer> {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  const identity = opts.identity ?? generateIdentity();
  const send = (pkt: Buffer) => {
    sock.write(encodeFrame(pkt));
  };
  const client = new RegistryClient({ timeoutMs: 300, retries: 2, ...opts, identity, send });
  const q = waiterQueue();
  const dec = new FrameDecoder();
  sock.on('data', (d) => {
    for (const f of dec.push(d)) {
      if (f[0] === 0x02 || f[0] === 0x03) client.handlePacket(f);
      q.push(f);
    }
  });
  sock.on('error', () => {});
  return {
    client,
    identity,
    received: q.received,
    sendRaw: send,
    localPort: sock.localPort!,
    nextPacket: q.next,
    close: async () => {
      client.close();
      sock.destroy();
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Mutual trust between two registered peers: x asks, y approves. */
export async function makeTrust(x: Peer, xAddr: string, y: Peer, yAddr: string): Promise<void> {
  await x.client.trustRequest(yAddr, 'test');
  await y.client.trustApprove(xAddr);
}

export { relaySend } from '../helpers/relay-packet.ts';
