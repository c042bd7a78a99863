// Registry client used by the daemon. Transport-agnostic: the daemon hands us
// a send() for its UDP socket and feeds every 0x02/0x03 packet from the
// rendezvous to handlePacket(). Requests are retransmitted byte-identically so
// the server answers retries from its response cache (idempotent).
//
// Return routability: over UDP the rendezvous executes a signed request only
// if its statement echoes a cookie minted for our source ip:port. We keep the
// last cookie we got (hello answer, signed responses, 0x04 cookie replies) and
// put it in every request; a cookie reply (first contact, NAT rebinding, a
// restarted server) makes us re-sign the request with the new cookie and send
// it at once: one extra round trip, only then.
import { EventEmitter } from 'node:events';
import * as v from 'valibot';
import { PilotError, type ErrorCode } from '../util/errors.ts';
import { buildHello, buildRequest, decodeCookieReply, openServerMessage, type BuiltRequest } from './envelope.ts';
import {
  DeregisterResult,
  OfflineResult,
  FRESHNESS_MS,
  HeartbeatResult,
  HelloResult,
  HostnameResult,
  MAX_LAN_ENDPOINTS,
  MAX_REGISTRY_PACKET,
  RegisterResult,
  ResolveResult,
  RotateKeyResult,
  TrustApproveResult,
  TrustListPage,
  TrustPendingPage,
  TrustRejectResult,
  TrustRequestResult,
  TrustRevokeResult,
  VisibilityResult,
  type NodeReport,
  type Push,
} from './protocol.ts';
import type { Identity } from './signing.ts';
import { PacketType } from '../wire/packet-types.ts';
import { NetworkClient } from './network-client.ts';

export interface RegistryClientOptions {
  identity: Identity;
  send: (pkt: Buffer) => void;
  /** Pinned rendezvous key; absent: learnt (trust on first use) by hello(). */
  serverKey?: Buffer;
  /** Wait per attempt (ms). */
  timeoutMs?: number;
  /** Retransmissions after the first attempt. */
  retries?: number;
  /** Shown in error hints, e.g. "127.0.0.1:9000". */
  rendezvous?: string;
  /** This machine's clock (injected by tests). */
  now?: () => number;
}

export type RegisterResultT = v.InferOutput<typeof RegisterResult>;
export type HeartbeatResultT = v.InferOutput<typeof HeartbeatResult>;
export type HostnameResultT = v.InferOutput<typeof HostnameResult>;
export type VisibilityResultT = v.InferOutput<typeof VisibilityResult>;
export type ResolveResultT = v.InferOutput<typeof ResolveResult>;
export type RotateKeyResultT = v.InferOutput<typeof RotateKeyResult>;
export type TrustRequestResultT = v.InferOutput<typeof TrustRequestResult>;
export interface TrustPendingResultT {
  incoming: { from: string; hostname: string | null; reason: string | null; created: number }[];
  outgoing: { to: string; hostname: string | null; reason: string | null; created: number }[];
}
export interface TrustListResultT {
  trusted: { peer: string; hostname: string | null; since: number; mutual: true }[];
}

/** Safety stop for paging (each page holds at least one entry). */
const MAX_PAGES = 10_000;

interface Pending {
  req: BuiltRequest;
  method: string;
  /** Signed methods: kept to re-sign the request with a new cookie. */
  params: Record<string, unknown> | undefined;
  /** Cookie replies acted upon for this call (bounded: a forged reply cannot loop us). */
  cookieRetries: number;
  /** Re-signed once after STALE_REQUEST, with the clock offset that answer taught us. */
  skewRetried: boolean;
  schema: v.GenericSchema;
  attempts: number;
  timer: NodeJS.Timeout | undefined;
  sendError: Error | undefined;
  otherKey: Buffer | undefined;
  /** The key that signs this request when it is not the client's own (rotate_key: the new key). */
  signer?: Identity;
  resolve: (value: unknown) => void;
  reject: (e: PilotError) => void;
}

const MAX_SEEN_PUSHES = 4096;
/** Re-signs per call on cookie replies; more means the cookie never validates (e.g. an on-path forger). */
const MAX_COOKIE_RETRIES = 3;

