// Linux UDP GSO (UDP_SEGMENT) for Node's dgram sockets, through the optional
// native addon in native/udp_gso.c (built by `npm install`; a failed build only
// means every packet goes out through dgram, one sendmsg each, as before).
// One sendGso() hands the kernel up to 64 equal-size datagrams for one
// destination in a single system call; the kernel splits them as late as it can.
import type dgram from 'node:dgram';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface GsoBinding {
  /** One sendmsg with a UDP_SEGMENT of `segment` bytes: bytes sent, or -errno (EAGAIN, ENOBUFS, EINVAL, EIO...). */
  sendGso(fd: number, buffers: readonly Buffer[], segment: number, host: string, port: number): number;
  /** One plain datagram (no GSO cmsg; the socket's DF mode applies), one sendmsg: bytes sent, or -errno. */
  sendOne(fd: number, buffer: Buffer, host: string, port: number): number;
  /**
   * DF on every datagram of the socket (IP_PMTUDISC_PROBE): 0, or -errno. Linux's default sets DF
   * only on a datagram that fits the path MTU, and a GSO send is one big datagram: without this its
   * segments leave without DF, routers fragment them, and path MTU discovery sees no black hole.
   */
  dfAlways(fd: number): number;
}

/** What the kernel allows in one GSO send: 64 segments (UDP_MAX_SEGMENTS), and one IP datagram's worth of payload. */
export const GSO_MAX_SEGMENTS = 64;
export const GSO_MAX_BYTES = 65_000;

/** Errno values (Linux) the batcher decides on. */
export const Errno = { EAGAIN: 11, ENOBUFS: 105, EINVAL: 22, EIO: 5, EMSGSIZE: 90 } as const;

/** This package's root: src/util/ or dist/util/ are two levels down. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

let cached: Record<string, unknown> | null | undefined;

/**
 * The addon, or undefined: not Linux, not built, or turned off with PILOT_GSO=0
 * (the switch benchmarks use to compare with and without). `file`: another build (tests).
 */
export function loadGso(file?: string): GsoBinding | undefined {
  const mod = loadAddon(file);
  return mod !== undefined && typeof mod.sendGso === 'function' && typeof mod.sendOne === 'function' && typeof mod.dfAlways === 'function'
    ? (mod as unknown as GsoBinding)
    : undefined;
}

/** The addon's exports as built (GSO send here, batched receive in udp-receiver.ts), or undefined; PILOT_GSO=0 turns all of it off. */
export function loadAddon(file?: string): Record<string, unknown> | undefined {
  if (process.env.PILOT_GSO === '0' || process.platform !== 'linux') return undefined;
  if (file !== undefined) return loadFile(file) ?? undefined;
  cached ??= loadFile(path.join(ROOT, 'build', 'Release', 'pilot_udp_gso.node'));
  return cached ?? undefined;
}

function loadFile(file: string): Record<string, unknown> | null {
  if (!fs.existsSync(file)) return null;
  try {
    return createRequire(import.meta.url)(file) as Record<string, unknown>;
  } catch {
    return null; // built for another platform or Node, or a broken build: dgram it is
  }
}

/** dgram's state object (its handle is null once the socket is closed), found without `socket._handle` (deprecated, DEP0112). */
export function socketState(sock: dgram.Socket): { handle?: { fd?: unknown } | null } | undefined {
  const key = Object.getOwnPropertySymbols(sock).find((s) => s.description === 'state symbol');
  return key === undefined ? undefined : (sock as unknown as Record<symbol, { handle?: { fd?: unknown } | null } | undefined>)[key];
}

/** dgram's handle under a bound socket (see socketFd), for the few methods Node has no public name for. */
export function socketHandle(sock: dgram.Socket): { fd?: unknown; recvStart?: unknown; recvStop?: unknown } | undefined {
  return socketState(sock)?.handle ?? undefined;
}

/**
 * The file descriptor under a bound dgram socket, without `socket._handle`
 * (deprecated, DEP0112, warns): dgram keeps the handle in its state object.
 */
export function socketFd(sock: dgram.Socket): number | undefined {
  const fd = socketHandle(sock)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
