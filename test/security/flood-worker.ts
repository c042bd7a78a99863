// Worker thread for the registry flood tests: validly signed registry requests
// from throwaway, never-registered keys, sent from several loopback source
// addresses (each under the per-source request limit), paced to `rate` per
// second in total. Runs off the main thread so signing does not slow the
// rendezvous under test (which lives in the main thread's event loop).
import dgram from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import { buildRequest } from '../../src/registry/envelope.ts';
import { generateIdentity } from '../../src/registry/signing.ts';

export interface FloodSpec {
  port: number;
  serverKey: string; // base64
  ips: string[];
  rate: number;
  durationMs: number;
  keysPerIp: number;
  /** Timestamp offset of every request (ms, positive = dated in the future). */
  futureMs: number;
  method: string;
}

const spec = workerData as FloodSpec;
const serverKey = Buffer.from(spec.serverKey, 'base64');
const socks = await Promise.all(
  spec.ips.map(
    (ip) =>
      new Promise<dgram.Socket>((resolve) => {
        const s = dgram.createSocket('udp4');
        s.on('error', () => {});
        s.bind(0, ip, () => resolve(s));
      }),
  ),
);
const keys = spec.ips.map(() => Array.from({ length: spec.keysPerIp }, () => generateIdentity()));
let sent = 0;
const start = Date.now();
const tickMs = 10;
await new Promise<void>((done) => {
  const t = setInterval(() => {
    const now = Date.now();
    if (now - start >= spec.durationMs) {
      clearInterval(t);
      done();
      return;
    }
    const due = Math.floor(((now - start) / 1000) * spec.rate) - sent;
    for (let i = 0; i < due; i++, sent++) {
      const k = sent % socks.length;
      const id = keys[k]![Math.floor(sent / socks.length) % spec.keysPerIp]!;
      const req = buildRequest(id, serverKey, spec.method, spec.method === 'register' ? { email: 'x@example.com' } : {}, now + spec.futureMs);
      socks[k]!.send(req.packet, spec.port, '127.0.0.1');
    }
  }, tickMs);
});
for (const s of socks) s.close();
parentPort!.postMessage({ sent, ms: Date.now() - start });
