// The raw-TCP reference for the daemon's discard sink (port 9): read to the
// peer's FIN, answer with the byte count (u64), close.
import net from 'node:net';

export function createCountingSink(): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    let total = 0;
    s.on('data', (c: Buffer) => (total += c.length));
    s.on('end', () => {
      const reply = Buffer.alloc(8);
      reply.writeBigUInt64BE(BigInt(total));
      s.end(reply);
    });
    s.on('error', () => {});
  });
}
