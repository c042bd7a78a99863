// Turns one 0x01 packet into (at most) one signed 0x02 answer on the same link:
// envelope parsing, signature/addressee/freshness checks, the replay and
// retransmission cache, then the method itself.
import crypto from 'node:crypto';
import { PilotError, asPilotError } from '../util/errors.ts';
import type { Logger } from '../util/logger.ts';
import { buildPush, buildResponse, errorBody, parseRequest, RequestError, verifyRequest, type ResponseBody } from '../registry/envelope.ts';
import { AMPLIFICATION_FACTOR, MAX_REGISTRY_PACKET, METHODS } from '../registry/protocol.ts';
import type { Identity } from '../registry/signing.ts';
import type { NodeRecord, RegistryStore } from './store/store.ts';
import { formatAddress, parseAddress, type Address } from '../wire/address.ts';
import { ReplayCache, type AddResult } from './replay-cache.ts';
import { runMethod, type HandlerContext } from './registry-handlers.ts';
import { TrustState } from './trust-handlers.ts';
import { NETWORK_LIMITS, NetworkState, sweepEphemeral } from './network-handlers.ts';
import { sweepEphemeralNodes, type NodeSweepState } from './lifecycle.ts';
import { KeyedLimiter, sourceKey, type Rate } from './rate-limit.ts';
import { registryLimits, type RegistryLimits } from './registry-limits.ts';
import { IdentityGuard } from './identity-guard.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';
import type { Link } from './link.ts';
import type { Cluster } from './cluster.ts';
import { ReturnRoutability } from './return-routability.ts';

export interface RegistryCounters {
  requests: number;
  hellos: number;
  executed: number;
  retransmits: number;
  errors: number;
  /** Malformed UDP requests not worth (or not safe) to answer. */
  dropped: number;
  /** Unauthenticated UDP answers withheld because they would amplify a (possibly spoofed) request. */
  amplificationDropped: number;
  /** Requests from keys not registered, dropped over their source's allowance (before any signature check). */
  unregisteredDropped: number;
  pushes: number;
}

export interface RegistryServiceOptions {
  identity: Identity;
  store: RegistryStore;
  online: OnlineIndex;
  log: Logger;
  /** Old name of limits.replayCacheSize. */
  replayCacheSize?: number;
  /** What one key, one source or everybody may cost the registry (defaults: DEFAULT_REGISTRY_LIMITS). */
  limits?: Partial<RegistryLimits>;
  /** How long answers are kept for retransmissions (default: the 60 s freshness window). */
  responseCacheMs?: number;
  /** trust_request calls per node (default 10 a minute, bursts of 20). */
  trustRequestRate?: Rate;
  /** Trust pair created or deleted (the relay drops cached decisions). */
  onPairChanged?: (x: Address, y: Address) => void;
  /** Node visibility changed or it deregistered. */
  onNodeChanged?: (a: Address) => void;
  /** Other instances sharing the registry: pushes reach nodes online there, changes are broadcast. */
  cluster?: Cluster;
  /** UDP address validation (cookies); default: a fresh one with the default rotation. */
  routability?: ReturnRoutability;
}

/**
 * The key a signed request claims, found without parsing (the statement is a
 * JSON string inside the envelope, so its quotes are escaped). Only a hint:
 * a request that hides or fakes it is charged as an unknown key.
 */
const CLAIMED_KEY = /\\"key\\":\\"([A-Za-z0-9+/]{43}=)\\"/;
export function claimedKey(pkt: Buffer): string | undefined {
  return CLAIMED_KEY.exec(pkt.toString('latin1', 1, Math.min(pkt.length, 1200)))?.[1];
}

const notRegistered = () =>
  new PilotError('NOT_REGISTERED', 'this key is not registered with the rendezvous', 'register first (the daemon does this on start)');

function refuseUnless(r: AddResult): void {
  if (r === 'ok') return;
  if (r === 'stale') throw new PilotError('STALE_REQUEST', 'request is older than the replay horizon kept for this key', 'retry with a fresh request');
  if (r === 'source') {
    throw new PilotError(
      'RATE_LIMITED',
      'too many unregistered keys are making requests from your address',
      'wait a minute; keys that registered are not counted (one host behind one address should not need more than a few new identities at once)',
    );
  }
  throw new PilotError('RATE_LIMITED', 'the rendezvous is tracking too many unregistered keys', 'retry in a minute');
}

