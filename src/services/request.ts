// The client half of every service: open a stream to a peer's service port,
// send the request frame, read the first answer. A stream reset before that
// answer is retried once: it is what a stream opened just as the peer's
// restart is discovered gets (the old connection is reset and the request
// never reached the new instance), and every first request is safe to repeat.
import { PilotError } from '../util/errors.ts';
import { ByteReader, MAX_FRAME, encodeFrame, expectOk, withTimeout } from './framing.ts';
import type { ServiceHost, ServiceStream } from './host.ts';

const ANSWER_TIMEOUT_MS = 30_000;

export interface Exchange {
  stream: ServiceStream;
  reader: ByteReader;
  peer: string;
  answer: Record<string, unknown>;
}

export async function ask(
  host: ServiceHost,
  target: string,
  port: number,
  request: unknown,
  opts: { what: string; end?: boolean; maxAnswer?: number },
): Promise<Exchange> {
  for (let attempt = 0; ; attempt++) {
    const { stream, peer } = await host.dial(target, port);
    stream.on('error', () => {});
    const reader = new ByteReader(stream);
    try {
      const frame = encodeFrame(request);
      if (opts.end) stream.end(frame);
      else stream.write(frame);
      const answer = expectOk(await withTimeout(reader.readFrame(opts.maxAnswer ?? MAX_FRAME), ANSWER_TIMEOUT_MS, 'the peer answering'), opts.what);
      return { stream, reader, peer, answer };
    } catch (err) {
      stream.destroy();
      if (attempt === 0 && err instanceof PilotError && err.code === 'CONNECTION_RESET') {
        host.log.info({ peer, err: err.message }, 'service stream reset before the answer: retrying once');
        continue;
      }
      throw err;
    }
  }
}
