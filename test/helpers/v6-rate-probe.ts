// Run as a process inside a network namespace whose loopback has the addresses
// given: a rendezvous on "::" (dual-stack), a flood of signed requests from the
// first source, then a few from each other source; prints how many of each
// source's requests the per-source limiter dropped, as JSON.
// argv: <source ip> <source ip> ...
import dgram from 'node:dgram';
import { once } from 'node:events';
import { startRendezvous } from '../../src/rendezvous/server.ts';
import { buildRequest } from '../../src/registry/envelope.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { tmpDir } from './cluster.ts';

const sources = process.argv.slice(2);
const s = await startRendezvous({ host: '0.0.0.0', port: 0, dataDir: tmpDir('pilot-v6rate-'), requestRate: { perSec: 1, burst: 20 } });
const pkt = buildRequest(generateIdentity(), s.publicKey, 'heartbeat', {}).packet;
const out: Record<string, number> = {};
for (const [i, src] of sources.entries()) {
  const sock = dgram.createSocket(src.includes(':') ? 'udp6' : 'udp4');
  sock.bind(0, src);
  await once(sock, 'listening');
  const before = s.stats().rateLimited;
  const n = i === 0 ? 100 : 10; // the first source floods; the others send a few each
  for (let k = 0; k < n; k++) sock.send(pkt, s.port, src.includes(':') ? '::1' : '127.0.0.1');
  await new Promise((r) => setTimeout(r, 200));
  out[src] = s.stats().rateLimited - before;
  sock.close();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
await s.close();
process.exit(0);
