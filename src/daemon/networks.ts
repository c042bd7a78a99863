// Fleets (issue 18) on the daemon's side: our memberships (persisted in networks.json), our
// member tickets, each network's admin-signed policy and kick list, and what peers proved to
// us about THEIR memberships. A peer proves a membership over the encrypted session with a
// MEMBERSHIP message (Inner.Membership, below): its credential (verified here with the admin
// key from our own membership of that network: the rendezvous cannot mint members) and its
// rendezvous-signed ticket (5 min: a kicked member drops out even if a push is lost). The
// access policy (access-policy.ts) asks `incomingAllowed`/`outgoingAllowed`; sessions and
// punching are open to `maybeCoMember`s (the rendezvous said so in its answer about that peer: a
// hint, never a pass). Hints come per peer, with the resolve answers the daemon asks for anyway
// (dialing, checking a caller's key): never whole member lists, and no push to every member on
// every join, so a join costs the rendezvous the same in a fleet of 10 or of 10,000.
//
// Bounded and expiring (SECURITY.md): at most MAX_PEER_NETS proofs per peer, MAX_PEERS peers,
// each proof until its ticket expires; kick lists MAX_KICKS per network; member hints per
// network MAX_HINTS.
import fs from 'node:fs';
import path from 'node:path';
import type { NetworkClient } from '../registry/network-client.ts';
import { BINDING_BYTES, CERT_MAX_BYTES, TICKET_BYTES, parseToken, verifyCredential, verifyTicket, type Credential } from '../registry/membership.ts';
import { DEFAULT_POLICY, NetworkPolicy, parsePolicy, policyAllows } from '../registry/network-policy.ts';
import { addressKey, formatAddress, parseAddress, type Address } from '../wire/address.ts';
import { readJsonFile, writeJsonAtomic } from '../util/atomic-file.ts';
import { PilotError } from '../util/errors.ts';
import type { Logger } from '../util/logger.ts';

/** First byte of a session plaintext carrying a membership proof (after the path layer's 0x01..0x03). */
export const INNER_MEMBERSHIP = 0x04;
export const MAX_PEER_NETS = 16;
export const MAX_PEERS = 4096;
export const MAX_KICKS = 4096;
export const MAX_HINTS = 10_000;
export const TICKET_REFRESH_MS = 120_000;
/** A resolve answer's word that a peer is a co-member holds this long (a ticket's lifetime). */
export const HINT_TTL_MS = 5 * 60_000;
const SIG = 64;
/** Largest MEMBERSHIP message: [type][ver][net u16][certLen u16] cert certSig binding bindingSig ticket ticketSig. */
export const MEMBERSHIP_MAX_BYTES = 6 + CERT_MAX_BYTES + SIG + BINDING_BYTES + SIG + TICKET_BYTES + SIG;

/** The rendezvous's fleet methods (the part uses join, tickets, getPolicy, kicks, members, leave; IPC handlers the rest). */
export type NetworkCalls = NetworkClient;

export interface NetworksHost {
  readonly log: Logger;
  now(): number;
  home: string;
  /** Our node key (Ed25519). */
  nodeKey: Buffer;
  client(): NetworkCalls;
  /** The rendezvous key we pinned (tickets are signed by it). */
  serverKey(): Buffer | undefined;
  localAddress(): Address | undefined;
  /** Our proofs changed (join, renewed tickets): send them to every peer with a session. */
  broadcast(): void;
  /** A peer's proven memberships were dropped (kick, leave, expiry on refresh). */
  peerChanged?(peer: Address): void;
  /** Key rotation: a verified chain leads from `older` to `current` (src/registry/rotation.ts KeyLinks). */
  linked?(older: Buffer, current: Buffer): boolean;
  /** Key rotation: learn (and verify) the rotation that bound `key`, if any (a resolve by key). */
  learnRotation?(key: Buffer): Promise<void>;
}

/** One of our memberships, as persisted. */
export interface Membership {
  net: number;
  name: string;
  adminKey: Buffer;
  credential: Credential;
  tags: string[];
  ephemeral: boolean;
  /** The latest admin-signed policy we verified (text '' = none set: default allow). */
  policyText?: string | undefined;
  policyVersion?: number | undefined;
}

interface NetState extends Membership {
  policy: NetworkPolicy | undefined;
  ticket?: { ticket: Buffer; sig: Buffer; exp: number };
  /** node (network-0 address key) -> kicked at (s). */
  kicks: Map<number, number>;
  /** Peers the rendezvous listed as members: address key -> their tags, when (a hint for sessions and outgoing checks). */
  hints: Map<number, { tags: string[]; at: number }>;
}