const RESULT_SCHEMAS: Record<string, v.GenericSchema> = {
  register: RegisterResult,
  heartbeat: HeartbeatResult,
  set_hostname: HostnameResult,
  clear_hostname: HostnameResult,
  set_visibility: VisibilityResult,
  resolve: ResolveResult,
  rotate_key: RotateKeyResult,
  deregister: DeregisterResult,
  offline: OfflineResult,
  trust_request: TrustRequestResult,
  trust_pending: TrustPendingPage,
  trust_approve: TrustApproveResult,
  trust_reject: TrustRejectResult,
  trust_revoke: TrustRevokeResult,
  trust_list: TrustListPage,
};

/** Events of the registry client. */
export interface RegistryClientEvents {
  /** A fresh, signed, never-seen push from the rendezvous (trust requests, approvals, revocations). */
  push: [push: Push];
}

export class RegistryClient extends EventEmitter<RegistryClientEvents> {
  private readonly identity: Identity;
  private readonly sendFn: (pkt: Buffer) => void;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly rendezvous: string;
  private pinned: Buffer | undefined;
  /** Return-routability cookie for our current source address, as last given by the server. */
  private cookie: string | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly seenPushes = new Map<string, number>(); // push nonce -> expiry
  private closed = false;
  private readonly clock: () => number;
  /**
   * The rendezvous clock minus ours (ms), learnt from the signed timestamps of its
   * answers. The server accepts statements at most 5 s ahead of its clock (a tight
   * bound keeps future-dated nonces from outliving honest ones in its replay cache),
   * so a machine whose clock is off by more signs with the server's time instead, as
   * Kerberos clients do. Only answers to our own pending requests, signed by the
   * pinned key, move it: nobody else can set our clock.
   */
  private clockOffset = 0;

  constructor(opts: RegistryClientOptions) {
    super();
    this.identity = opts.identity;
    this.sendFn = opts.send;
    this.pinned = opts.serverKey ? Buffer.from(opts.serverKey) : undefined;
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.retries = opts.retries ?? 4;
    this.rendezvous = opts.rendezvous ?? 'the rendezvous server';
    this.clock = opts.now ?? Date.now;
  }

  /** Our clock, corrected to the rendezvous's. */
  private now(): number {
    return this.clock() + this.clockOffset;
  }

  get serverKey(): Buffer | undefined {
    return this.pinned;
  }

  /** Our clock corrected to the rendezvous's (ms): what signed statements are dated with. */
  serverNow(): number {
    return this.now();
  }

  private netClient: NetworkClient | undefined;
  /** Fleet methods (issue 18): networks, invites, joins, policy, tickets, audit, tags, find. */
  get networks(): NetworkClient {
    this.netClient ??= new NetworkClient(this, this.identity);
    return this.netClient;
  }

  // ---------------- API ----------------

  /** Unsigned: learns (and pins, if nothing is pinned yet) the server key and our observed endpoint. */
  async hello(): Promise<{ serverKey: Buffer; observed: string; altPort?: number; relayDf?: boolean; cookie?: string }> {
    const r = (await this.call('hello', buildHello(), HelloResult)) as v.InferOutput<typeof HelloResult>;
    if (r.cookie !== undefined) this.cookie = r.cookie;
    return {
      serverKey: Buffer.from(r.serverKey, 'base64'),
      observed: r.observed,
      ...(r.altPort !== undefined ? { altPort: r.altPort } : {}),
      ...(r.relayDf !== undefined ? { relayDf: r.relayDf } : {}),
      ...(r.cookie !== undefined ? { cookie: r.cookie } : {}),
    };
  }

  register(p: { email: string; hostname?: string; lanEndpoints?: string[]; public?: boolean; invite?: string; ephemeral?: boolean }): Promise<RegisterResultT> {
    return this.signed('register', pick(lanCap(p), ['email', 'hostname', 'lanEndpoints', 'public', 'invite', 'ephemeral']), RegisterResult);
  }

  /** With an optional self-report (NAT class, paths, punches) for the server's metrics. */
  async heartbeat(p: { lanEndpoints?: string[] } & NodeReport = {}): Promise<HeartbeatResultT> {
    const keys: (keyof typeof p)[] = this.reportRefused ? ['lanEndpoints'] : ['lanEndpoints', 'nat', 'paths', 'punches'];
    try {
      return await this.signed('heartbeat', pick(lanCap(p), keys), HeartbeatResult);
    } catch (err) {
      // A server older than the report fields refuses them (strict schema): stop sending them.
      if (this.reportRefused || (err as PilotError).code !== 'BAD_REQUEST' || (p.nat ?? p.paths ?? p.punches) === undefined) throw err;
      this.reportRefused = true;
      return this.signed('heartbeat', pick(lanCap(p), ['lanEndpoints']), HeartbeatResult);
    }
  }
  private reportRefused = false;

