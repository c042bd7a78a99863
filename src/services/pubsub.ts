// Port 1002, event stream: every daemon is a small broker for its trusted peers.
//
//   {op:"publish", topic, data}    -> {ok:true, delivered}
//   {op:"subscribe", topic}        -> {ok:true}, then one frame per matching event
//                                     {topic, data, from, ts, seq, dropped?}, and
//                                     {keepalive:true} every 30 s, until either side closes
//
// A subscriber that cannot keep up loses events (counted and reported in its
// next event as `dropped`) instead of growing the broker's memory.
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { issuesText, withMessages } from '../util/schema.ts';
import { ByteReader, MAX_FRAME, REQUEST_TIMEOUT_MS, encodeFrame, okFrame, refuse, withTimeout } from './framing.ts';
import { ask } from './request.ts';
import type { ServiceHost, ServiceStream } from './host.ts';
import { topicMatches, validatePattern, validateTopic } from './topics.ts';

export const PUBSUB_PORT = 1002;
export const MAX_EVENT_DATA = 64 * 1024;
const KEEPALIVE_MS = 30_000;
/** Event frames carry up to MAX_EVENT_DATA of data plus a little JSON. */
const MAX_EVENT_FRAME = MAX_EVENT_DATA * 2 + 4096;

export interface PubSubEvent {
  topic: string;
  data: string;
  from: string;
  ts: number;
  seq: number;
  dropped?: number;
}

interface Subscriber {
  pattern: string;
  /** The remote subscriber; undefined for our own (local) subscriptions. */
  peer: string | undefined;
  /** Bytes queued towards it, not yet sent (its stream's buffer). */
  queued(): number;
  /** `room` false: drop it (and count the drop). Returns false when dropped. */
  deliver(ev: PubSubEvent, room: boolean): boolean;
}

export interface BrokerLimits {
  /** Subscriptions in all. */
  maxSubscribers: number;
  /** Subscriptions of one remote peer (its share). */
  maxPerPeer: number;
  /** Bytes queued towards one subscriber before its events are dropped. */
  backlogBytes: number;
  /** Bytes queued towards all subscribers together before events are dropped. */
  totalBacklogBytes: number;
}

export const DEFAULT_BROKER_LIMITS: BrokerLimits = { maxSubscribers: 256, maxPerPeer: 16, backlogBytes: 1 << 20, totalBacklogBytes: 32 << 20 };

export class Broker {
  private readonly subs = new Set<Subscriber>();
  private readonly perPeer = new Map<string, number>();
  private seq = 0;
  published = 0;
  readonly limits: BrokerLimits;

  constructor(limits: Partial<BrokerLimits> = {}) {
    this.limits = { ...DEFAULT_BROKER_LIMITS, ...limits };
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /**
   * `peer`: the remote subscriber (counted against its share); `queued`: what
   * its stream still holds (events are dropped beyond the backlog limits).
   */
  subscribe(pattern: string, deliver: (ev: PubSubEvent, room: boolean) => boolean, peer?: string, queued: () => number = () => 0): () => void {
    validatePattern(pattern);
    if (this.subs.size >= this.limits.maxSubscribers)
      throw new PilotError('RATE_LIMITED', `too many subscribers (${this.limits.maxSubscribers})`, 'retry later');
    if (peer !== undefined) {
      const mine = this.perPeer.get(peer) ?? 0;
      if (mine >= this.limits.maxPerPeer) {
        throw new PilotError(
          'QUOTA_EXCEEDED',
          `the broker is out of room for you: you hold ${mine} subscriptions (limit ${this.limits.maxPerPeer} per peer)`,
          'close subscriptions you no longer need, or subscribe once with a wildcard pattern (a.*)',
        );
      }
      this.perPeer.set(peer, mine + 1);
    }
    const s: Subscriber = { pattern, peer, queued, deliver };
    this.subs.add(s);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.subs.delete(s);
      if (peer !== undefined) {
        const n = (this.perPeer.get(peer) ?? 1) - 1;
        if (n <= 0) this.perPeer.delete(peer);
        else this.perPeer.set(peer, n);
      }
    };
  }

  /** Bytes queued towards all subscribers. */
  backlog(): number {
    let n = 0;
    for (const s of this.subs) n += s.queued();
    return n;
  }

  /** May one more event go to `s` (or is it, or everyone, too far behind)? */
  private hasRoom(s: Subscriber, total: number): boolean {
    return s.queued() <= this.limits.backlogBytes && total <= this.limits.totalBacklogBytes;
  }

  /** Returns how many subscribers got the event. */
  publish(topic: string, data: string, from: string): number {
    validateTopic(topic);
    if (typeof data !== 'string' || Buffer.byteLength(data) > MAX_EVENT_DATA)
      throw new PilotError('FRAME_TOO_LARGE', `event data is limited to ${MAX_EVENT_DATA} bytes`);
    const ev: PubSubEvent = { topic, data, from, ts: Date.now(), seq: ++this.seq };
    this.published++;
    let n = 0;
    let total = this.backlog();
    for (const s of [...this.subs]) {
      if (!topicMatches(s.pattern, topic)) continue;
      const before = s.queued();
      // local subscribers queue nothing here; a remote one too far behind (or all of them together) loses the event, counted
      if (s.deliver(ev, s.peer === undefined || this.hasRoom(s, total))) {
        n++;
        total += s.queued() - before;
      }
    }
    return n;
  }
}

