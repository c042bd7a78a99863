// Per-packet AEAD: libsodium (what Pilot uses) vs node:crypto, same run; and Noise IK handshakes/s.
import crypto from 'node:crypto';
import { sealInto, open } from '../src/crypto/aead.ts';
import { IkInitiator, respondIk } from '../src/crypto/handshake.ts';
import { generateIdentity } from '../src/crypto/identity.ts';

const SIZE = 1200;
const N = Number(process.env.BENCH_AEAD_N ?? 200_000);
const key = crypto.randomBytes(32);
const ad = Buffer.alloc(13);
const pt = crypto.randomBytes(SIZE);

function sodiumRun(): number {
  const ct = Buffer.alloc(SIZE + 16);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    sealInto(ct, key, i, pt, ad);
    if (!open(key, i, ct, ad)) throw new Error('open failed');
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function nodeRun(): number {
  const nonce = Buffer.alloc(12);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    nonce.writeUInt32BE(i, 8);
    const c = crypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.setAAD(ad, { plaintextLength: SIZE });
    const ct = Buffer.concat([c.update(pt), c.final()]);
    const tag = c.getAuthTag();
    const d = crypto.createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    d.setAAD(ad, { plaintextLength: SIZE });
    d.setAuthTag(tag);
    Buffer.concat([d.update(ct), d.final()]);
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function handshakes(n: number): number {
  const a = generateIdentity();
  const b = generateIdentity();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const h = { address: { network: 0, node: 1 }, bootId: Buffer.alloc(8), timestamp: i };
    const init = new IkInitiator(a, b.publicKey, h);
    const r = respondIk(b, init.message1, h)!;
    if (!init.finish(r.message2)) throw new Error('handshake failed');
  }
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const s = sodiumRun();
const nd = nodeRun();
const fmt = (secs: number): string => `${Math.round(N / secs).toLocaleString('en')} seal+open/s, ${((N * SIZE) / 1e6 / secs).toFixed(0)} MB/s`;
console.log(`AEAD ChaCha20-Poly1305, ${SIZE}-byte packets, ${N} packets`);
console.log(`  sodium-native (used):      ${fmt(s)}`);
console.log(`  node:crypto (reference):   ${fmt(nd)}   -> sodium is ${(nd / s).toFixed(1)}x`);
console.log(`Noise IK handshakes (both sides, one core): ${Math.round(handshakes(500)).toLocaleString('en')}/s`);
