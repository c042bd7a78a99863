// One direction's key of a session, for the data path: seal or open a packet in place, with the
// nonce and associated data taken from the packet's own header. Two implementations of the same
// ChaCha20-Poly1305 (RFC 8439), byte for byte:
//   - the optional native addon (native/aead.c): OpenSSL's, inside the running Node, with the
//     cipher keyed once per session and one call per packet (~1 us less per 1,400-byte packet
//     than the fallback here, on each side: BENCHMARKS.md, issue 20);
//   - libsodium (src/crypto/aead.ts), when the addon is not built, not Linux, or PILOT_NATIVE_AEAD=0.
// Which one runs is invisible on the wire: a peer may use either.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openInto, sealInto, TAG_BYTES } from './aead.ts';

/** The layout a key works on: [ad: adBytes, with the 8-byte big-endian counter at counterAt][body][tag]. */
export interface PacketLayout {
  adBytes: number;
  counterAt: number;
}

export interface DataKey {
  /** Encrypts `packet`'s body in place and writes its tag (the header already holds the counter). */
  seal(packet: Buffer): void;
  /** Verifies the tag and decrypts the body in place; false (body zeroed) when it does not verify. */
  open(packet: Buffer): boolean;
  /** Forgets the key (the session is gone); later seals throw, later opens fail. */
  wipe(): void;
}

interface AeadBinding {
  aeadKey(key: Buffer, encrypt: boolean, adBytes: number, counterAt: number): object;
  aeadSeal(handle: object, packet: Buffer): boolean;
  aeadOpen(handle: object, packet: Buffer): boolean;
  aeadWipe(handle: object): void;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let binding: AeadBinding | null | undefined;

/** The addon, or undefined: not Linux, not built, PILOT_NATIVE_AEAD=0, or this Node has no ChaCha20-Poly1305 in OpenSSL. */
export function nativeAead(): AeadBinding | undefined {
  if (binding === undefined) binding = process.env.PILOT_NATIVE_AEAD === '0' || process.platform !== 'linux' ? null : load();
  return binding ?? undefined;
}

function load(): AeadBinding | null {
  const file = path.join(ROOT, 'build', 'Release', 'pilot_aead.node');
  if (!fs.existsSync(file)) return null;
  try {
    const b = createRequire(import.meta.url)(file) as AeadBinding;
    b.aeadWipe(b.aeadKey(Buffer.alloc(32), true, 13, 5)); // throws when OpenSSL lacks the cipher
    return b;
  } catch {
    return null; // built for another platform, or a Node without OpenSSL's symbols: libsodium it is
  }
}

/** A key for one direction: native when the addon loaded, libsodium otherwise (`impl` forces one: tests, benchmarks). */
export function dataKey(key: Buffer, encrypt: boolean, layout: PacketLayout, impl?: 'native' | 'sodium'): DataKey {
  const b = impl === 'sodium' ? undefined : nativeAead();
  if (b !== undefined) return new NativeKey(b, b.aeadKey(key, encrypt, layout.adBytes, layout.counterAt), layout.adBytes);
  if (impl === 'native') throw new Error('the native AEAD addon is not available');
  return new SodiumKey(key, layout);
}

class NativeKey implements DataKey {
  private readonly b: AeadBinding;
  private readonly handle: object;
  private readonly ad: number;

  constructor(b: AeadBinding, handle: object, adBytes: number) {
    this.b = b;
    this.handle = handle;
    this.ad = adBytes;
  }

  seal(packet: Buffer): void {
    if (!this.b.aeadSeal(this.handle, packet)) throw new Error('seal: the key was wiped');
  }

  open(packet: Buffer): boolean {
    return packet.length >= this.ad + TAG_BYTES && this.b.aeadOpen(this.handle, packet);
  }

  wipe(): void {
    this.b.aeadWipe(this.handle);
  }
}

class SodiumKey implements DataKey {
  private readonly key: Buffer;
  private readonly ad: number;
  private readonly at: number;
  private wiped = false;

  constructor(key: Buffer, layout: PacketLayout) {
    this.key = key; // the session's own copy: it zeroes it on wipe
    this.ad = layout.adBytes;
    this.at = layout.counterAt;
  }

  private counter(packet: Buffer): number {
    return packet.readUInt32BE(this.at) * 0x100000000 + packet.readUInt32BE(this.at + 4);
  }

  seal(packet: Buffer): void {
    if (this.wiped) throw new Error('seal: the key was wiped');
    const body = packet.subarray(this.ad);
    sealInto(body, this.key, this.counter(packet), body.subarray(0, body.length - TAG_BYTES), packet.subarray(0, this.ad));
  }

  open(packet: Buffer): boolean {
    if (this.wiped || packet.length < this.ad + TAG_BYTES) return false;
    const body = packet.subarray(this.ad);
    return openInto(body.subarray(0, body.length - TAG_BYTES), this.key, this.counter(packet), body, packet.subarray(0, this.ad));
  }

  wipe(): void {
    this.wiped = true;
    this.key.fill(0);
  }
}
