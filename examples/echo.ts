// Echo over the overlay.
//   node examples/echo.ts serve [port]                 echo every stream back (default port 7000)
//   node examples/echo.ts <target> [port] [message]    send a message, print the reply
// The daemon is found through PILOT_SOCKET (default: its private socket, see docs/CONFIG.md).
import { connect, type PilotError } from 'pilot-overlay/sdk';

const [cmd, portArg, ...rest] = process.argv.slice(2);
if (!cmd) {
  console.error('usage: echo.ts serve [port] | echo.ts <target> [port] [message]');
  process.exit(2);
}
const port = Number(portArg ?? 7000);

try {
  const node = await connect();
  if (cmd === 'serve') {
    const server = await node.listen(port, (sock) => {
      console.log(`connection from ${sock.remoteAddress}`);
      sock.on('error', (err) => console.log(`stream error ${(err as PilotError).code}`));
      sock.pipe(sock); // backpressure and half-close come with pipe()
    });
    console.log(`echo listening on ${node.address} port ${port}`);
    const stop = async (): Promise<void> => {
      await server.close();
      await node.close();
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } else {
    const sock = await node.dial(cmd, port);
    sock.end(rest.join(' ') || 'hello over pilot');
    let reply = '';
    for await (const chunk of sock) reply += chunk;
    console.log(`reply from ${sock.remoteAddress}: ${reply}`);
    await node.close();
  }
} catch (err) {
  const e = err as PilotError;
  console.error(`error ${e.code ?? ''}: ${e.message}${e.hint ? ` (${e.hint})` : ''}`);
  process.exit(1);
}
