// The TypeScript side of the Python tests (python/tests), run by them as a
// child process: it dials a Python listener, or fetches from a Python HTTP
// server, with the TypeScript SDK, and prints one JSON line with the result.
//   node test/python/ts-peer.ts echo <socket> <target> <port> <bytes>
//   node test/python/ts-peer.ts fetch <socket> <url>
import crypto from 'node:crypto';
import { connect, pilotFetch } from '../../src/sdk/index.ts';

const [cmd, socket, ...args] = process.argv.slice(2);
const node = await connect({ socket: socket! });
try {
  if (cmd === 'echo') {
    const [target, port, bytes] = args;
    const size = Number(bytes);
    const s = await node.dial(target!, Number(port));
    const sent = crypto.createHash('sha256');
    const back = crypto.createHash('sha256');
    let got = 0;
    const done = new Promise<void>((resolve, reject) => {
      s.on('data', (c: Buffer) => {
        got += c.length;
        back.update(c);
      });
      s.once('end', resolve);
      s.once('error', reject);
    });
    const chunk = 64 * 1024;
    for (let off = 0; off < size; off += chunk) {
      const buf = crypto.randomBytes(Math.min(chunk, size - off));
      sent.update(buf);
      if (!s.write(buf)) await new Promise((r) => s.once('drain', r));
    }
    s.end();
    await done;
    console.log(JSON.stringify({ sent: sent.digest('hex'), back: back.digest('hex'), bytes: got }));
  } else if (cmd === 'fetch') {
    const res = await pilotFetch(node)(args[0]!);
    const body = await res.text();
    console.log(JSON.stringify({ status: res.status, body, type: res.headers.get('content-type') }));
  } else throw new Error(`unknown command ${cmd}`);
} finally {
  await node.close();
}
