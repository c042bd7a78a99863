// HTTP over the overlay, no root and no gateway.
//   node examples/http.ts serve [port]                 an http.Server on a virtual port (default 80)
//   node examples/http.ts get <target> [port] [path]   pilotFetch() it, then http.get() it
// The URL's host is the Pilot target (hostname, or an address written 0-0000-0000-002a).
import http from 'node:http';
import { connect, serveHttp, pilotFetch, PilotHttpAgent, type PilotError } from 'pilot-overlay/sdk';

const [cmd, ...args] = process.argv.slice(2);

try {
  const node = await connect();
  if (cmd === 'serve') {
    const port = Number(args[0] ?? 80);
    const server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      // req.socket.remoteAddress is the caller's Pilot address, authenticated by the overlay
      res.end(JSON.stringify({ hello: `from ${node.hostname ?? node.address}`, you: req.socket.remoteAddress, path: req.url }));
    });
    const svc = await serveHttp(node, port, server);
    console.log(`http listening on ${node.address} port ${port}`);
    const stop = async (): Promise<void> => {
      await svc.close();
      await node.close();
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } else if (cmd === 'get' && args[0]) {
    const [target, port = '80', path = '/'] = args;
    const url = `http://${target}:${port}${path}`;

    const fetch = pilotFetch(node); // the global fetch, its connections over the overlay
    const res = await fetch(url);
    console.log(`fetch ${res.status}: ${await res.text()}`);
    await fetch.close();

    const agent = new PilotHttpAgent(node);
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get(url, { agent }, (r) => {
          let b = '';
          r.on('data', (c) => (b += c));
          r.on('end', () => resolve(`${r.statusCode}: ${b}`));
        })
        .on('error', reject);
    });
    console.log(`http.get ${body}`);
    agent.destroy();
    await node.close();
  } else {
    console.error('usage: http.ts serve [port] | http.ts get <target> [port] [path]');
    process.exit(2);
  }
} catch (err) {
  const e = err as PilotError;
  console.error(`error ${e.code ?? ''}: ${e.message}${e.hint ? ` (${e.hint})` : ''}`);
  process.exit(1);
}
