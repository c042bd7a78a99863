// The same-run reference of the loopback benches: one kernel TCP stream of `bytes` on 127.0.0.1,
// timed from connect to the receiver's close. Returns the seconds it took.
import crypto from 'node:crypto';
import net from 'node:net';

export async function tcpLoopbackSeconds(bytes: number): Promise<number> {
  const server = net.createServer((s) => {
    s.on('data', () => {});
    s.on('end', () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const block = crypto.randomBytes(64 * 1024);
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const c = net.connect(port, '127.0.0.1', async () => {
      for (let n = 0; n < bytes; n += block.length) {
        if (!c.write(block)) await new Promise((r) => c.once('drain', r));
      }
      c.end();
    });
    c.on('data', () => {});
    c.on('close', () => resolve());
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  server.close();
  return secs;
}
