// The streams of one connection by id, and what a frame for an id we have no
// stream for means. Ids: 'low' opens even ids, 'high' odd ones (parity), each
// side counting up by 2, so both ends can open at once. A peer stream id, once
// finished, is remembered as retired (floor(id / 2) in a RangeSet) so late or
// repeated frames for it are ignored rather than mistaken for a new stream.
import { RangeSet } from './range-set.ts';

/** Peer-opened streams alive at once at most; more are refused. */
export const MAX_INCOMING_STREAMS = 1024;
/** Retired peer stream id ranges remembered at most (a hostile peer could fragment the set). */
export const MAX_RETIRED_RANGES = 4096;
/** Unknown ids remembered as answered at most (then forgotten all at once). */
export const MAX_ANSWERED_UNKNOWN = 4096;

/**
 * What to do with a STREAM frame for an id without a stream:
 * - 'accept': a new peer stream (create it, then add()),
 * - 'refuse': a new peer stream we will not take (too many, or nobody listens); the id is retired,
 * - 'answer': one side lost its state: reset the peer's stream (first frame for this id only),
 * - 'ignore': a late frame for a finished stream, or an id already answered.
 */
export type UnknownStreamVerdict = 'accept' | 'refuse' | 'answer' | 'ignore';

export class StreamTable<S extends { readonly id: number }> {
  private readonly map = new Map<number, S>();
  /** 0: we open even ids, 1: odd ones. */
  readonly parity: number;
  private nextLocal: number;
  private incoming = 0;
  private readonly maxIncoming: number;
  /** floor(id / 2) of peer streams that are finished (late frames for them are ignored). */
  private readonly retired = new RangeSet();
  /** Unknown stream ids we already answered with RESET_STREAM + STOP_SENDING (the answer is reliable: once is enough). */
  private readonly answered = new Set<number>();

  constructor(parity: 0 | 1, maxIncoming = MAX_INCOMING_STREAMS) {
    this.parity = parity;
    this.nextLocal = parity;
    this.maxIncoming = maxIncoming;
  }

  get size(): number {
    return this.map.size;
  }

  get(id: number): S | undefined {
    return this.map.get(id);
  }

  /** A copy of the streams (callers abort them, which removes them). */
  list(): S[] {
    return [...this.map.values()];
  }

  /** The id for the next stream we open. */
  allocateLocalId(): number {
    const id = this.nextLocal;
    this.nextLocal += 2;
    return id;
  }

  isLocal(id: number): boolean {
    return id % 2 === this.parity;
  }

  /** Adds a stream we opened, or a peer stream after 'accept'. */
  add(s: S): void {
    this.map.set(s.id, s);
    if (!this.isLocal(s.id)) this.incoming++;
  }

  /** A finished stream (both directions done) leaves the table; a peer's id is retired. */
  remove(s: S): void {
    if (this.map.get(s.id) !== s) return;
    this.map.delete(s.id);
    if (!this.isLocal(s.id)) {
      this.incoming--;
      this.retire(s.id);
    }
  }

  /** Everything goes (connection closed): returns what was there. */
  clear(): S[] {
    const list = this.list();
    this.map.clear();
    return list;
  }

  /** A STREAM frame for `id` with no stream; `open`: it carries the ports; `wanted`: someone listens for peer streams. */
  onUnknown(id: number, open: boolean, wanted: boolean): UnknownStreamVerdict {
    if (this.isLocal(id)) {
      // ours but never opened (by this incarnation): the peer remembers it from before we lost our state
      return id >= this.nextLocal && this.firstAnswer(id) ? 'answer' : 'ignore';
    }
    if (this.retired.has(Math.floor(id / 2))) return 'ignore';
    // the opener repeats the ports until we ack one, so without them we saw this stream's opening
    // before and have since lost it (restart)
    if (!open) return this.firstAnswer(id) ? 'answer' : 'ignore';
    // too many streams, or nobody to hand it to (an unhandled stream would only sit there until it timed out)
    if (this.incoming >= this.maxIncoming || !wanted) {
      this.retire(id);
      return 'refuse';
    }
    return 'accept';
  }

  /** RESET_STREAM for an id with no stream: a peer stream whose opening frame we never saw is finished. */
  onUnknownReset(id: number): void {
    if (!this.isLocal(id)) this.retire(id);
  }

  private retire(id: number): void {
    const idx = Math.floor(id / 2);
    this.retired.add(idx, idx + 1);
    if (this.retired.size > MAX_RETIRED_RANGES) this.retired.shift();
  }

  private firstAnswer(id: number): boolean {
    if (this.answered.has(id)) return false;
    if (this.answered.size >= MAX_ANSWERED_UNKNOWN) this.answered.clear();
    this.answered.add(id);
    return true;
  }
}
