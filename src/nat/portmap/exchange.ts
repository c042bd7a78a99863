// One request/response exchange with the gateway over a connected UDP socket:
// the kernel then delivers only datagrams from the gateway's address and port,
// and an ICMP "port unreachable" (nothing listens there) ends it at once
// instead of after every retry. Bounded: a silent gateway costs the sum of the
// timeouts, never a hang.
import dgram from 'node:dgram';

export type ExchangeOutcome<T> = { ok: true; value: T } | { ok: false; why: 'timeout' | 'refused' | 'error'; detail?: string };

export interface ExchangeOptions<T> {
  gateway: string;
  port: number;
  /** The request, given our own address as the gateway sees it (PCP carries it). */
  request(localIp: string): Buffer;
  /** Our response, or undefined (not ours: ignored, we keep waiting). */
  accept(msg: Buffer): T | undefined;
  /** Wait this long after each (re)send; RFC 6886 starts at 250 ms and doubles. */
  timeoutsMs: readonly number[];
  /** Datagrams that came but were not ours (wrong nonce, port, size): counted for status. */
  ignored?: () => void;
}

export function exchange<T>(o: ExchangeOptions<T>): Promise<ExchangeOutcome<T>> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    let attempt = 0;
    let request: Buffer | undefined;
    const finish = (r: ExchangeOutcome<T>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        sock.close();
      } catch {
        // already closed
      }
      resolve(r);
    };
    const send = (): void => {
      if (done || request === undefined) return;
      if (attempt >= o.timeoutsMs.length) return finish({ ok: false, why: 'timeout' });
      const wait = o.timeoutsMs[attempt++]!;
      sock.send(request);
      timer = setTimeout(send, wait);
    };
    sock.on('error', (err: NodeJS.ErrnoException) =>
      finish({ ok: false, why: err.code === 'ECONNREFUSED' ? 'refused' : 'error', detail: err.code ?? err.message }),
    );
    sock.on('message', (msg, rinfo) => {
      if (rinfo.address !== o.gateway || rinfo.port !== o.port) return o.ignored?.();
      const v = o.accept(msg);
      if (v === undefined) return o.ignored?.();
      finish({ ok: true, value: v });
    });
    sock.connect(o.port, o.gateway, () => {
      request = o.request(sock.address().address);
      send();
    });
  });
}
