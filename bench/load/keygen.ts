// Ed25519 identities for simulated nodes, generated on a pool of worker
// threads (~40 µs each with libsodium: 100k keys is ~4 s of CPU on one core).
// Workers return the 64-byte libsodium secret keys (seed || public key) in one
// transferred buffer; the main thread rebuilds nothing, it only slices.
import os from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { generateIdentity, SECRET_KEY_BYTES, type Identity } from '../../src/crypto/identity.ts';

function generate(count: number): ArrayBuffer {
  const out = new Uint8Array(count * SECRET_KEY_BYTES);
  for (let i = 0; i < count; i++) out.set(generateIdentity().secretKey, i * SECRET_KEY_BYTES);
  return out.buffer;
}

/** `count` fresh identities, generated on `threads` workers (default: one per core). */
export async function generateIdentities(count: number, threads = os.cpus().length): Promise<Identity[]> {
  const n = Math.max(1, Math.min(threads, Math.ceil(count / 1000)));
  const shares = Array.from({ length: n }, (_, i) => Math.floor(count / n) + (i < count % n ? 1 : 0));
  const parts = await Promise.all(
    shares.map(
      (share) =>
        new Promise<ArrayBuffer>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), { workerData: { count: share } });
          w.once('message', (buf: ArrayBuffer) => resolve(buf));
          w.once('error', reject);
          w.once('exit', (code) => code !== 0 && reject(new Error(`keygen worker exited ${code}`)));
        }),
    ),
  );
  const ids: Identity[] = [];
  for (const buf of parts) {
    const all = Buffer.from(buf);
    for (let off = 0; off < all.length; off += SECRET_KEY_BYTES) {
      const secretKey = all.subarray(off, off + SECRET_KEY_BYTES);
      ids.push({ secretKey, publicKey: secretKey.subarray(32) });
    }
  }
  return ids;
}

if (!isMainThread && parentPort && (workerData as { count?: unknown })?.count !== undefined) {
  const buf = generate((workerData as { count: number }).count);
  parentPort.postMessage(buf, [buf]);
}
