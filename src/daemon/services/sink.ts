// Port 9: discard sink used by `pilotctl bench`. Reads until the peer's FIN,
// then answers with the byte count (u64) so the sender knows all bytes arrived.
import type { PortTable } from '../ports.ts';

export const SINK_PORT = 9;

export function startSink(ports: PortTable): () => void {
  return ports.listen(SINK_PORT, (stream) => {
    let total = 0;
    stream.on('error', () => {});
    stream.on('data', (chunk: Buffer) => {
      total += chunk.length;
    });
    stream.on('end', () => {
      const reply = Buffer.alloc(8);
      reply.writeBigUInt64BE(BigInt(total));
      stream.end(reply);
    });
  });
}