/** Announced in hello answers once the second beacon port is bound (NAT classification). */
export interface BeaconInfo {
  altPort?: number;
  /** The UDP socket sends with DF and never fragments: relayed packets too big for a path are dropped, so daemons may probe the relayed path's MTU. */
  relayDf?: boolean;
}

export class RegistryService {
  readonly counters: RegistryCounters = {
    requests: 0,
    hellos: 0,
    executed: 0,
    retransmits: 0,
    errors: 0,
    dropped: 0,
    amplificationDropped: 0,
    unregisteredDropped: 0,
    pushes: 0,
  };
  private readonly identity: Identity;
  private readonly store: RegistryStore;
  private readonly online: OnlineIndex;
  private readonly replay: ReplayCache;
  /** Requests of unregistered keys per source: the cheap ones to make, so they are charged before their signature is checked. */
  private readonly unregisteredLimiter: KeyedLimiter;
  private readonly log: Logger;
  private readonly ctx: HandlerContext;
  private readonly trust: TrustState;
  private readonly guard: IdentityGuard;
  private readonly net: NetworkState;
  private readonly nodeSweep: NodeSweepState = { last: 0, running: false };

  readonly beacon: BeaconInfo = {};
  readonly routability: ReturnRoutability;

  constructor(opts: RegistryServiceOptions) {
    this.identity = opts.identity;
    this.store = opts.store;
    this.online = opts.online;
    this.log = opts.log;
    const limits = registryLimits({ replayCacheSize: opts.replayCacheSize, ...opts.limits });
    this.replay = new ReplayCache({
      maxEntries: limits.replayCacheSize,
      perKey: limits.replayPerKey,
      unknownPerSource: limits.unregisteredKeysPerSource,
      maxUnknownKeys: limits.maxUnregisteredKeys,
      responseMs: opts.responseCacheMs,
    });
    this.unregisteredLimiter = new KeyedLimiter(limits.unregisteredRate);
    this.trust = new TrustState(opts.trustRequestRate, limits.trustRequestTtlMs);
    this.guard = new IdentityGuard(limits);
    // One limit for ephemeral nodes and memberships (--ephemeral-timeout); swept at least 8 times per timeout.
    this.net = new NetworkState(opts.identity, {
      ephemeralSilenceMs: limits.ephemeralTimeoutMs,
      networksPerAdmin: limits.networksPerAdmin,
      membersPerNetwork: limits.membersPerNetwork,
      ephemeralSweepMs: Math.min(NETWORK_LIMITS.ephemeralSweepMs, Math.max(1000, limits.ephemeralTimeoutMs / 8)),
    });
    this.routability = opts.routability ?? new ReturnRoutability();
    const onPair = opts.onPairChanged;
    const onNode = opts.onNodeChanged;
    const cluster = opts.cluster;
    this.ctx = {
      store: this.store,
      online: this.online,
      trust: this.trust,
      guard: this.guard,
      net: this.net,
      ...(cluster ? { cluster } : {}),
      hooks: {
        push: (to, event, data) => {
          try {
            if (this.push(formatAddress(to), event, data) || !cluster) return;
            // Not online here: the instance it is online at signs and sends it.
            cluster.pushRemote(to, event, data).catch((err: unknown) => this.log.warn({ err: (err as Error).message, event }, 'remote push not sent'));
          } catch (err) {
            this.log.warn({ err: (err as Error).message, event }, 'push not sent');
          }
        },
        pairChanged: (x, y) => {
          onPair?.(x, y);
          cluster?.broadcastPairChanged(x, y);
        },
        nodeChanged: (a) => {
          onNode?.(a);
          cluster?.broadcastNodeChanged(a);
        },
      },
    };
  }

