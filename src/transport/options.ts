// What a Connection can be configured with, its defaults, and the checks: the
// constructor's options resolved once into a ConnectionConfig (defaults applied,
// windows clamped, bad values refused with BAD_ARGUMENT).
import { DEFAULT_MAX_PLAINTEXT } from '../wire/packet-types.ts';
import { PilotError } from '../util/errors.ts';
import { CONGESTION_ALGORITHMS, DEFAULT_CONGESTION_ALGORITHM, type CongestionAlgorithm } from './congestion.ts';
import type { StreamConfig } from './stream.ts';

export const DEFAULT_STREAM_WINDOW = 1024 * 1024;
export const DEFAULT_CONNECTION_WINDOW = 16 * 1024 * 1024;
/** Auto-tuning grows windows up to these (or the configured value if larger). */
const MAX_STREAM_WINDOW = 16 * 1024 * 1024;
const MAX_CONNECTION_WINDOW = 64 * 1024 * 1024;
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;
export const MIN_PACKET_SIZE = 256;
export const MAX_PACKET_SIZE = 65_000;

export interface ConnectionOptions {
  /** Stream-id parity: 'low' opens even ids, 'high' odd ones, so both ends can open at once. */
  role: 'low' | 'high';
  /** Hands one plaintext packet to the session layer (which then owns the buffer). */
  sendPacket: (plaintext: Buffer) => void;
  maxPacketSize?: number;
  /** Initial per-stream receive window (auto-tuned upwards). */
  streamWindow?: number;
  /** Initial connection receive window (auto-tuned upwards). */
  connectionWindow?: number;
  /** A stream with no traffic and no application writes for this long errors with TIMEOUT (0: never). */
  idleTimeoutMs?: number;
  /** Clock in ms (default performance.now). */
  now?: () => number;
  /**
   * Bytes reserved before / after every packet handed to sendPacket, inside the same memory: the session
   * layer may then encrypt in place, e.g. `Buffer.from(p.buffer, p.byteOffset - headroom, p.length + headroom + tailroom)`
   * is [headroom][plaintext][tailroom] (for SessionManager.sendToInPlace: 13 and 16). Default 0.
   */
  headroom?: number;
  tailroom?: number;
  /** Congestion controller: 'bbr' (default, draft-ietf-ccwg-bbr), 'cubic' (RFC 9438) or 'newreno' (RFC 9002 §7). */
  congestionControl?: CongestionAlgorithm;
}

/** ConnectionOptions with defaults applied and checked. */
export interface ConnectionConfig {
  readonly sendPacket: (plaintext: Buffer) => void;
  readonly now: () => number;
  /** 0: we open even stream ids ('low'), 1: odd ones. */
  readonly parity: 0 | 1;
  readonly maxPacketSize: number;
  readonly headroom: number;
  readonly tailroom: number;
  /** Every stream's receive window, its auto-tuning cap and how much may wait unsent before write() says wait. */
  readonly stream: StreamConfig;
  /** The connection's receive window and its auto-tuning cap. */
  readonly connWindow: number;
  readonly maxConnWindow: number;
  readonly idleTimeoutMs: number;
  readonly congestionControl: CongestionAlgorithm;
}

export function resolveConnectionOptions(opts: ConnectionOptions): ConnectionConfig {
  if (opts.role !== 'low' && opts.role !== 'high') throw new PilotError('BAD_ARGUMENT', `role must be 'low' or 'high'`);
  // checked in this order (which error a doubly bad call gets)
  const maxPacketSize = checkPacketSize(opts.maxPacketSize ?? DEFAULT_MAX_PLAINTEXT);
  const headroom = checkRoom(opts.headroom ?? 0, 'headroom');
  const tailroom = checkRoom(opts.tailroom ?? 0, 'tailroom');
  const streamWindow = Math.max(64 * 1024, opts.streamWindow ?? DEFAULT_STREAM_WINDOW);
  const connWindow = Math.max(256 * 1024, opts.connectionWindow ?? DEFAULT_CONNECTION_WINDOW);
  const congestionControl = opts.congestionControl ?? DEFAULT_CONGESTION_ALGORITHM;
  if (!CONGESTION_ALGORITHMS.includes(congestionControl)) {
    throw new PilotError('BAD_ARGUMENT', `congestionControl must be one of ${CONGESTION_ALGORITHMS.join(', ')}, got ${String(congestionControl)}`);
  }
  return {
    sendPacket: opts.sendPacket,
    now: opts.now ?? performance.now.bind(performance),
    parity: opts.role === 'low' ? 0 : 1,
    maxPacketSize,
    headroom,
    tailroom,
    stream: {
      window: streamWindow,
      maxWindow: Math.max(streamWindow, MAX_STREAM_WINDOW),
      sendAhead: Math.max(64 * 1024, streamWindow),
    },
    connWindow,
    maxConnWindow: Math.max(connWindow, MAX_CONNECTION_WINDOW),
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    congestionControl,
  };
}

export function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new PilotError('BAD_ARGUMENT', `${what} must be an integer 0-65535, got ${port}`);
}

export function checkPacketSize(size: number): number {
  if (!Number.isInteger(size) || size < MIN_PACKET_SIZE || size > MAX_PACKET_SIZE) {
    throw new PilotError('BAD_ARGUMENT', `packet size must be an integer ${MIN_PACKET_SIZE}-${MAX_PACKET_SIZE}, got ${size}`);
  }
  return size;
}

function checkRoom(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 256) throw new PilotError('BAD_ARGUMENT', `${what} must be an integer 0-256, got ${n}`);
  return n;
}
