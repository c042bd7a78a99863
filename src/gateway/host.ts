// What the gateway and expose need from the daemon: open a stream to a
// target's virtual port (trust enforced inside), and own a virtual port.
// The daemon satisfies this structurally; nothing here imports the daemon.
import type { Duplex } from 'node:stream';
import type { Address } from '../wire/address.ts';
import type { Logger } from '../util/logger.ts';

export interface OverlayHost {
  readonly home: string;
  readonly log: Logger;
  dial(target: string, port: number): Promise<Duplex>;
  readonly ports: { listen(port: number, handler: (stream: Duplex, from: Address) => void): () => void };
}