  async handle(pkt: Buffer, link: Link): Promise<void> {
    this.counters.requests++;
    // Before any parsing (the costly part of a request we end up refusing): a
    // signed request whose key is not online here is charged to its source's
    // small allowance, so a flood from throwaway keys is dropped for the price
    // of a regular expression. The claim is checked against the parsed
    // statement below.
    const source = sourceKey(link.observed);
    const claimed = claimedKey(pkt);
    const charged = claimed !== undefined && this.online.getByKey(claimed) === undefined;
    if (charged && !this.chargeUnregistered(source)) return;
    let req: ReturnType<typeof parseRequest>;
    try {
      req = parseRequest(pkt);
    } catch (err) {
      const e = asPilotError(err);
      const nonce = err instanceof RequestError ? err.nonce : null;
      // Unparseable UDP junk is dropped, not answered: answering spoofed sources
      // with a bigger packet would make us a reflector. TCP sources are real.
      if (nonce === null && link.kind === 'udp') {
        this.counters.dropped++;
        this.log.debug({ link: link.observed, err: e.message }, 'dropped malformed registry request');
        return;
      }
      this.answerUnauthenticated(link, pkt.length, 'x', nonce, errorBody(e));
      return;
    }

    if (req.kind === 'hello') {
      this.counters.hellos++;
      const alt = this.beacon.altPort !== undefined ? { altPort: this.beacon.altPort } : {};
      const df = this.beacon.relayDf === true ? { relayDf: true } : {};
      // The cookie lets the next signed request from this source through without a cookie round trip.
      const cookie = link.kind === 'udp' ? { cookie: this.routability.cookieFor(link) } : {};
      this.answerUnauthenticated(link, pkt.length, req.id, req.nonce, {
        ok: true,
        result: { serverKey: this.identity.publicKey.toString('base64'), observed: link.observed, ...alt, ...df, ...cookie },
      });
      return;
    }

    // Return routability first (cheap HMAC, before signatures or the response
    // cache): a UDP source that has not echoed a cookie for its own ip:port
    // gets only a cookie reply no larger than its request - nothing executes,
    // no link moves, no cached answer is reflected to a spoofed address.
    const rr = this.routability.check(link, req.stmt.cookie);
    if (!rr.ok) {
      this.log.debug({ link: link.observed, method: req.stmt.method }, 'cookie reply: source not yet return-routable');
      this.routability.sendCookieReply(link, req.nonce, pkt.length);
      return;
    }

    const now = Date.now();
    const key = req.stmt.key;
    const digest = crypto.createHash('sha256').update(pkt).digest('base64');
    if (this.retransmitted(key, req.nonce, digest, link, now)) return;
    // A statement naming another key than the one spotted above (a decoy) pays now.
    if (!charged && (key !== claimed || !this.online.getByKey(key)) && !this.chargeUnregistered(source)) return;
    let known: NodeRecord | null | undefined;
    try {
      // The signature is checked before any state is kept for the key; a key
      // that is not registered gets replay state only to register.
      // `known`: the stored record when it had to be looked up (null: none), handed to the method
      // so that register does not look it up again.
      known = await this.lookupUnlessOnline(key);
      const registered = known !== null;
      verifyRequest(req, this.identity.publicKey, now);
      // The store lookup yielded: a copy of this request may have been added meanwhile.
      if (this.retransmitted(key, req.nonce, digest, link, now)) return;
      if (this.replay.lookup(key, req.nonce, digest, now).kind === 'replayed') {
        throw new PilotError('REPLAYED', 'request nonce was already used', 'every request needs a fresh random nonce');
      }
      // Any other known method from an unknown key fails without effect: no state needed to refuse it.
      // rotate_key is signed by the NEW key (not registered yet): like register, it may come from an unknown key.
      if (!registered && req.stmt.method !== 'register' && req.stmt.method !== 'rotate_key' && (METHODS as readonly string[]).includes(req.stmt.method))
        throw notRegistered();
      refuseUnless(this.replay.add(key, req.nonce, digest, req.stmt.ts, now, { registered, source }));
    } catch (err) {
      // The source is return-routable (cookie or TCP): the refusal may be full size.
      this.answer(link, req.id, req.nonce, errorBody(asPilotError(err)));
      return;
    }

    let body: ResponseBody;
    try {
      this.counters.executed++;
      body = { ok: true, result: await runMethod(this.ctx, req.stmt, link, now, { text: req.stmtText, sig: Buffer.from(req.sig, 'base64') }, known) };
    } catch (err) {
      const e = asPilotError(err);
      if (!(err instanceof PilotError)) this.log.error({ err, method: req.stmt.method }, 'registry method failed');
      // INTERNAL from asPilotError may carry driver text; the client only needs the code.
      body = errorBody(
        err instanceof PilotError
          ? e
          : (this.ctx.store.explainError?.(err) ?? new PilotError('INTERNAL', 'internal registry error', 'retry later; see the rendezvous log')),
      );
    }
    const resp = this.answer(link, req.id, req.nonce, body, rr.refresh);
    this.replay.setResponse(key, req.nonce, resp);
    if ((req.stmt.method === 'register' || req.stmt.method === 'rotate_key') && body.ok) this.replay.markRegistered(key);
    if (req.stmt.method === 'register' && body.ok) this.log.info({ result: body.result, key: req.stmt.key }, 'node registered');
    else this.log.debug({ method: req.stmt.method, link: link.observed, ok: body.ok }, 'registry request');
  }

