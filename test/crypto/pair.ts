// Two SessionManagers wired back to back in memory, through an optional
// lossy / duplicating / reordering link driven by a seeded PRNG (so a failing
// run can be replayed). Not a test file itself.
import crypto from 'node:crypto';
import { SessionManager, type SessionManagerOptions } from '../../src/crypto/session-manager.ts';
import { generateIdentity, type Identity } from '../../src/crypto/identity.ts';
import type { Address } from '../../src/wire/address.ts';

export type Side = 'a' | 'b';
/** What a packet's path is in these tests: the side that sent it (tests of junk use other names, or none). */
export type PairPath = { from?: string } | null;

export interface Node {
  name: Side;
  id: Identity;
  addr: Address;
  bootId: Buffer;
  mgr: SessionManager<PairPath>;
  /** Plaintexts received ('message'), copied. */
  got: Buffer[];
  /** Every packet this node sent, copied before delivery. */
  wire: Buffer[];
  events: Array<[string, ...unknown[]]>;
}

export interface LinkOptions {
  seed?: number;
  /** Probability of dropping a packet. */
  drop?: number;
  /** Probability of delivering a packet twice. */
  dup?: number;
  /** Random extra delay 0..reorderMs per delivery (reorders). Without it delivery is in order via setImmediate. */
  reorderMs?: number;
  /** Last word on a packet: return null to drop it, or a (possibly altered) packet. */
  filter?: (pkt: Buffer, from: Side) => Buffer | null;
  mgr?: Partial<SessionManagerOptions<PairPath>>;
  verify?: (address: Address, key: Buffer) => boolean | Promise<boolean>;
}

/** mulberry32: tiny deterministic PRNG. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Pair {
  a: Node;
  b: Node;
  nodes: Record<Side, Node>;
  link: LinkOptions;
  /** Stop the old manager of `side` and start a new one: same identity and address, new bootId. */
  restart(side: Side): Node;
  destroy(): void;
}

export function makePair(link: LinkOptions = {}): Pair {
  const rand = prng(link.seed ?? 1);
  const nodes = {} as Record<Side, Node>;
  const timers = new Set<NodeJS.Timeout>();

  const deliver = (from: Side, pkt: Buffer): void => {
    nodes[from].wire.push(Buffer.from(pkt));
    const to: Side = from === 'a' ? 'b' : 'a';
    let p: Buffer | null = Buffer.from(pkt); // the receiver decrypts in place: it must own its copy
    if (link.filter) p = link.filter(p, from);
    if (p === null) return;
    if (link.drop && rand() < link.drop) return;
    const copies = link.dup && rand() < link.dup ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const c = Buffer.from(p);
      const run = (): void => nodes[to].mgr.handlePacket(c, { from });
      if (link.reorderMs) {
        const t = setTimeout(() => {
          timers.delete(t);
          run();
        }, rand() * link.reorderMs);
        timers.add(t);
      } else {
        setImmediate(run);
      }
    }
  };

  const make = (name: Side, node: number, id: Identity = generateIdentity()): Node => {
    const n: Node = {
      name,
      id,
      addr: { network: 0, node },
      bootId: crypto.randomBytes(8),
      mgr: undefined as unknown as SessionManager<PairPath>,
      got: [],
      wire: [],
      events: [],
    };
    n.mgr = new SessionManager<PairPath>({
      identity: id,
      localAddress: n.addr,
      bootId: n.bootId,
      send: (_peer, pkt) => deliver(name, pkt),
      sendRaw: (pkt) => deliver(name, pkt),
      ...(link.verify ? { verifyPeer: link.verify } : {}),
      // Slow enough that a loaded machine does not cause spurious retries; tests of timeouts set their own.
      handshakeRetryMs: 250,
      handshakeTimeoutMs: 2500,
      ...(link.mgr ?? {}),
    });
    n.mgr.on('message', (_k: number, m: Buffer) => n.got.push(Buffer.from(m)));
    for (const ev of ['session', 'peer-restarted', 'handshake-failed', 'path'] as const) {
      n.mgr.on(ev, (...args: unknown[]) => n.events.push([ev, ...args]));
    }
    nodes[name] = n;
    return n;
  };

  make('a', 1);
  make('b', 2);
  return {
    get a() {
      return nodes.a;
    },
    get b() {
      return nodes.b;
    },
    nodes,
    link,
    restart(side: Side): Node {
      const old = nodes[side];
      old.mgr.destroy();
      return make(side, old.addr.node, old.id);
    },
    destroy(): void {
      for (const t of timers) clearTimeout(t);
      nodes.a.mgr.destroy();
      nodes.b.mgr.destroy();
    },
  };
}

export const peerOf = (n: Node): { address: Address; publicKey: Buffer } => ({ address: n.addr, publicKey: n.id.publicKey });

export async function until(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const texts = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString());
