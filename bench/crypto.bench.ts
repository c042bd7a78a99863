// Per-packet AEAD: the data path's key (src/crypto/data-key.ts: OpenSSL through the native
// addon, or libsodium), libsodium's in-place call and node:crypto, in the same run, alternating;
// the full session data path (SessionManager seal + open); and Noise IK handshakes/s.
// Env: BENCH_AEAD_N (packets), BENCH_HS_N (handshakes).
import crypto from 'node:crypto';
import { openInto, sealInto, TAG_BYTES } from '../src/crypto/aead.ts';
import { aeadAddon, dataKey } from '../src/crypto/data-key.ts';
import { IkInitiator, respondIk } from '../src/crypto/handshake.ts';
import { generateIdentity } from '../src/crypto/identity.ts';
import { SessionManager } from '../src/crypto/session-manager.ts';

const SIZE = 1200;
const N = Number(process.env.BENCH_AEAD_N ?? 200_000);
const HS = Number(process.env.BENCH_HS_N ?? 500);
const key = crypto.randomBytes(32);
const pt = crypto.randomBytes(SIZE);

const secs = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;
const fmt = (s: number, n = N): string => `${Math.round(n / s).toLocaleString('en')} seal+open/s, ${((n * SIZE) / 1e6 / s).toFixed(0)} MB/s`;

/** libsodium, in place inside one packet buffer, exactly as the session layer does it. */
function sodiumRun(): number {
  const pkt = Buffer.alloc(13 + SIZE + TAG_BYTES);
  const ad = pkt.subarray(0, 13);
  const body = pkt.subarray(13);
  const plain = body.subarray(0, SIZE);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    pt.copy(plain);
    sealInto(body, key, i, plain, ad);
    if (!openInto(plain, key, i, body, ad)) throw new Error('open failed');
  }
  return secs(t0);
}

/** The data path's key pair (seal, then open the same packet in place), as SecureSession uses it. */
function dataKeyRun(impl: 'native' | 'sodium'): number {
  const layout = { adBytes: 13, counterAt: 5 };
  const sealer = dataKey(Buffer.from(key), true, layout, impl);
  const opener = dataKey(Buffer.from(key), false, layout, impl);
  const pkt = Buffer.alloc(13 + SIZE + TAG_BYTES);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    pt.copy(pkt, 13);
    pkt.writeUInt32BE(i, 9);
    sealer.seal(pkt);
    if (!opener.open(pkt)) throw new Error('open failed');
  }
  return secs(t0);
}

/** node:crypto (OpenSSL) reference: a cipher object per packet is its API. */
function nodeRun(): number {
  const nonce = Buffer.alloc(12);
  const ad = Buffer.alloc(13);
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
  return secs(t0);
}

/** Two SessionManagers back to back: sendTo -> packet -> handlePacket -> 'message'. */
async function sessionRun(): Promise<number> {
  let b!: SessionManager<string>;
  let got = 0;
  const idA = generateIdentity();
  const idB = generateIdentity();
  const addrA = { network: 0, node: 1 };
  const addrB = { network: 0, node: 2 };
  const a = new SessionManager<string>({ identity: idA, localAddress: addrA, bootId: crypto.randomBytes(8), send: (_k, p) => b.handlePacket(p, 'a') });
  b = new SessionManager<string>({ identity: idB, localAddress: addrB, bootId: crypto.randomBytes(8), send: (_k, p) => a.handlePacket(p, 'b') });
  b.on('message', () => got++);
  const peer = { address: addrB, publicKey: idB.publicKey };
  a.sendTo(peer, pt); // handshake (synchronous link)
  if (got !== 1) throw new Error('session did not come up');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) a.sendTo(peer, pt);
  const s = secs(t0);
  if (got !== N + 1) throw new Error(`lost packets: ${got - 1}/${N}`);
  a.destroy();
  b.destroy();
  return s;
}

function handshakes(n: number): number {
  const a = generateIdentity();
  const b = generateIdentity();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const h = { address: { network: 0, node: 1 }, bootId: Buffer.alloc(8), timestamp: i };
    const init = new IkInitiator(a, b.publicKey, h);
    const r = respondIk(b, init.message1, h);
    if (!r || !init.finish(r.message2)) throw new Error('handshake failed');
  }
  return n / secs(t0);
}

const native = aeadAddon() !== undefined;
sodiumRun(); // warm up
if (native) dataKeyRun('native');
const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
const runs: { native: number[]; sodium: number[] } = { native: [], sodium: [] };
for (let r = 0; r < 3; r++) {
  runs.sodium.push(dataKeyRun('sodium'));
  if (native) runs.native.push(dataKeyRun('native'));
}
const s = sodiumRun();
const nd = nodeRun();
const sess = await sessionRun();
console.log(`AEAD ChaCha20-Poly1305, ${SIZE}-byte packets, ${N.toLocaleString('en')} packets, one core`);
if (native)
  console.log(`  data key, native addon (OpenSSL, used): ${fmt(med(runs.native))}   -> ${(med(runs.sodium) / med(runs.native)).toFixed(2)}x libsodium's`);
else console.log('  data key, native addon: not built (npm run build:native)');
console.log(`  data key, libsodium (fallback):   ${fmt(med(runs.sodium))}`);
console.log(`  sodium-native call, in place:     ${fmt(s)}`);
console.log(`  node:crypto (reference):         ${fmt(nd)}   -> libsodium in place is ${(nd / s).toFixed(1)}x`);
console.log(`  SessionManager sendTo->message:  ${fmt(sess)}   (framing, replay window, events)`);
console.log(`Noise IK handshakes (both sides, one core): ${Math.round(handshakes(HS)).toLocaleString('en')}/s`);