interface Proof {
  tags: string[];
  /** Ticket expiry, ms. */
  exp: number;
  /** Binding time, s (a kick dated after it holds). */
  ts: number;
}

const b64 = (b: Buffer) => b.toString('base64');
const unb64 = (s: unknown) => Buffer.from(typeof s === 'string' ? s : '', 'base64');
/** Everyone is also 0:<node>: policies and kick lists name nodes by their network-0 address. */
const nodeKey0 = (a: Address) => addressKey({ network: 0, node: a.node });

export function encodeMembership(net: number, c: Credential, t: { ticket: Buffer; sig: Buffer }): Buffer {
  const head = Buffer.alloc(6);
  head[0] = INNER_MEMBERSHIP;
  head[1] = 1;
  head.writeUInt16BE(net, 2);
  head.writeUInt16BE(c.cert.length, 4);
  return Buffer.concat([head, c.cert, c.certSig, c.binding, c.bindingSig, t.ticket, t.sig]);
}

/** Hostile input (an authenticated but maybe malicious peer): every length checked. */
export function decodeMembership(b: Buffer): { net: number; credential: Credential; ticket: Buffer; ticketSig: Buffer } | undefined {
  if (b.length < 6 || b.length > MEMBERSHIP_MAX_BYTES || b[0] !== INNER_MEMBERSHIP || b[1] !== 1) return undefined;
  const net = b.readUInt16BE(2);
  const certLen = b.readUInt16BE(4);
  if (net === 0 || certLen > CERT_MAX_BYTES || b.length !== 6 + certLen + SIG + BINDING_BYTES + SIG + TICKET_BYTES + SIG) return undefined;
  let o = 6;
  const take = (n: number) => Buffer.from(b.subarray(o, (o += n)));
  const cert = take(certLen);
  const certSig = take(SIG);
  const binding = take(BINDING_BYTES);
  const bindingSig = take(SIG);
  const ticket = take(TICKET_BYTES);
  const ticketSig = take(SIG);
  return { net, credential: { cert, certSig, binding, bindingSig }, ticket, ticketSig };
}

export class Networks {
  private readonly host: NetworksHost;
  private readonly nets = new Map<number, NetState>();
  /** peer address key -> net -> proof; Map order = least recently proven first. */
  private readonly proofs = new Map<number, Map<number, Proof>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly file: string;

  constructor(host: NetworksHost) {
    this.host = host;
    this.file = path.join(host.home, 'networks.json');
    this.load();
  }

  /** The rendezvous's fleet methods (network-ipc.ts). */
  client(): NetworkClient {
    return this.host.client();
  }

  /** Did `peer` prove (credential + live ticket) its membership of `net` to us? */
  proves(net: number, peer: Address): boolean {
    return this.proven(peer).has(net);
  }

  /**
   * `N:<node>` with N != 0 names node `0:<node>` when we share network N; else NOT_MEMBER.
   * Network-0 addresses pass unchanged.
   */
  globalAddress(a: Address): Address {
    if (a.network === 0) return a;
    if (!this.nets.has(a.network))
      throw new PilotError(
        'NOT_FOUND',
        `this node is not a member of network ${a.network}, so it cannot reach ${a.network}:… addresses`,
        'join it first (pilotctl network join <token>), or use the 0:… address',
      );
    return { network: 0, node: a.node };
  }

  /** The rendezvous key we pinned. */
  serverKey(): Buffer | undefined {
    return this.host.serverKey();
  }

  // ---------- our memberships ----------

  list(): Membership[] {
    return [...this.nets.values()].map((n) => ({ ...n }));
  }

  get(net: number): Membership | undefined {
    return this.nets.get(net);
  }

  byName(name: string): Membership | undefined {
    for (const n of this.nets.values()) if (n.name === name) return n;
    return undefined;
  }

  /** Joins with a token, unless we already belong to its network (then nothing is asked: idempotent across restarts). */
  async join(token: string): Promise<{ membership: Membership; already: boolean }> {
    const t = parseToken(token.trim());
    const have = this.nets.get(t.invite.net);
    if (have) return { membership: have, already: true };
    const r = await this.host.client().join(token.trim());
    const m: NetState = {
      net: r.net,
      name: r.name,
      adminKey: Buffer.from(r.adminKey, 'base64'),
      credential: r.credential,
      tags: r.tags,
      ephemeral: r.ephemeral,
      policy: undefined,
      kicks: new Map(),
      hints: new Map(),
    };
    this.nets.set(r.net, m);
    this.save();
    await this.refresh().catch((err: unknown) => this.host.log.warn({ net: r.net, err: (err as Error).message }, 'network refresh after join failed'));
    return { membership: m, already: false };
  }

