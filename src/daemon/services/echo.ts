// Port 7: echo. Streams are piped back; datagrams are returned to their sender.
import type { PortTable } from '../ports.ts';

export const ECHO_PORT = 7;

export function startEcho(
  ports: PortTable,
  sendDatagram: (to: import('../../wire/address.ts').Address, srcPort: number, dstPort: number, data: Buffer) => void,
): () => void {
  const offStream = ports.listen(ECHO_PORT, (stream) => {
    stream.on('error', () => {});
    stream.pipe(stream);
  });
  const offDg = ports.onDatagram(ECHO_PORT, (dg) => sendDatagram(dg.from, ECHO_PORT, dg.srcPort, dg.data));
  return () => {
    offStream();
    offDg();
  };
}
