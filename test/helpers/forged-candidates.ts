// Run as a process (inside a test's namespace): an attacker node that opens a
// session with a public daemon (an echo request, which anyone may send) and
// then keeps announcing someone else's endpoints as its own, with nat "edm"
// so that the target would start birthday probing toward them.
// argv: <home> <registry host:port> <listen host:port> <target address> <victim ip> <seconds>
import fs from 'node:fs';
import path from 'node:path';
import { Daemon } from '../../src/daemon/daemon.ts';
import * as v from 'valibot';
import { DaemonConfigSchema } from '../../src/daemon/config.ts';
import { encodeCandidates } from '../../src/nat/inner.ts';
import { parseAddress } from '../../src/wire/address.ts';
import { silentLogger } from '../../src/util/logger.ts';

const [home, registry, listen, targetText, victim, secondsText] = process.argv.slice(2) as [string, string, string, string, string, string];
fs.mkdirSync(home, { recursive: true, mode: 0o700 });
const config = v.parse(DaemonConfigSchema, { registry, email: 'attacker@example.com', listen, socket: path.join(home, 'pilot.sock') });
const d = await Daemon.start({ home, config, logger: silentLogger() });
const target = parseAddress(targetText);
const port = d.ports.ephemeral();
let echoes = 0;
d.ports.onDatagram(port, () => echoes++);
const end = Date.now() + Number(secondsText) * 1000;
const forged = encodeCandidates({ eps: [`${victim}:53`, `${victim}:123`, `${victim}:443`, '10.77.0.5:53'], nat: 'edm', reply: true });
let sent = 0;
while (Date.now() < end) {
  await d.sendDatagram(target, port, 7, Buffer.from('ping')); // the session anyone may have with a public node
  const peer = await d.peerFor(target);
  // A path message inside the authenticated session, as a modified daemon sends it.
  (d as unknown as { sessions: { sendTo(p: { address: unknown; publicKey: Buffer }, m: Buffer): void } }).sessions.sendTo(
    { address: peer.address, publicKey: peer.publicKey },
    forged,
  );
  sent++;
  await new Promise((r) => setTimeout(r, 1000));
}
process.stdout.write(JSON.stringify({ forged: sent, echoes }) + '\n');
await d.stop();
process.exit(0);
