// One direction's key of a session, for the data path: seal or open a packet in place, with the
// nonce and associated data taken from the packet's own header. Two implementations of the same
// ChaCha20-Poly1305 (RFC 8439), byte for byte:
//   - the optional native addon (native/aead.c): OpenSSL's, inside the running Node, with the
//     cipher keyed once per session and one call per packet (~1 us less per 1,400-byte packet
//     than the fallback here, on each side: BENCHMARKS.md, issue 20);
//   - libsodium (src/crypto/aead.ts), when the addon is not built, not Linux, or PILOT_NATIVE_AEAD=0,
//     and on a CPU with AVX-512 unless OpenSSL was started with it hidden (OPENSSL_ia32cap, which
//     the daemon's launcher sets: src/os-service/daemon-command.ts DAEMON_ENV). OpenSSL's AVX-512
//     ChaCha20/Poly1305 is the fastest in isolation, but 512-bit work slows the core for everything
//     else: in the NAT lab the gateway did 13.4 ms of CPU per MB with it, 9.6 with AVX2, 11.1 with
//     libsodium (AVX2) (BENCHMARKS.md, issue 20). PILOT_NATIVE_AEAD=1 takes the addon regardless.
// Which one runs is invisible on the wire: a peer may use either.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PilotError } from '../util/errors.ts';
import { openInto, sealInto, TAG_BYTES } from './aead.ts';

/** The layout a key works on: [ad: adBytes, with the 8-byte big-endian counter at counterAt][body][tag]. */
export interface PacketLayout {
  adBytes: number;
  counterAt: number;
}

export interface DataKey {
  /** Encrypts `packet`'s body in place and writes its tag (the header already holds the counter). */
  seal(packet: Buffer): void;
  /**
   * Verifies the tag and decrypts the body in place; false when it does not verify, and then no
   * plaintext is left (libsodium checks before it decrypts; the addon zeroes what OpenSSL decrypted).
   */
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
let chosen: boolean | undefined;

/** The addon as built, or undefined: not Linux, not built, or this Node has no ChaCha20-Poly1305 in OpenSSL. */
export function aeadAddon(): AeadBinding | undefined {
  if (binding === undefined) binding = process.platform !== 'linux' ? null : load();
  return binding ?? undefined;
}

/** The addon when the data path should use it (see the top of this file), else undefined (libsodium). */
export function nativeAead(): AeadBinding | undefined {
  if (chosen === undefined) chosen = useNative(process.env, cpuFlags());
  return chosen ? aeadAddon() : undefined;
}

/** Which implementation new sessions seal with (the daemon logs it at start). */
export function dataPathAead(): 'openssl' | 'libsodium' {
  return nativeAead() !== undefined ? 'openssl' : 'libsodium';
}

/**
 * Should the data path seal through OpenSSL? `flags`: the CPU's flags (/proc/cpuinfo). Not when
 * PILOT_NATIVE_AEAD=0; always when =1; otherwise unless OpenSSL would take its AVX-512 code, i.e.
 * the CPU has AVX-512 and OPENSSL_ia32cap does not hide AVX512F (bit 16 of its second word, "~" = clear).
 */
export function useNative(env: NodeJS.ProcessEnv, flags: ReadonlySet<string>): boolean {
  if (env.PILOT_NATIVE_AEAD === '0') return false;
  if (env.PILOT_NATIVE_AEAD === '1') return true;
  if (!flags.has('avx512f')) return true;
  const word = /^[^:]*:\s*~\s*(0x[0-9a-f]+|\d+)/i.exec(env.OPENSSL_ia32cap ?? '')?.[1];
  return word !== undefined && Number(BigInt(word) & 0x10000n) !== 0;
}

function cpuFlags(): Set<string> {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'latin1').match(/^flags\s*:(.*)$/m)?.[1] ?? '';
    return new Set(line.trim().split(/\s+/));
  } catch {
    return new Set();
  }
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
  const b = impl === 'sodium' ? undefined : impl === 'native' ? aeadAddon() : nativeAead();
  if (b !== undefined) return new NativeKey(b, b.aeadKey(key, encrypt, layout.adBytes, layout.counterAt), layout.adBytes);
  if (impl === 'native') throw new PilotError('INTERNAL', 'the native AEAD addon is not available', 'npm run build:native builds it (Linux)');
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
    if (!this.b.aeadSeal(this.handle, packet)) throw new PilotError('INTERNAL', 'seal: the key was wiped');
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
    if (this.wiped) throw new PilotError('INTERNAL', 'seal: the key was wiped');
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
