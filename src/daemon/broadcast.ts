// `pilotctl broadcast <network> <port> --data D` (upstream parity, issue 21): one
// datagram to every online member of a network whose policy lets this node reach
// that port. The receivers check the policy again (access-policy.ts); this side
// checks it first so a refused member is reported, not sent to. Bounded: at most
// MAX_BROADCAST_MEMBERS members per broadcast, BROADCAST_CONCURRENCY resolutions
// at once, and a datagram budget per second across broadcasts (SECURITY.md).
import type { BroadcastMember, BroadcastResult } from '../ipc/api.ts';
import { asPilotError, PilotError } from '../util/errors.ts';
import { formatAddress, makeAddress, parseAddress, type Address } from '../wire/address.ts';

/** Members one broadcast reaches at most (beyond: `skipped`). */
export const MAX_BROADCAST_MEMBERS = 1024;
/** Datagrams all broadcasts may send: this many a second, with this burst. */
export const BROADCAST_RATE = { perSec: 256, burst: 1024 } as const;
/** Members resolved and sent to at once. */
export const BROADCAST_CONCURRENCY = 32;

export interface BroadcastHost {
  readonly address: Address | undefined;
  now(): number;
  /** Members of `net` as the rendezvous lists them. */
  members(net: number): Promise<Array<{ address: string; hostname: string | null; online: boolean }>>;
  /** Resolve the member (a session if there is none) and say whether `net`'s policy lets us reach `port` (undefined: not known as a member). */
  allowed(net: number, member: Address, port: number): Promise<boolean | undefined>;
  send(member: Address, port: number, data: Buffer): Promise<void>;
}

export class Broadcaster {
  private readonly host: BroadcastHost;
  private tokens: number = BROADCAST_RATE.burst;
  private last: number;

  constructor(host: BroadcastHost) {
    this.host = host;
    this.last = host.now();
  }

  /** Takes `cost` datagrams from the budget, or says how long until they are there. */
  private take(cost: number): number {
    const now = this.host.now();
    this.tokens = Math.min(BROADCAST_RATE.burst, this.tokens + ((now - this.last) / 1000) * BROADCAST_RATE.perSec);
    this.last = now;
    if (this.tokens >= cost) {
      this.tokens -= cost;
      return 0;
    }
    return Math.ceil(((cost - this.tokens) / BROADCAST_RATE.perSec) * 1000);
  }

  async broadcast(net: number, name: string, port: number, data: Buffer): Promise<BroadcastResult> {
    const me = this.host.address;
    const listed = (await this.host.members(net)).filter((m) => {
      try {
        return me === undefined || parseAddress(m.address).node !== me.node;
      } catch {
        return false;
      }
    });
    const members: BroadcastMember[] = [];
    const targets: Array<{ m: BroadcastMember; address: Address }> = [];
    for (const m of listed) {
      // shown in the network's own numbering (N:…), as `network members` shows them
      const address = parseAddress(m.address);
      const entry: BroadcastMember = { address: formatAddress(makeAddress(net, address.node)), hostname: m.hostname, result: 'offline' };
      members.push(entry);
      if (!m.online) continue;
      if (targets.length >= MAX_BROADCAST_MEMBERS) entry.result = 'skipped';
      else targets.push({ m: entry, address });
    }
    const wait = this.take(targets.length);
    if (wait > 0)
      throw new PilotError(
        'RATE_LIMITED',
        `broadcast to ${targets.length} members refused: over the budget of ${BROADCAST_RATE.perSec} datagrams a second (${BROADCAST_RATE.burst} in a burst)`,
        `retry in ${wait} ms`,
      );
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const t = targets[next++]!;
        try {
          const ok = await this.host.allowed(net, t.address, port);
          if (ok !== true) {
            t.m.result = 'refused';
            t.m.code = ok === false ? 'PERMISSION_DENIED' : 'NOT_FOUND';
            continue;
          }
          await this.host.send(t.address, port, data);
          t.m.result = 'sent';
        } catch (err) {
          const code = asPilotError(err).code;
          t.m.result = code === 'PERMISSION_DENIED' || code === 'NOT_TRUSTED' ? 'refused' : 'failed';
          t.m.code = code;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(BROADCAST_CONCURRENCY, targets.length) }, worker));
    const counts = { sent: 0, refused: 0, offline: 0, failed: 0, skipped: 0 };
    for (const m of members) counts[m.result]++;
    return { net, name, port, bytes: data.length, counts, members };
  }
}
