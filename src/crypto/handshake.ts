// Noise IK with the Ed25519 node keys as static keys. The initiator knows the
// responder's key from the registry; the responder learns the initiator's
// from message 1. The encrypted payload ("hello") carries who the sender says
// it is, its boot id and a timestamp that makes a replayed message 1 useless.
import Noise from 'noise-handshake';
import curve from 'noise-curve-ed';
import type { Identity } from './identity.ts';
import { ADDRESS_BYTES, readAddress, writeAddress, type Address } from '../wire/address.ts';

const PROLOGUE = Buffer.from('pilot/1 noise IK ed25519');
export const BOOT_ID_BYTES = 8;
/** [6-byte address][8-byte bootId][u64 timestamp ms] */
export const HELLO_BYTES = ADDRESS_BYTES + BOOT_ID_BYTES + 8;
const PK = 32;
const MAC = 16;
/** e, encrypted s, encrypted hello. */
export const MSG1_BYTES = PK + (PK + MAC) + (HELLO_BYTES + MAC);
/** e, encrypted hello. */
export const MSG2_BYTES = PK + (HELLO_BYTES + MAC);

export interface Hello {
  address: Address;
  bootId: Buffer; // 8 bytes
  timestamp: number; // ms, strictly increasing per sender
}

/** Everything a finished handshake yields, from this side's point of view. */
export interface HandshakeResult {
  sendKey: Buffer; // 32 bytes
  recvKey: Buffer; // 32 bytes
  remoteStatic: Buffer;
  address: Address;
  bootId: Buffer;
  timestamp: number;
}

export function encodeHello(h: Hello): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  writeAddress(b, 0, h.address);
  h.bootId.copy(b, ADDRESS_BYTES, 0, BOOT_ID_BYTES);
  b.writeUInt32BE(Math.floor(h.timestamp / 0x100000000), ADDRESS_BYTES + BOOT_ID_BYTES);
  b.writeUInt32BE(h.timestamp >>> 0, ADDRESS_BYTES + BOOT_ID_BYTES + 4);
  return b;
}

export function decodeHello(b: Buffer): Hello | null {
  if (b.length !== HELLO_BYTES) return null;
  const hi = b.readUInt32BE(ADDRESS_BYTES + BOOT_ID_BYTES);
  if (hi >= 0x200000) return null; // beyond 2^53: not a millisecond clock
  return {
    address: readAddress(b, 0),
    bootId: Buffer.from(b.subarray(ADDRESS_BYTES, ADDRESS_BYTES + BOOT_ID_BYTES)),
    timestamp: hi * 0x100000000 + b.readUInt32BE(ADDRESS_BYTES + BOOT_ID_BYTES + 4),
  };
}

function result(n: Noise, hello: Hello): HandshakeResult {
  return {
    // Copies: noise-handshake hands out views of its own buffers.
    sendKey: Buffer.from(n.tx!),
    recvKey: Buffer.from(n.rx!),
    remoteStatic: Buffer.from(n.rs!),
    address: hello.address,
    bootId: hello.bootId,
    timestamp: hello.timestamp,
  };
}

/** Initiator side: message 1 at construction, the result when message 2 arrives. */
export class IkInitiator {
  private readonly noise: Noise;
  private used = false;
  readonly message1: Buffer;

  /** Throws if `remoteStatic` is not a usable Ed25519 public key. */
  constructor(identity: Identity, remoteStatic: Buffer, hello: Hello) {
    this.noise = new Noise('IK', true, identity, { curve });
    this.noise.initialise(PROLOGUE, remoteStatic);
    this.message1 = this.noise.send(encodeHello(hello));
  }

  /** The responder's result, or null if message 2 is not valid. Single use: the Noise state is consumed. */
  finish(message2: Buffer): HandshakeResult | null {
    if (this.used || message2.length !== MSG2_BYTES) return null;
    this.used = true;
    try {
      // Copy: noise-handshake zeroes parts of the message buffer when it completes.
      const hello = decodeHello(this.noise.recv(Buffer.from(message2)));
      if (!hello || !this.noise.complete) return null;
      return result(this.noise, hello);
    } catch {
      return null;
    }
  }
}

/**
 * Responder side in two steps, so the caller can vet the initiator (timestamp,
 * registry binding) before spending the DH operations of message 2.
 */
export class IkResponder {
  private readonly noise: Noise;
  private replied = false;
  readonly remoteStatic: Buffer;
  readonly remote: Hello;

  private constructor(noise: Noise, remote: Hello) {
    this.noise = noise;
    this.remoteStatic = Buffer.from(noise.rs!);
    this.remote = remote;
  }

  /** Read message 1; null unless it is a valid IK message 1 addressed to `identity`. */
  static read(identity: Identity, message1: Buffer): IkResponder | null {
    if (message1.length !== MSG1_BYTES) return null;
    try {
      const noise = new Noise('IK', false, identity, { curve });
      noise.initialise(PROLOGUE);
      const hello = decodeHello(noise.recv(Buffer.from(message1)));
      if (!hello || !noise.rs) return null;
      return new IkResponder(noise, hello);
    } catch {
      return null;
    }
  }

  /** Message 2 and the session keys; null if it cannot be produced (called twice, bad state). */
  reply(ownHello: Hello): { message2: Buffer; result: HandshakeResult } | null {
    if (this.replied) return null;
    this.replied = true;
    try {
      const message2 = this.noise.send(encodeHello(ownHello));
      if (!this.noise.complete) return null;
      return { message2, result: result(this.noise, this.remote) };
    } catch {
      return null;
    }
  }
}

/** One-shot responder (tests, benchmarks). */
export function respondIk(identity: Identity, message1: Buffer, ownHello: Hello): { message2: Buffer; result: HandshakeResult } | null {
  return IkResponder.read(identity, message1)?.reply(ownHello) ?? null;
}
