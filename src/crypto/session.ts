// One secure session: the per-direction keys of one finished handshake, the
// send counter and the receive replay window. It only frames and (de)crypts
// 0x12 Data packets; which session to use when is the SessionManager's job.
//
//   0x12 [type][u32 receiverIndex][u64 counter][ciphertext + 16-byte tag]
//   The 13-byte header is the AEAD associated data; nonce = 0x00000000 || counter.
import sodium from 'sodium-native';
import { PacketType } from '../wire/packet-types.ts';
import { TAG_BYTES } from './aead.ts';
import { type DataKey, dataKey, type PacketLayout } from './data-key.ts';
import { ReplayWindow } from './replay-window.ts';
import type { HandshakeResult } from './handshake.ts';

export const DATA_HEADER_BYTES = 13;
/** Hard limit: no counter at or above this is ever sent or accepted (far below the 2^64 nonce space). */
export const REJECT_AFTER_MESSAGES = 2 ** 48;
/** Soft limit: start a rekey well before the hard one. */
export const REKEY_AFTER_MESSAGES = 2 ** 47;
/** The header is the associated data; the counter in it is the nonce. */
const LAYOUT: PacketLayout = { adBytes: DATA_HEADER_BYTES, counterAt: 5 };

export type SessionRole = 'initiator' | 'responder';
export type OpenFailure = 'replay' | 'auth';

export interface SessionInit {
  localIndex: number;
  remoteIndex: number;
  role: SessionRole;
  keys: HandshakeResult;
  created: number;
  /** Last moment this session may encrypt. */
  sendUntil: number;
  /** Last moment this session may decrypt (lowered when it is retired). */
  recvUntil: number;
}

export class SecureSession {
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly role: SessionRole;
  readonly created: number;
  readonly remoteBootId: Buffer;
  readonly remoteTimestamp: number;
  readonly sendUntil: number;
  recvUntil: number;
  /** Initiator: at once (it saw message 2). Responder: once a packet authenticated on it. */
  confirmed: boolean;
  sendCounter = 0;
  bytesSent = 0;
  readonly window = new ReplayWindow();
  private readonly sendKey: Buffer;
  private readonly recvKey: Buffer;
  private readonly sealer: DataKey;
  private readonly opener: DataKey;

  constructor(init: SessionInit) {
    this.localIndex = init.localIndex;
    this.remoteIndex = init.remoteIndex;
    this.role = init.role;
    this.created = init.created;
    this.sendUntil = init.sendUntil;
    this.recvUntil = init.recvUntil;
    this.remoteBootId = init.keys.bootId;
    this.remoteTimestamp = init.keys.timestamp;
    this.confirmed = init.role === 'initiator';
    this.sendKey = init.keys.sendKey;
    this.recvKey = init.keys.recvKey;
    this.sealer = dataKey(this.sendKey, true, LAYOUT);
    this.opener = dataKey(this.recvKey, false, LAYOUT);
  }

  /** May this session still encrypt at `now`? */
  canSend(now: number): boolean {
    return now < this.sendUntil && this.sendCounter < REJECT_AFTER_MESSAGES;
  }

  /**
   * Encrypt in place: `packet` is [13 bytes of room][plaintext][16 bytes of room].
   * Writes the header, seals the middle, returns the plaintext length.
   */
  sealInPlace(packet: Buffer): number {
    const len = packet.length - DATA_HEADER_BYTES - TAG_BYTES;
    const c = this.sendCounter++;
    packet[0] = PacketType.Data;
    packet.writeUInt32BE(this.remoteIndex, 1);
    packet.writeUInt32BE(Math.floor(c / 0x100000000), 5);
    packet.writeUInt32BE(c >>> 0, 9);
    this.sealer.seal(packet);
    this.bytesSent += len;
    return len;
  }

  /** A new Data packet carrying `plaintext` (one allocation: the packet itself). */
  seal(plaintext: Buffer): Buffer {
    const packet = Buffer.allocUnsafe(DATA_HEADER_BYTES + plaintext.length + TAG_BYTES);
    plaintext.copy(packet, DATA_HEADER_BYTES);
    this.sealInPlace(packet);
    return packet;
  }

  /**
   * Authenticate and decrypt a Data packet addressed to this session, in place.
   * Returns the plaintext (a view into `packet`) or why it was refused. The
   * replay window moves only after the tag verified.
   */
  open(packet: Buffer): Buffer | OpenFailure {
    const hi = packet.readUInt32BE(5);
    const counter = hi * 0x100000000 + packet.readUInt32BE(9);
    if (counter >= REJECT_AFTER_MESSAGES || !this.window.check(counter)) return 'replay';
    if (!this.opener.open(packet)) return 'auth';
    this.window.commit(counter);
    return packet.subarray(DATA_HEADER_BYTES, packet.length - TAG_BYTES);
  }

  /** Forget the keys once the session is dropped. */
  wipe(): void {
    this.sealer.wipe();
    this.opener.wipe();
    sodium.sodium_memzero(this.sendKey);
    sodium.sodium_memzero(this.recvKey);
    this.recvUntil = -Infinity;
  }
}