  async leave(net: number): Promise<void> {
    if (!this.nets.has(net)) throw new PilotError('NOT_FOUND', `not a member of network ${net}`, 'see: pilotctl network list');
    await this.host.client().leave(net);
    this.drop(net);
  }

  /** The rendezvous removed this node (an ephemeral node deregistered): its memberships went with it. */
  released(): void {
    for (const net of [...this.nets.keys()]) this.drop(net);
  }

  /** We are no longer a member (left, kicked, network deleted): forget it and what peers proved in it. */
  private drop(net: number): void {
    if (!this.nets.delete(net)) return;
    this.save();
    for (const [peer, m] of this.proofs) if (m.delete(net) && m.size === 0) this.proofs.delete(peer);
  }

  /** Tickets, policies and kick lists from the rendezvous (on join, then every ~2 min). */
  async refresh(): Promise<void> {
    if (this.nets.size === 0) return;
    const c = this.host.client();
    // Side by side, not one after another: a join waits for this refresh, and each call is a round
    // trip to the rendezvous (and its database). Tickets and the admins' keys first (a policy is
    // checked against the admin key followAdmins may move); then every network's policy and kicks.
    const [tickets] = await Promise.all([
      c.tickets(),
      this.followAdmins(c).catch((err: unknown) => this.host.log.warn({ err: (err as Error).message }, 'admin key check failed')),
    ]);
    for (const t of tickets) {
      const n = this.nets.get(t.net);
      if (n) n.ticket = { ticket: t.ticket, sig: t.sig, exp: t.exp * 1000 };
    }
    await Promise.all(
      [...this.nets.values()].map((n) => {
        if (!tickets.some((t) => t.net === n.net)) this.host.log.warn({ net: n.net }, 'no member ticket for a network (left or kicked?)');
        return Promise.all([this.fetchPolicy(n), this.fetchKicks(n)]).catch((err: unknown) =>
          this.host.log.warn({ net: n.net, err: (err as Error).message }, 'network refresh failed'),
        );
      }),
    );
    this.host.broadcast();
  }

  /**
   * Key rotation of network admins: credentials of older members name the admin key that was
   * current when they joined. The rotation that bound each admin's key is learnt (verified
   * locally), and an admin key we hold that the rendezvous lists as rotated is followed only
   * when a verified chain links it to the listed one (a rendezvous cannot swap admins).
   */
  private async followAdmins(c: NetworkCalls): Promise<void> {
    if (!this.host.learnRotation) return;
    for (const s of await c.list()) {
      const n = this.nets.get(s.net);
      if (!n) continue;
      const key = Buffer.from(s.adminKey, 'base64');
      await this.host.learnRotation(key);
      if (!key.equals(n.adminKey) && this.linked(n.adminKey, key)) this.keyRotated(n.adminKey, key, false);
    }
  }