  setHostname(hostname: string): Promise<HostnameResultT> {
    return this.signed('set_hostname', { hostname }, HostnameResult);
  }

  clearHostname(): Promise<HostnameResultT> {
    return this.signed('clear_hostname', {}, HostnameResult);
  }

  setVisibility(pub: boolean): Promise<VisibilityResultT> {
    return this.signed('set_visibility', { public: pub }, VisibilityResult);
  }

  resolve(q: { address?: string; hostname?: string; publicKey?: string }): Promise<ResolveResultT> {
    return this.signed('resolve', pick(q, ['address', 'hostname', 'publicKey']), ResolveResult);
  }

  /** `removed`: the rendezvous deleted the record (an ephemeral node); else the key keeps its address, hidden. */
  async deregister(): Promise<{ removed: boolean }> {
    const r = await this.signed('deregister', {}, DeregisterResult);
    return { removed: r.removed === true };
  }

  /** A clean stop: the rendezvous shows us offline at once instead of after ONLINE_MS of silence. */
  async offline(): Promise<void> {
    await this.signed('offline', {}, OfflineResult);
  }

  /**
   * Moves our address to `next` (issue 18 key rotation): `rotation` is the statement signed by
   * our current key; the request itself is signed by `next`, proving we hold it. Retrying the
   * same rotation after a lost answer or a crash answers `already: true`.
   */
  rotateKey(rotation: { statement: string; sig: Buffer }, next: Identity): Promise<RotateKeyResultT> {
    return this.signed('rotate_key', { statement: rotation.statement, sig: rotation.sig.toString('base64') }, RotateKeyResult, next);
  }

  // ---- trust (addresses are "N:XXXX.YYYY.YYYY" strings) ----

  /** Asks `to` for mutual trust: 'pending' until it approves; 'trusted' if it already asked us (or we already trust each other). */
  trustRequest(to: string, reason?: string): Promise<TrustRequestResultT> {
    return this.signed('trust_request', reason === undefined ? { to } : { to, reason }, TrustRequestResult);
  }

  /** Unanswered requests to us (incoming) and from us (outgoing); pages through long lists. */
  async trustPending(): Promise<TrustPendingResultT> {
    const out: TrustPendingResultT = { incoming: [], outgoing: [] };
    for (let i = 0; i < MAX_PAGES; i++) {
      const params: Record<string, unknown> = {};
      if (out.incoming.length > 0) params.incomingOffset = out.incoming.length;
      if (out.outgoing.length > 0) params.outgoingOffset = out.outgoing.length;
      const page = await this.signed('trust_pending', params, TrustPendingPage);
      out.incoming.push(...page.incoming);
      out.outgoing.push(...page.outgoing);
      if (!page.more || page.incoming.length + page.outgoing.length === 0) break;
    }
    out.incoming = dedupe(out.incoming, (x) => x.from);
    out.outgoing = dedupe(out.outgoing, (x) => x.to);
    return out;
  }

  /** Approves the pending request from `from`: the pair is created from its signed request and our signed approval. */
  trustApprove(from: string): Promise<v.InferOutput<typeof TrustApproveResult>> {
    return this.signed('trust_approve', { from }, TrustApproveResult);
  }

  trustReject(from: string, reason?: string): Promise<v.InferOutput<typeof TrustRejectResult>> {
    return this.signed('trust_reject', reason === undefined ? { from } : { from, reason }, TrustRejectResult);
  }

  /** Ends the trust pair with `peer` (either side may). */
  trustRevoke(peer: string): Promise<v.InferOutput<typeof TrustRevokeResult>> {
    return this.signed('trust_revoke', { peer }, TrustRevokeResult);
  }

