// Runs inside the client network namespace of udp-blocked.test.ts (not a test
// file itself): tries the rendezvous over UDP, then registers two nodes, one
// over framed TCP and one over WebSocket, makes them trust each other and
// relays a packet both ways. Prints one JSON line with what happened.
import dgram from 'node:dgram';
import { RegistryClient } from '../../src/registry/client.ts';
import { generateIdentity } from '../../src/registry/signing.ts';
import { asPilotError } from '../../src/util/errors.ts';
import { formatAddress, readAddress } from '../../src/wire/address.ts';
import { innerPacket, makeTrust, relaySend, uplinkPeer } from './helpers.ts';

const host = process.argv[2]!;
const port = Number(process.argv[3]);
const tag = process.pid.toString(36);

async function tryUdp(): Promise<string> {
  const sock = dgram.createSocket('udp4');
  sock.on('error', () => {});
  const client = new RegistryClient({ identity: generateIdentity(), send: (p) => sock.send(p, port, host), timeoutMs: 300, retries: 2 });
  sock.on('message', (m) => client.handlePacket(m));
  try {
    await client.hello();
    return 'ok';
  } catch (err) {
    return asPilotError(err).code;
  } finally {
    client.close();
    sock.close();
  }
}

const out: Record<string, unknown> = { udp: await tryUdp() };
const tcp = await uplinkPeer(port, 'tcp', { host });
const ws = await uplinkPeer(port, 'websocket', { host });
const rt = await tcp.client.register({ email: 'tcp@example.com', hostname: `fw-tcp-${tag}` });
const rw = await ws.client.register({ email: 'ws@example.com', hostname: `fw-ws-${tag}` });
await makeTrust(tcp, rt.address, ws, rw.address);
out.tcpAddress = rt.address;
out.wsAddress = rw.address;
out.resolved = (await ws.client.resolve({ hostname: `fw-tcp-${tag}` })).address;
tcp.uplink.send(relaySend(rw.address, innerPacket(1200, 1)));
out.relayedToWs = formatAddress(readAddress(await ws.nextPacket(0x21), 1));
ws.uplink.send(relaySend(rt.address, innerPacket(1200, 2)));
out.relayedToTcp = formatAddress(readAddress(await tcp.nextPacket(0x21), 1));
tcp.close();
ws.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