  /** The first refresh (awaited at daemon start: tickets and policies before peers call), then one every ~2 min. */
  async start(): Promise<void> {
    this.timer = setInterval(() => void this.refresh().catch(() => {}), TICKET_REFRESH_MS);
    this.timer.unref();
    await this.refresh().catch((err: unknown) => this.host.log.warn({ err: (err as Error).message }, 'network refresh failed'));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async fetchPolicy(n: NetState): Promise<void> {
    const p = await this.host.client().getPolicy(n.net, n.adminKey);
    if (p.sig === null && p.text === '') {
      // No policy set: default allow, unless we already saw a signed one (a rendezvous must not drop it).
      if (n.policyVersion === undefined) n.policy = DEFAULT_POLICY;
      return;
    }
    if (p.verified !== true) return void this.host.log.warn({ net: n.net }, 'network policy signature does not verify: kept the last good one');
    if (n.policyVersion !== undefined && p.updated < n.policyVersion) return; // rollback refused
    n.policy = parsePolicy(p.text);
    if (n.policyVersion !== p.updated) {
      n.policyText = p.text;
      n.policyVersion = p.updated;
      this.save();
    }
  }

  private async fetchKicks(n: NetState): Promise<void> {
    for (const k of await this.host.client().kicks(n.net, n.adminKey)) if (k.verified) this.noteKick(n, k.node, Math.floor(k.ts / 1000));
  }

  private noteKick(n: NetState, node: string, atS: number): void {
    let a: Address;
    try {
      a = parseAddress(node);
    } catch {
      return;
    }
    const k = nodeKey0(a);
    n.kicks.delete(k);
    n.kicks.set(k, atS);
    while (n.kicks.size > MAX_KICKS) n.kicks.delete(n.kicks.keys().next().value!);
    n.hints.delete(k);
    const peer = this.proofs.get(k);
    if (peer?.delete(n.net)) this.host.peerChanged?.(a);
    const me = this.host.localAddress();
    if (me && nodeKey0(me) === k) this.drop(n.net);
  }

  /** Registry pushes about networks (signed by the server key). */
  private readonly linked = (older: Buffer, current: Buffer): boolean => this.host.linked?.(older, current) ?? false;

  /**
   * A verified key rotation (ours, or a peer's key_rotated push): networks whose admin key
   * was `oldKey` now name `newKey` (the rendezvous moved the admin rights with it). A peer's
   * rotation: the policy is fetched again (the admin signs it anew with its new key, see
   * Daemon.rotateKey; until then the last good one stays).
   */
  keyRotated(oldKey: Buffer, newKey: Buffer, ours: boolean): void {
    let changed = false;
    for (const n of this.nets.values()) {
      if (!n.adminKey.equals(oldKey)) continue;
      n.adminKey = Buffer.from(newKey);
      changed = true;
      if (!ours) void this.fetchPolicy(n).catch(() => {});
    }
    if (changed) this.save();
  }

  onPush(event: string, d: Record<string, unknown>): void {
    const n = typeof d.net === 'number' ? this.nets.get(d.net) : undefined;
    if (!n) return;
    const node = typeof d.node === 'string' ? d.node : undefined;
    switch (event) {
      case 'network_member_kicked':
        // Dated by the rendezvous (ms), like the bindings it compares with; else now.
        if (node) this.noteKick(n, node, Math.floor((typeof d.ts === 'number' ? d.ts : this.host.now()) / 1000));
        break;
      case 'network_member_left':
        if (node) this.forgetMember(n, node);
        break;
      case 'network_policy_changed':
        void this.fetchPolicy(n).catch((err: unknown) => this.host.log.warn({ net: n.net, err: (err as Error).message }, 'policy fetch failed'));
        break;
      case 'network_deleted':
        this.drop(n.net);
        break;
    }
  }

  private forgetMember(n: NetState, node: string): void {
    try {
      const a = parseAddress(node);
      const k = nodeKey0(a);
      n.hints.delete(k);
      const me = this.host.localAddress();
      if (me && nodeKey0(me) === k) return this.drop(n.net);
      if (this.proofs.get(k)?.delete(n.net)) this.host.peerChanged?.(a);
    } catch {
      // ignored
    }
  }

  // ---------- proofs, both ways ----------

  /**
   * Our MEMBERSHIP messages for `peer`: one per network with a live ticket that the peer is in (it
   * proved it, or the rendezvous lists it; `only`: that network alone). A node outside our networks
   * learns nothing of them (our tags, which networks). Without `peer`: all (tests).
   */
  presentations(peer?: Address, only?: number): Buffer[] {
    const now = this.host.now();
    const proven = peer ? this.proven(peer) : undefined;
    const k = peer ? nodeKey0(peer) : 0;
    const out: Buffer[] = [];
    for (const n of this.nets.values()) {
      if (!n.ticket || n.ticket.exp <= now || (only !== undefined && n.net !== only)) continue;
      if (peer && !proven!.has(n.net) && !this.listed(n, k, now)) continue;
      out.push(encodeMembership(n.net, n.credential, n.ticket));
    }
    return out.slice(0, MAX_PEER_NETS);
  }

  /**
   * A MEMBERSHIP message from `peer` over its authenticated session (publicKey = its session key).
   * Returns the network of a proof that is NEW for this peer (the caller answers with ours for it:
   * a member the rendezvous had not listed to us yet still gets our proof), else undefined.
   */
  onMessage(peer: Address, publicKey: Buffer, msg: Buffer): number | undefined {
    const m = decodeMembership(msg);
    if (!m) return undefined;
    const n = this.nets.get(m.net);
    const serverKey = this.host.serverKey();
    if (!n || !serverKey) return undefined; // a network we are not in: we cannot check it, and it gives nothing here
    const now = this.host.now();
    const cred = verifyCredential(m.credential, { adminKey: n.adminKey, net: m.net, nodeKey: publicKey, now, linked: this.linked });
    if (!cred.ok) return void this.host.log.info({ peer: formatAddress(peer), net: m.net, why: cred.reason }, 'membership credential refused');
    const fresh = !this.proven(peer).has(m.net);
    const t = verifyTicket(m.ticket, m.ticketSig, serverKey, { net: m.net, nodeKey: publicKey, now });
    if (t !== true) return void this.host.log.info({ peer: formatAddress(peer), net: m.net, why: t }, 'member ticket refused');
    const k = nodeKey0(peer);
    const kickedAt = n.kicks.get(k);
    if (kickedAt !== undefined && kickedAt >= cred.binding.ts) return undefined;
    let mine = this.proofs.get(k);
    if (mine) this.proofs.delete(k);
    else mine = new Map();
    this.proofs.set(k, mine); // most recently proven last
    if (!mine.has(m.net) && mine.size >= MAX_PEER_NETS) return undefined;
    mine.set(m.net, { tags: cred.tags, exp: m.ticket.readUInt32BE(35) * 1000, ts: cred.binding.ts });
    while (this.proofs.size > MAX_PEERS) this.proofs.delete(this.proofs.keys().next().value!);
    return fresh ? m.net : undefined;
  }

  /** Live proofs of `peer`: net -> its credential tags. */
  private proven(peer: Address): Map<number, string[]> {
    const out = new Map<number, string[]>();
    const mine = this.proofs.get(nodeKey0(peer));
    if (!mine) return out;
    const now = this.host.now();
    for (const [net, p] of mine) {
      if (p.exp <= now || !this.nets.has(net)) mine.delete(net);
      else out.set(net, p.tags);
    }
    return out;
  }

  /** Is the peer a verified co-member of some network? (punching, relay, not evicted as untrusted) */
  isCoMember(peer: Address): boolean {
    return this.proven(peer).size > 0;
  }

  /** Verified, or listed by the rendezvous as a member of one of our networks: it may open a session (that grants nothing by itself). */
  maybeCoMember(peer: Address): boolean {
    if (this.isCoMember(peer)) return true;
    const k = nodeKey0(peer);
    const now = this.host.now();
    for (const n of this.nets.values()) if (this.listed(n, k, now)) return true;
    return false;
  }

  /** Listed by the rendezvous as a member of one of our networks, with no proof yet (it may be on its way). */
  proofPending(peer: Address): boolean {
    if (this.isCoMember(peer)) return false;
    const k = nodeKey0(peer);
    const now = this.host.now();
    for (const n of this.nets.values()) if (this.listed(n, k, now)) return true;
    return false;
  }

  /** Are we a member of any network? (then a caller we do not trust may still be a co-member: worth a lookup) */
  inAnyNetwork(): boolean {
    return this.nets.size > 0;
  }

  /**
   * The rendezvous's answer about `peer` (a resolve: dialing it, or checking the key it called us
   * with) named the networks we share with it and its tags there: the hints for that peer, and
   * only for it. Bounded per network (oldest first out).
   */
  noteListed(peer: Address, shared: readonly { net: number; tags: readonly string[] }[]): void {
    const k = nodeKey0(peer);
    const now = this.host.now();
    for (const n of this.nets.values()) {
      n.hints.delete(k);
      const s = shared.find((x) => x.net === n.net);
      if (!s || n.kicks.has(k)) continue;
      n.hints.set(k, { tags: [...s.tags], at: now });
      while (n.hints.size > MAX_HINTS) n.hints.delete(n.hints.keys().next().value!);
    }
  }

  /** Listed in `n` by a recent enough answer, and not kicked since. */
  private listed(n: NetState, k: number, now: number): boolean {
    const h = n.hints.get(k);
    return h !== undefined && now - h.at < HINT_TTL_MS && !n.kicks.has(k);
  }

  /** May the verified co-member `peer` reach our `port`? (the receiver's check, per network policy) */
  incomingAllowed(peer: Address, port: number): boolean {
    const me = this.host.localAddress();
    if (!me) return false;
    for (const [net, tags] of this.proven(peer)) {
      const n = this.nets.get(net)!;
      if (policyAllows(n.policy ?? DENY, { fromTags: tags, fromAddress: peer, toTags: n.tags, toAddress: me, port })) return true;
    }
    return false;
  }

  /**
   * May we reach the peer's `port` as its policy will see it? Uses the peer's verified tags, or
   * the rendezvous's member list before it proved anything (the receiver decides anyway).
   * 'no-network': we share no network; else the names of the networks whose policy refuses.
   */
  outgoing(peer: Address, port: number): true | { refusedBy: string[] } | 'no-network' {
    const me = this.host.localAddress();
    const proven = this.proven(peer);
    const k = nodeKey0(peer);
    const refusedBy: string[] = [];
    for (const n of this.nets.values()) {
      const tags = proven.get(n.net) ?? (this.listed(n, k, this.host.now()) ? n.hints.get(k)!.tags : undefined);
      if (tags === undefined || !me) continue;
      if (policyAllows(n.policy ?? DENY, { fromTags: n.tags, fromAddress: me, toTags: tags, toAddress: peer, port })) return true;
      refusedBy.push(n.name);
    }
    return refusedBy.length > 0 ? { refusedBy } : 'no-network';
  }

  /**
   * May we reach `peer`'s `port` under network `net`'s policy alone (broadcast)? Its verified tags,
   * else those the rendezvous listed; undefined: we do not know it as a member of `net` (yet).
   */
  outgoingIn(net: number, peer: Address, port: number): boolean | undefined {
    const n = this.nets.get(net);
    const me = this.host.localAddress();
    if (!n || !me) return undefined;
    const k = nodeKey0(peer);
    const tags = this.proven(peer).get(net) ?? (this.listed(n, k, this.host.now()) ? n.hints.get(k)!.tags : undefined);
    if (tags === undefined) return undefined;
    return policyAllows(n.policy ?? DENY, { fromTags: n.tags, fromAddress: me, toTags: tags, toAddress: peer, port });
  }

  /** Do we share network `net` with `peer` (verified, or listed by the rendezvous)? */
  shares(net: number, peer: Address): boolean {
    const n = this.nets.get(net);
    if (!n) return false;
    const k = nodeKey0(peer);
    return this.proven(peer).has(net) || this.listed(n, k, this.host.now());
  }

  /** A peer went away: its proofs go with it (it presents them again on its next session). */
  forgetPeer(peer: Address): void {
    this.proofs.delete(nodeKey0(peer));
  }

  // ---------- networks.json ----------

  private load(): void {
    const raw = readJsonFile(this.file) as { networks?: unknown } | undefined;
    if (!raw || !Array.isArray(raw.networks)) return;
    for (const x of raw.networks as Record<string, unknown>[]) {
      try {
        const c = x.credential as Record<string, unknown>;
        const n: NetState = {
          net: Number(x.net),
          name: String(x.name),
          adminKey: unb64(x.adminKey),
          credential: { cert: unb64(c.cert), certSig: unb64(c.certSig), binding: unb64(c.binding), bindingSig: unb64(c.bindingSig) },
          tags: Array.isArray(x.tags) ? x.tags.map(String) : [],
          ephemeral: x.ephemeral === true,
          policyText: typeof x.policyText === 'string' ? x.policyText : undefined,
          policyVersion: typeof x.policyVersion === 'number' ? x.policyVersion : undefined,
          policy: undefined,
          kicks: new Map(),
          hints: new Map(),
        };
        // Our own credential must still verify (a damaged file is not a membership).
        const ok = verifyCredential(n.credential, { adminKey: n.adminKey, net: n.net, nodeKey: this.host.nodeKey, linked: this.linked });
        if (!ok.ok) throw new Error(ok.reason);
        if (n.policyText !== undefined) n.policy = parsePolicy(n.policyText);
        this.nets.set(n.net, n);
      } catch (err) {
        this.host.log.warn({ err: (err as Error).message }, 'networks.json: a membership skipped');
      }
    }
  }

  private save(): void {
    const networks = [...this.nets.values()].map((n) => ({
      net: n.net,
      name: n.name,
      adminKey: b64(n.adminKey),
      credential: {
        cert: b64(n.credential.cert),
        certSig: b64(n.credential.certSig),
        binding: b64(n.credential.binding),
        bindingSig: b64(n.credential.bindingSig),
      },
      tags: n.tags,
      ephemeral: n.ephemeral,
      policyText: n.policyText,
      policyVersion: n.policyVersion,
    }));
    try {
      fs.mkdirSync(this.host.home, { recursive: true });
      writeJsonAtomic(this.file, { networks });
    } catch (err) {
      this.host.log.warn({ err: (err as Error).message }, 'networks.json not written');
    }
  }
}

/** Until a network's policy is known and verified, members reach nobody there (no rules: deny all). */
const DENY: NetworkPolicy = new NetworkPolicy([]);