const RequestSchema = withMessages(
  v.variant('op', [v.object({ op: v.literal('publish'), topic: v.string(), data: v.string() }), v.object({ op: v.literal('subscribe'), topic: v.string() })]),
);

export function startPubSub(host: ServiceHost, broker: Broker): () => void {
  return host.listen(PUBSUB_PORT, (stream, from) => {
    stream.on('error', () => {});
    const reader = new ByteReader(stream);
    serve(broker, stream, reader, from).catch((err: unknown) => {
      host.log.info({ peer: from, code: (err as PilotError).code, err: (err as Error).message }, 'pub/sub request refused');
      refuse(stream, reader, err);
    });
  });
}

async function serve(broker: Broker, stream: ServiceStream, reader: ByteReader, from: string): Promise<void> {
  const raw = await withTimeout(reader.readFrame(MAX_EVENT_FRAME), REQUEST_TIMEOUT_MS, 'the request');
  const parsed = v.safeParse(RequestSchema, raw);
  if (!parsed.success) throw new PilotError('BAD_REQUEST', `bad pub/sub request: ${issuesText(parsed.issues)}`);
  const req = parsed.output;
  if (req.op === 'publish') {
    const delivered = broker.publish(req.topic, req.data, from);
    stream.end(okFrame({ delivered }));
    return;
  }
  let dropped = 0;
  const off = broker.subscribe(
    req.topic,
    (ev, room) => {
      if (stream.destroyed || stream.writableEnded) return false;
      if (!room) {
        dropped++;
        return false;
      }
      stream.write(encodeFrame(dropped > 0 ? { ...ev, dropped } : ev));
      dropped = 0;
      return true;
    },
    from,
    () => stream.writableLength,
  );
  stream.write(okFrame({ topic: req.topic }));
  // the transport cuts idle streams: a quiet topic still sends something now and then
  const keepalive = setInterval(() => {
    if (!stream.destroyed && !stream.writableEnded) stream.write(encodeFrame({ keepalive: true }));
  }, KEEPALIVE_MS);
  keepalive.unref();
  try {
    // the subscription lasts until the subscriber ends (or resets) its side; what it sends is ignored
    for (;;) if ((await reader.next(MAX_FRAME)) === null) break;
  } catch {
    /* reset by the subscriber */
  } finally {
    off();
    clearInterval(keepalive);
    if (!stream.destroyed && !stream.writableEnded) stream.end();
  }
}

// ---------- client side ----------

export async function publishTo(host: ServiceHost, target: string, topic: string, data: string): Promise<{ peer: string; delivered: number }> {
  validateTopic(topic);
  if (Buffer.byteLength(data) > MAX_EVENT_DATA) throw new PilotError('FRAME_TOO_LARGE', `event data is limited to ${MAX_EVENT_DATA} bytes`);
  const x = await ask(host, target, PUBSUB_PORT, { op: 'publish', topic, data }, { what: 'the event', end: true });
  x.stream.destroy();
  return { peer: x.peer, delivered: typeof x.answer.delivered === 'number' ? x.answer.delivered : 0 };
}

/** Stream events from a peer's broker until `signal` aborts or the peer closes. */
export async function subscribeTo(
  host: ServiceHost,
  target: string,
  pattern: string,
  onEvent: (ev: PubSubEvent) => void,
  signal: AbortSignal,
  onReady?: (peer: string) => void,
): Promise<{ peer: string }> {
  validatePattern(pattern);
  if (signal.aborted) return { peer: target };
  const { stream, reader, peer } = await ask(host, target, PUBSUB_PORT, { op: 'subscribe', topic: pattern }, { what: 'the subscription' });
  const onAbort = (): void => {
    stream.end();
    stream.destroy();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal.aborted) return { peer };
    onReady?.(peer);
    for (;;) {
      const f = await reader.readFrameOrEnd(MAX_EVENT_FRAME);
      if (f === null) return { peer };
      const ev = f as Partial<PubSubEvent> & { keepalive?: boolean };
      if (ev.keepalive === true) continue;
      if (typeof ev.topic !== 'string' || typeof ev.data !== 'string') continue;
      onEvent({
        topic: ev.topic,
        data: ev.data,
        from: typeof ev.from === 'string' ? ev.from : peer,
        ts: Number(ev.ts) || Date.now(),
        seq: Number(ev.seq) || 0,
        ...(typeof ev.dropped === 'number' ? { dropped: ev.dropped } : {}),
      });
    }
  } catch (err) {
    if (signal.aborted) return { peer };
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    stream.destroy();
  }
}
