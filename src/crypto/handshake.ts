// Noise IK with the Ed25519 node keys as static keys. The initiator knows the
// responder's key from the registry; the responder learns the initiator's
// from message 1. The encrypted payload carries who the initiator says it is
// and a timestamp that makes a replayed message 1 useless.
import Noise from 'noise-handshake';
import curve from 'noise-curve-ed';
import type { Identity } from './identity.ts';
import { ADDRESS_BYTES, readAddress, writeAddress, type Address } from '../wire/address.ts';

const PROLOGUE = Buffer.from('pilot/1 noise IK ed25519');
export const HELLO_BYTES = ADDRESS_BYTES + 8 + 8;

export interface Hello {
  address: Address;
  bootId: Buffer;
  timestamp: number;
}

export interface HandshakeKeys {
  sendKey: Buffer;
  recvKey: Buffer;
  remoteStatic: Buffer;
}

export function encodeHello(h: Hello): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  writeAddress(b, 0, h.address);
  h.bootId.copy(b, ADDRESS_BYTES, 0, 8);
  b.writeUInt32BE(Math.floor(h.timestamp / 0x100000000), ADDRESS_BYTES + 8);
  b.writeUInt32BE(h.timestamp >>> 0, ADDRESS_BYTES + 12);
  return b;
}

export function decodeHello(b: Buffer): Hello | null {
  if (b.length !== HELLO_BYTES) return null;
  return {
    address: readAddress(b, 0),
    bootId: Buffer.from(b.subarray(ADDRESS_BYTES, ADDRESS_BYTES + 8)),
    timestamp: b.readUInt32BE(ADDRESS_BYTES + 8) * 0x100000000 + b.readUInt32BE(ADDRESS_BYTES + 12),
  };
}

function keys(n: Noise): HandshakeKeys {
  return { sendKey: Buffer.from(n.tx!), recvKey: Buffer.from(n.rx!), remoteStatic: Buffer.from(n.rs!) };
}

/** Initiator side: message 1 now, keys when message 2 arrives. */
export class IkInitiator {
  private readonly noise: Noise;
  readonly message1: Buffer;

  constructor(identity: Identity, remoteStatic: Buffer, hello: Hello) {
    this.noise = new Noise('IK', true, identity, { curve });
    this.noise.initialise(PROLOGUE, remoteStatic);
    this.message1 = this.noise.send(encodeHello(hello));
  }

  /** Returns the responder's hello and the session keys, or null if message 2 is not valid. */
  finish(message2: Buffer): { hello: Hello; keys: HandshakeKeys } | null {
    try {
      const hello = decodeHello(this.noise.recv(message2));
      if (!hello || !this.noise.complete) return null;
      return { hello, keys: keys(this.noise) };
    } catch {
      return null;
    }
  }
}

/** Responder side: read message 1; if accepted, answer with message 2. */
export function respondIk(identity: Identity, message1: Buffer, ownHello: Hello): { hello: Hello; keys: HandshakeKeys; message2: Buffer } | null {
  try {
    const noise = new Noise('IK', false, identity, { curve });
    noise.initialise(PROLOGUE);
    const hello = decodeHello(noise.recv(message1));
    if (!hello) return null;
    const message2 = noise.send(encodeHello(ownHello));
    if (!noise.complete) return null;
    return { hello, keys: keys(noise), message2 };
  } catch {
    return null;
  }
}
