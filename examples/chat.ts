// A line chat over the overlay.
//   node examples/chat.ts listen [port]       accept chatters; lines typed here go to all of them
//   node examples/chat.ts <target> [port]     chat with a listener (end with Ctrl-D)
// Lines from peers are printed as "[address] text". PILOT_SOCKET picks the daemon.
import readline from 'node:readline';
import { connect, type PilotError, type PilotSocket } from 'pilot-overlay/sdk';

const [cmd, portArg] = process.argv.slice(2);
if (!cmd) {
  console.error('usage: chat.ts listen [port] | chat.ts <target> [port]');
  process.exit(2);
}
const port = Number(portArg ?? 7001);

/** Print every line the peer sends; resolves when it hangs up. */
function printLines(sock: PilotSocket): Promise<void> {
  const lines = readline.createInterface({ input: sock });
  lines.on('line', (line) => console.log(`[${sock.remoteAddress}] ${line}`));
  return new Promise((resolve) => {
    sock.on('error', (err) => console.log(`(${sock.remoteAddress}: ${(err as PilotError).code})`));
    sock.on('close', () => resolve());
  });
}

try {
  const node = await connect();
  const stdin = readline.createInterface({ input: process.stdin });
  if (cmd === 'listen') {
    const peers = new Set<PilotSocket>();
    await node.listen(port, (sock) => {
      peers.add(sock);
      console.log(`* ${sock.remoteAddress} joined`);
      void printLines(sock).then(() => {
        peers.delete(sock);
        console.log(`* ${sock.remoteAddress} left`);
      });
      sock.on('end', () => sock.end()); // they hung up: so do we
    });
    console.log(`chat listening on ${node.address} port ${port}`);
    stdin.on('line', (line) => {
      for (const p of peers) p.write(`${line}\n`);
    });
    const stop = async (): Promise<void> => {
      await node.close();
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } else {
    const sock = await node.dial(cmd, port);
    console.log(`* connected to ${sock.remoteAddress} (${sock.remoteHostname ?? 'no hostname'})`);
    stdin.on('line', (line) => sock.write(`${line}\n`));
    stdin.on('close', () => sock.end()); // Ctrl-D: half-close, still print what comes back
    await printLines(sock);
    console.log('* bye');
    await node.close();
    process.exit(0);
  }
} catch (err) {
  const e = err as PilotError;
  console.error(`error ${e.code ?? ''}: ${e.message}${e.hint ? ` (${e.hint})` : ''}`);
  process.exit(1);
}