  /** Every node we have a mutual trust pair with; pages through long lists. */
  async trustList(): Promise<TrustListResultT> {
    const trusted: TrustListResultT['trusted'] = [];
    for (let i = 0; i < MAX_PAGES; i++) {
      const page = await this.signed('trust_list', trusted.length > 0 ? { offset: trusted.length } : {}, TrustListPage);
      trusted.push(...page.trusted);
      if (!page.more || page.trusted.length === 0) break;
    }
    return { trusted: dedupe(trusted, (x) => x.peer) };
  }

  /**
   * Any signed method (later ones too, e.g. trust): signs, sends, retransmits
   * byte-identically, and resolves with the verified result (checked against
   * the known result schema of the method, if any) or rejects with a PilotError.
   */
  request<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    if (method === 'hello') return this.hello() as Promise<T>;
    const schema: v.GenericSchema = Object.hasOwn(RESULT_SCHEMAS, method) ? RESULT_SCHEMAS[method]! : v.unknown();
    return this.signed(method, params, schema) as Promise<T>;
  }

  /** Every 0x02/0x03 packet from the rendezvous address. Anything not verifiably from the pinned key is dropped. */
  handlePacket(pkt: Buffer): void {
    if (this.closed) return;
    if (pkt[0] === PacketType.RegistryCookie) return this.onCookieReply(pkt);
    const opened = openServerMessage(pkt, this.pinned);
    if (!opened) return;
    if ('badKey' in opened) {
      const p = opened.reqNonce ? this.pending.get(opened.reqNonce) : undefined;
      if (p) p.otherKey = opened.badKey;
      return;
    }
    const { msg, signer } = opened;
    if (msg.type === 'push') {
      if (this.pinned) this.onPush(msg.stmt);
      return;
    }
    const s = msg.stmt;
    const p = s.reqNonce ? this.pending.get(s.reqNonce) : undefined;
    if (!p) return;
    if (!this.pinned) {
      // Only a hello may be answered before a key is pinned: trust on first use.
      if (p.method !== 'hello' || !s.ok || (s.result as { serverKey?: unknown })?.serverKey !== signer.toString('base64')) return;
      this.pinned = signer;
    }
    if (s.cookie !== undefined) this.cookie = s.cookie;
    // Half a second of slack: the answer's time is its send time, not ours.
    const skew = s.ts - this.clock();
    if (Math.abs(skew - this.clockOffset) > 500) this.clockOffset = skew;
    if (!s.ok && s.error.code === 'STALE_REQUEST' && p.params && !p.skewRetried) {
      // Our clock was off: sign again with the corrected one, once.
      p.skewRetried = true;
      this.resign(p, this.cookie);
      return;
    }
    this.finish(p);
    if (!s.ok) {
      p.reject(new PilotError(s.error.code as ErrorCode, s.error.message, s.error.hint));
      return;
    }
    const r = v.safeParse(p.schema, s.result);
    if (!r.success) p.reject(new PilotError('INTERNAL', `malformed ${p.method} result from the rendezvous`));
    else p.resolve(r.output);
  }

  /** Clears timers and rejects everything pending. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.pending.values()]) {
      this.finish(p);
      p.reject(new PilotError('CONNECTION_RESET', 'registry client closed'));
    }
    this.seenPushes.clear();
  }

  // ---------------- internals ----------------

  private async signed<S extends v.GenericSchema>(method: string, params: Record<string, unknown>, schema: S, signer?: Identity): Promise<v.InferOutput<S>> {
    if (!this.pinned) await this.hello();
    const req = buildRequest(signer ?? this.identity, this.pinned!, method, params, this.now(), this.cookie);
    return (await this.call(method, req, schema, params, signer)) as v.InferOutput<S>;
  }

  /**
   * The server wants proof that we receive at our source address: re-sign the
   * pending request with its cookie (new nonce) and send it now. Unsigned, so
   * only bound to our request nonce; a forged one costs us a retry, no more.
   */
  private onCookieReply(pkt: Buffer): void {
    const r = decodeCookieReply(pkt);
    const p = r ? this.pending.get(r.reqNonce) : undefined;
    if (!r || !p?.params || !this.pinned || p.cookieRetries >= MAX_COOKIE_RETRIES) return;
    p.cookieRetries++;
    this.cookie = r.cookie;
    this.resign(p, r.cookie);
  }

  /** The pending signed request again, with a new nonce, our corrected time and `cookie`; sent now. */
  private resign(p: Pending, cookie: string | undefined): void {
    if (!p.params || !this.pinned) return;
    const req = buildRequest(p.signer ?? this.identity, this.pinned, p.method, p.params, this.now(), cookie);
    if (req.packet.length > MAX_REGISTRY_PACKET) return;
    if (p.timer) clearTimeout(p.timer);
    this.pending.delete(p.req.nonce);
    p.req = req;
    this.pending.set(req.nonce, p);
    p.attempts = Math.max(0, p.attempts - 1);
    this.attempt(p);
  }

  private call(method: string, req: BuiltRequest, schema: v.GenericSchema, params?: Record<string, unknown>, signer?: Identity): Promise<unknown> {
    if (this.closed) return Promise.reject(new PilotError('CONNECTION_RESET', 'registry client closed'));
    if (req.packet.length > MAX_REGISTRY_PACKET) {
      return Promise.reject(
        new PilotError('BAD_ARGUMENT', `${method} request is too large (${req.packet.length} > ${MAX_REGISTRY_PACKET} bytes)`, 'shorten the parameters'),
      );
    }
    return new Promise((resolve, reject) => {
      const p: Pending = {
        req,
        method,
        params,
        cookieRetries: 0,
        skewRetried: false,
        schema,
        attempts: 0,
        timer: undefined,
        sendError: undefined,
        otherKey: undefined,
        ...(signer ? { signer } : {}),
        resolve,
        reject,
      };
      this.pending.set(req.nonce, p);
      this.attempt(p);
    });
  }

  private attempt(p: Pending): void {
    if (p.attempts > this.retries) {
      this.finish(p);
      p.reject(this.noAnswer(p));
      return;
    }
    p.attempts++;
    try {
      this.sendFn(p.req.packet);
    } catch (err) {
      p.sendError = err as Error;
    }
    p.timer = setTimeout(() => this.attempt(p), this.timeoutMs);
    p.timer.unref?.();
  }

  private noAnswer(p: Pending): PilotError {
    const tries = `${p.attempts} attempt${p.attempts === 1 ? '' : 's'}`;
    if (p.otherKey) {
      return new PilotError(
        'BAD_SIGNATURE',
        `${this.rendezvous} answered ${p.method} signed by a different server key (${p.otherKey.toString('base64')})`,
        'the rendezvous key changed since it was pinned; if that is expected, delete serverKey from the daemon config and start again',
      );
    }
    if (p.sendError) {
      return new PilotError(
        'UNREACHABLE',
        `cannot send to ${this.rendezvous}: ${p.sendError.message}`,
        `check the network and the --registry address of ${this.rendezvous}`,
      );
    }
    return new PilotError(
      'TIMEOUT',
      `no answer from ${this.rendezvous} to ${p.method} after ${tries}`,
      `is pilot-rendezvous running and reachable over UDP at ${this.rendezvous}? check --registry HOST:PORT and firewalls`,
    );
  }

  private finish(p: Pending): void {
    if (p.timer) clearTimeout(p.timer);
    p.timer = undefined;
    this.pending.delete(p.req.nonce);
  }

  private onPush(stmt: { push: Push; ts: number; nonce: string }): void {
    const now = this.now();
    if (Math.abs(now - stmt.ts) > FRESHNESS_MS) return;
    if (this.seenPushes.has(stmt.nonce)) return;
    // Bounded replay memory: expired entries go first, then the oldest.
    for (const [n, exp] of this.seenPushes) {
      if (exp > now && this.seenPushes.size < MAX_SEEN_PUSHES) break;
      this.seenPushes.delete(n);
    }
    this.seenPushes.set(stmt.nonce, now + 2 * FRESHNESS_MS);
    this.emit('push', stmt.push);
  }
}

/** The server accepts at most MAX_LAN_ENDPOINTS; extra ones are dropped here rather than failing the call. */
function lanCap<T extends { lanEndpoints?: string[] }>(p: T): T {
  return p.lanEndpoints && p.lanEndpoints.length > MAX_LAN_ENDPOINTS ? { ...p, lanEndpoints: p.lanEndpoints.slice(0, MAX_LAN_ENDPOINTS) } : p;
}

/** Pages of a list that changed between calls may repeat an entry: keep the first. */
function dedupe<T>(list: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return list.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
}

function pick<T extends object>(o: T, keys: (keyof T)[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k as string] = o[k];
  return out;
}