  private chargeUnregistered(source: string): boolean {
    if (this.unregisteredLimiter.take(source)) return true;
    this.counters.unregisteredDropped++;
    return false;
  }

  /** A byte-identical retry of a request already taken: same answer (if there is one yet), no re-execution. */
  private retransmitted(key: string, nonce: string, digest: string, link: Link, now: number): boolean {
    const seen = this.replay.lookup(key, nonce, digest, now);
    if (seen.kind !== 'retransmit') return false;
    this.counters.retransmits++;
    if (seen.response) link.send(seen.response);
    return true;
  }

  /**
   * Registered keys (online here, or in the store) get replay state freely; others are charged to
   * their source. Online here: undefined (not looked up); else the stored record, or null if none.
   */
  private async lookupUnlessOnline(keyB64: string): Promise<NodeRecord | null | undefined> {
    if (this.online.getByKey(keyB64)) return undefined;
    return (await this.store.getByKey(Buffer.from(keyB64, 'base64'))) ?? null;
  }

  private build(link: Link, id: string, nonce: string | null, body: ResponseBody, cookie?: string): Buffer {
    if (!body.ok) this.counters.errors++;
    const resp = buildResponse(this.identity, id, nonce, body, link.observed, Date.now(), cookie);
    if (resp.length <= MAX_REGISTRY_PACKET) return resp;
    return buildResponse(this.identity, id, nonce, errorBody(new PilotError('INTERNAL', 'response too large for one packet')), link.observed);
  }

  private answer(link: Link, id: string, nonce: string | null, body: ResponseBody, cookie?: string): Buffer {
    const resp = this.build(link, id, nonce, body, cookie);
    link.send(resp);
    return resp;
  }

  /**
   * Answers to requests whose signer is not proven (hello, refused requests):
   * a UDP source may be spoofed, so such an answer is withheld when it is more
   * than AMPLIFICATION_FACTOR times the request. TCP sources are real.
   */
  private answerUnauthenticated(link: Link, requestBytes: number, id: string, nonce: string | null, body: ResponseBody): void {
    const resp = this.build(link, id, nonce, body);
    if (link.kind === 'udp' && resp.length > AMPLIFICATION_FACTOR * requestBytes) {
      this.counters.amplificationDropped++;
      this.log.debug({ link: link.observed, requestBytes, responseBytes: resp.length }, 'withheld an amplifying answer');
      return;
    }
    link.send(resp);
  }

  /** Signed unsolicited notice to a node, over the link it was last heard on (UDP endpoint or TCP connection). */
  push(address: string, event: string, data: unknown): boolean {
    const e = this.online.getByAddress(parseAddress(address));
    if (!e || !isOnline(e) || !e.link) return false;
    const pkt = buildPush(this.identity, event, data);
    if (pkt.length > MAX_REGISTRY_PACKET) throw new PilotError('BAD_ARGUMENT', 'push too large for one packet');
    this.counters.pushes++;
    return e.link.send(pkt);
  }

  prune(now = Date.now()): void {
    this.replay.prune(now);
    this.unregisteredLimiter.prune(now);
    this.trust.limiter.prune(now);
    this.net.prune(now);
    sweepEphemeral(this.ctx, now).then(
      (n) => n > 0 && this.log.info({ removed: n }, 'silent ephemeral members left their networks'),
      (err: unknown) => this.log.warn({ err: (err as Error).message }, 'ephemeral member sweep failed'),
    );
    sweepEphemeralNodes(this.ctx, now, this.nodeSweep).then(
      (n) => n > 0 && this.log.info({ removed: n }, 'silent ephemeral nodes removed'),
      (err: unknown) => this.log.warn({ err: (err as Error).message }, 'ephemeral node sweep failed'),
    );
    this.guard.sweep(this.store, now).then(
      (n) => n > 0 && this.log.info({ released: n }, 'hostname leases lapsed'),
      (err: unknown) => this.log.warn({ err: (err as Error).message }, 'hostname lease sweep failed'),
    );
  }
}
