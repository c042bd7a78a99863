// Turns one 0x01 packet into (at most) one signed 0x02 answer on the same link:
// envelope parsing, signature/addressee/freshness checks, the replay and
// retransmission cache, then the method itself.
import crypto from 'node:crypto';
import { PilotError, asPilotError } from '../util/errors.ts';
import type { Logger } from '../util/logger.ts';
import { buildPush, buildResponse, errorBody, parseRequest, RequestError, verifyRequest, type ResponseBody } from '../registry/envelope.ts';
import { MAX_REGISTRY_PACKET } from '../registry/protocol.ts';
import type { Identity } from '../registry/signing.ts';
import type { RegistryStore } from '../registry/store.ts';
import { parseAddress } from '../wire/address.ts';
import { ReplayCache } from './replay-cache.ts';
import { runMethod } from './registry-handlers.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';
import type { Link } from './link.ts';

export interface RegistryCounters {
  requests: number;
  hellos: number;
  executed: number;
  retransmits: number;
  errors: number;
  dropped: number;
  pushes: number;
}

export class RegistryService {
  readonly counters: RegistryCounters = { requests: 0, hellos: 0, executed: 0, retransmits: 0, errors: 0, dropped: 0, pushes: 0 };
  private readonly identity: Identity;
  private readonly store: RegistryStore;
  private readonly online: OnlineIndex;
  private readonly replay: ReplayCache;
  private readonly log: Logger;

  constructor(opts: { identity: Identity; store: RegistryStore; online: OnlineIndex; log: Logger; replayCacheSize?: number }) {
    this.identity = opts.identity;
    this.store = opts.store;
    this.online = opts.online;
    this.log = opts.log;
    this.replay = new ReplayCache(opts.replayCacheSize);
  }

  async handle(pkt: Buffer, link: Link): Promise<void> {
    this.counters.requests++;
    let req;
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
      this.answer(link, 'x', nonce, errorBody(e));
      return;
    }

    if (req.kind === 'hello') {
      this.counters.hellos++;
      this.answer(link, req.id, req.nonce, { ok: true, result: { serverKey: this.identity.publicKey.toString('base64'), observed: link.observed } });
      return;
    }

    const now = Date.now();
    const digest = crypto.createHash('sha256').update(pkt).digest('base64');
    const seen = this.replay.lookup(req.nonce, digest, now);
    if (seen.kind === 'retransmit') {
      // Byte-identical retry: same answer, no re-execution (still in flight: the answer is on its way).
      this.counters.retransmits++;
      if (seen.response) link.send(seen.response);
      return;
    }
    try {
      verifyRequest(req, this.identity.publicKey, now);
      if (seen.kind === 'replayed') throw new PilotError('REPLAYED', 'request nonce was already used', 'every request needs a fresh random nonce');
      if (!this.replay.add(req.nonce, digest, req.stmt.ts, now)) {
        throw new PilotError('STALE_REQUEST', 'request is older than the server replay horizon', 'retry with a fresh request');
      }
    } catch (err) {
      this.answer(link, req.id, req.nonce, errorBody(asPilotError(err)));
      return;
    }

    let body: ResponseBody;
    try {
      this.counters.executed++;
      body = { ok: true, result: await runMethod({ store: this.store, online: this.online }, req.stmt, link, now) };
    } catch (err) {
      const e = asPilotError(err);
      if (!(err instanceof PilotError)) this.log.error({ err, method: req.stmt.method }, 'registry method failed');
      // INTERNAL from asPilotError may carry driver text; the client only needs the code.
      body = errorBody(err instanceof PilotError ? e : new PilotError('INTERNAL', 'internal registry error', 'retry later; see the rendezvous log'));
    }
    const resp = this.answer(link, req.id, req.nonce, body);
    this.replay.setResponse(req.nonce, resp);
    if (req.stmt.method === 'register' && body.ok) this.log.info({ result: body.result, key: req.stmt.key }, 'node registered');
    else this.log.debug({ method: req.stmt.method, link: link.observed, ok: body.ok }, 'registry request');
  }

  private answer(link: Link, id: string, nonce: string | null, body: ResponseBody): Buffer {
    if (!body.ok) this.counters.errors++;
    let resp = buildResponse(this.identity, id, nonce, body);
    if (resp.length > MAX_REGISTRY_PACKET) {
      resp = buildResponse(this.identity, id, nonce, errorBody(new PilotError('INTERNAL', 'response too large for one packet')));
    }
    link.send(resp);
    return resp;
  }

  /** Signed unsolicited notice to a node (for later issues: punch coordination, trust requests). */
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
  }
}
