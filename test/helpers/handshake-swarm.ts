// Run as a process: N throwaway identities each register at the rendezvous and
// complete a Noise handshake with one public daemon (what anyone may do: a
// public node accepts sessions from strangers for echo), then go silent.
// argv: <registry host:port> <target address> <target udp host:port> <n> [concurrency]
// Prints {"registered","established","ms"} as JSON.
import dgram from 'node:dgram';
import crypto from 'node:crypto';
import { generateIdentity } from '../../src/crypto/identity.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { SessionManager } from '../../src/crypto/session-manager.ts';
import { PacketType } from '../../src/wire/packet-types.ts';
import { parseAddress } from '../../src/wire/address.ts';
import { parseHostPort } from '../../src/util/hostport.ts';

const [registryText, targetText, targetEp, nText, concText] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const n = Number(nText);
const concurrency = Number(concText ?? 50);
const reg = parseHostPort(registryText, 9000);
const ep = parseHostPort(targetEp, 0);
const target = parseAddress(targetText);
const t0 = Date.now();

// The target's key, once (any registered identity may resolve a public node).
async function one(resolveKey: boolean): Promise<{ ok: boolean; key?: Buffer }> {
  const identity = generateIdentity();
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const registry = new RegistryClient({ identity, send: (p) => sock.send(p, reg.port, reg.host), timeoutMs: 2000, retries: 3 });
  let sessions: SessionManager<{ kind: 'direct' }> | undefined;
  sock.on('message', (msg) => {
    if (msg[0] === PacketType.RegistryResponse || msg[0] === PacketType.RegistryPush) registry.handlePacket(msg);
    else sessions?.handlePacket(msg, { kind: 'direct' });
  });
  try {
    await registry.hello();
    const r = await registry.register({ email: `swarm-${crypto.randomBytes(4).toString('hex')}@example.com`, lanEndpoints: [] });
    const address = typeof r.address === 'string' ? parseAddress(r.address) : r.address;
    if (resolveKey) {
      const t = await registry.resolve({ address: targetText });
      return { ok: true, key: Buffer.isBuffer(t.publicKey) ? t.publicKey : Buffer.from(String(t.publicKey), 'base64') };
    }
    sessions = new SessionManager<{ kind: 'direct' }>({
      identity,
      localAddress: address,
      bootId: crypto.randomBytes(8),
      send: (_k, pkt) => sock.send(pkt, ep.port, ep.host),
    });
    const up = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      sessions!.once('session', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    sessions.sendTo({ address: target, publicKey: targetKey! }, Buffer.alloc(0));
    return { ok: await up };
  } catch {
    return { ok: false };
  } finally {
    sessions?.destroy();
    registry.close?.();
    sock.close();
  }
}

const first = await one(true);
if (!first.key) throw new Error('cannot resolve the target');
const targetKey: Buffer | undefined = first.key;
let next = 0;
let established = 0;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++;
      if ((await one(false)).ok) established++;
    }
  }),
);
process.stdout.write(JSON.stringify({ registered: n, established, ms: Date.now() - t0 }) + '\n');
process.exit(0);
