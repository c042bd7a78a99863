// The daemon's copy of its trust relations, kept in step with the registry:
// pulled on every heartbeat (syncTrust), updated at once by signed pushes, and
// changed through the registry by trust requests, approvals, rejections and
// revocations. A revocation is enforced here first, whether or not the
// registry answers; the TrustBook (trust.ts) persists it.
import type { RegistryClient } from '../registry/client.ts';
import { addressKey, formatAddress, type Address } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import type { Logger } from '../util/logger.ts';
import { parseTarget } from './targets.ts';
import type { TrustBook } from './trust.ts';

/** The registry calls the mirror makes (a fake in unit tests). */
export type TrustRegistry = Pick<RegistryClient, 'trustList' | 'trustPending' | 'trustRequest' | 'trustApprove' | 'trustReject' | 'trustRevoke'>;

export interface TrustPush {
  event: string;
  data: Record<string, unknown>;
}

export interface TrustMirrorHost {
  readonly log: Logger;
  now(): number;
  registry(): TrustRegistry;
  /** Our network (node ids in targets are read in it). */
  network(): number;
  /** A hostname's address, from the registry. */
  resolveHostname(hostname: string): Promise<Address>;
}

export interface TrustAnswer {
  status: string;
  peer: string;
}

export class TrustMirror {
  readonly book: TrustBook;
  private readonly host: TrustMirrorHost;
  /** formatAddress, memoized: trust is checked for every datagram and stream, and formatting costs more than the lookup. */
  private readonly addrTexts = new Map<number, string>();
  /** Trust pushes applied so far: a list fetched across one of them is older than the book. */
  private pushes = 0;

  constructor(book: TrustBook, host: TrustMirrorHost) {
    this.book = book;
    this.host = host;
  }

  isTrusted(address: Address): boolean {
    return this.book.isTrusted(this.addressText(address));
  }

  private addressText(a: Address): string {
    const k = addressKey(a);
    let t = this.addrTexts.get(k);
    if (t === undefined) {
      if (this.addrTexts.size >= 4096) this.addrTexts.clear();
      this.addrTexts.set(k, (t = formatAddress(a)));
    }
    return t;
  }

  /** Pull the registry's view (trust pairs, pending requests both ways). */
  async sync(): Promise<void> {
    const registry = this.host.registry();
    // Revocations the registry missed go first, so the list below no longer has them.
    for (const peer of this.book.pendingRevocations()) {
      await registry.trustRevoke(peer).then(
        () => this.book.settleRevocation(peer),
        (err: unknown) => this.host.log.warn({ peer, err: (err as Error).message }, 'revocation not yet confirmed by the registry'),
      );
    }
    // A push applied while the lists were in flight is newer than they are (the registry answered
    // before, say, a revocation it then pushed): replacing the book with them would undo it, so
    // fetch again. After a few rounds the newest answer wins.
    let list: Awaited<ReturnType<TrustRegistry['trustList']>>;
    let pending: Awaited<ReturnType<TrustRegistry['trustPending']>>;
    for (let round = 0; ; round++) {
      const seen = this.pushes;
      [list, pending] = await Promise.all([registry.trustList(), registry.trustPending()]);
      if (this.pushes === seen || round >= 2) break;
    }
    this.book.replace(
      list.trusted.map((t) => ({ peer: t.peer, hostname: t.hostname ?? null, since: t.since, mutual: true })),
      pending.incoming.map((p) => ({ from: p.from, hostname: p.hostname ?? null, reason: p.reason ?? null, created: p.created })),
      pending.outgoing.map((o) => ({ to: o.to, hostname: o.hostname ?? null, reason: o.reason ?? null, created: o.created })),
    );
  }

  /** A registry push (signed by the server key): trust changes made by the other side. */
  onPush(push: TrustPush): void {
    if (push.event.startsWith('trust_')) this.pushes++;
    const d = push.data ?? {};
    const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
    this.host.log.info({ event: push.event, data: d }, 'registry push');
    switch (push.event) {
      case 'trust_request': {
        const from = str(d.from);
        if (from)
          this.book.addIncoming({
            from,
            hostname: str(d.hostname),
            reason: str(d.reason),
            created: typeof d.created === 'number' ? d.created : this.host.now(),
          });
        break;
      }
      case 'trust_approved': {
        const peer = str(d.peer);
        if (peer) this.book.addTrusted(peer, str(d.hostname));
        break;
      }
      case 'trust_rejected': {
        const peer = str(d.peer);
        if (peer) this.book.removeOutgoing(peer);
        break;
      }
      case 'trust_revoked': {
        const peer = str(d.peer);
        if (peer) this.book.removeTrusted(peer);
        break;
      }
    }
  }

  async request(target: string, reason?: string): Promise<TrustAnswer> {
    const addr = formatAddress(await this.addressOfTarget(target));
    this.book.settleRevocation(addr); // asking again overrides an unconfirmed revocation
    const r = await this.host.registry().trustRequest(addr, reason);
    if (r.status === 'trusted') this.book.addTrusted(addr, null);
    else this.book.addOutgoing({ to: addr, hostname: null, reason: reason ?? null, created: this.host.now() });
    await this.sync().catch(() => {});
    return { status: r.status, peer: addr };
  }

  async approve(node: string): Promise<TrustAnswer> {
    const addr = this.addressOfPending(node);
    this.book.settleRevocation(addr);
    const r = await this.host.registry().trustApprove(addr);
    const pend = this.book.listIncoming().find((p) => p.from === addr);
    this.book.addTrusted(addr, pend?.hostname ?? null);
    return { status: r.status, peer: addr };
  }

  async reject(node: string, reason?: string): Promise<TrustAnswer> {
    const addr = this.addressOfPending(node);
    await this.host.registry().trustReject(addr, reason);
    this.book.removeIncoming(addr);
    return { status: 'rejected', peer: addr };
  }

  async revoke(node: string): Promise<TrustAnswer> {
    const known = this.book.listTrusted().find((t) => t.peer === node || t.hostname === node);
    const addr = known ? known.peer : formatAddress(await this.addressOfTarget(node));
    // Enforced here first: the peer is cut at once, whether or not the registry answers.
    this.book.revoke(addr);
    try {
      await this.host.registry().trustRevoke(addr);
    } catch (err) {
      this.host.log.warn({ peer: addr, err: (err as Error).message }, 'revoked here; the registry will be told on the next sync');
      return { status: 'revoked-locally', peer: addr };
    }
    this.book.settleRevocation(addr);
    return { status: 'revoked', peer: addr };
  }

  /** A pending requester named by address, node id or the hostname it sent. */
  addressOfPending(node: string): string {
    const pend = this.book.listIncoming();
    const byHost = pend.find((p) => p.hostname === node);
    if (byHost) return byHost.from;
    const t = parseTarget(node, this.host.network());
    if ('address' in t) return formatAddress(t.address);
    throw new PilotError('NOT_FOUND', `no pending trust request from ${node}`, 'see: pilotctl pending');
  }

  private async addressOfTarget(target: string): Promise<Address> {
    const t = parseTarget(target, this.host.network());
    if ('address' in t) return t.address;
    return this.host.resolveHostname(t.hostname);
  }
}
