// Length-prefixed JSON frames on overlay streams: [u32 BE length][UTF-8 JSON].
// Every built-in service speaks them: a request frame, answer frames
// {ok:true,...} or {ok:false,code,message,hint}, and (files, messages) raw body
// bytes in between. Lengths are checked before anything is buffered.
import type { Duplex, Readable } from 'node:stream';
import { PilotError, asPilotError, type ErrorCode } from '../util/errors.ts';

/** Default cap of one JSON frame (headers, requests, answers). */
export const MAX_FRAME = 16 * 1024;
/** How long a peer may take to send its request frame (slow-loris guard). */
export const REQUEST_TIMEOUT_MS = 10_000;
/** What a refused peer may still push at us before the stream is cut. */
const DRAIN_LIMIT = 1 << 20;
const DRAIN_MS = 5_000;

export function encodeFrame(obj: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(obj), 'utf8');
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/**
 * Pull-style reader over a stream: exact reads for frames, bounded chunks for
 * bodies. Never reads ahead of what the caller asks by more than one chunk,
 * so flow control still pushes back on a fast sender.
 */
export class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  /** Received, not yet consumed (a list: joining on every chunk would be quadratic). */
  private chunks: Buffer[] = [];
  private len = 0;
  private ended = false;

  constructor(stream: Readable) {
    this.it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** Bytes already received but not consumed. */
  get buffered(): number {
    return this.len;
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    let r: IteratorResult<Buffer>;
    try {
      r = await this.it.next();
    } catch (err) {
      // a reset stream (PilotError from the transport) or a premature close
      throw err instanceof PilotError ? err : new PilotError('CONNECTION_RESET', `stream failed: ${(err as Error).message}`);
    }
    if (r.done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.len += chunk.length;
    }
    return true;
  }

  /** Take n <= len buffered bytes. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.len -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.len -= n;
    return out;
  }

  async readExact(n: number): Promise<Buffer> {
    while (this.len < n) {
      if (!(await this.fill())) throw new PilotError('CONNECTION_RESET', `stream ended after ${this.len} of ${n} expected bytes`);
    }
    return this.take(n);
  }

  /** The next bytes (at most `max`), or null at the end of the stream. */
  async next(max: number): Promise<Buffer | null> {
    while (this.len === 0) if (!(await this.fill())) return null;
    return this.take(Math.min(max, this.chunks[0]!.length));
  }

  /** One JSON frame; null only if the stream ended cleanly before its first byte. */
  async readFrameOrEnd(maxLen = MAX_FRAME): Promise<unknown> {
    while (this.len === 0) if (!(await this.fill())) return null;
    const head = await this.readExact(4);
    const len = head.readUInt32BE(0);
    if (len > maxLen) throw new PilotError('FRAME_TOO_LARGE', `frame of ${len} bytes (limit ${maxLen})`, 'headers and requests are small JSON objects');
    const body = await this.readExact(len);
    let v: unknown;
    try {
      v = JSON.parse(body.toString('utf8'));
    } catch {
      throw new PilotError('BAD_REQUEST', 'frame is not valid JSON');
    }
    // every frame of every service is an object (and null must not read as "end")
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PilotError('BAD_REQUEST', 'frame is not a JSON object');
    return v;
  }

  async readFrame(maxLen = MAX_FRAME): Promise<unknown> {
    const f = await this.readFrameOrEnd(maxLen);
    if (f === null) throw new PilotError('CONNECTION_RESET', 'stream ended before a frame');
    return f;
  }
}

/** Reject after `ms` (the caller decides what a timeout does to the stream). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PilotError('TIMEOUT', `${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** An answer frame. */
export function okFrame(fields: Record<string, unknown> = {}): Buffer {
  return encodeFrame({ ok: true, ...fields });
}

export function errorFrame(err: unknown): Buffer {
  const e = asPilotError(err);
  return encodeFrame({ ok: false, code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
}

/**
 * Answer a request with an error and close our side. What the peer still sends
 * is read and thrown away (so it can read our answer instead of seeing a
 * reset), up to a limit, then the stream is cut.
 */
export function refuse(stream: Duplex, reader: ByteReader, err: unknown): void {
  if (stream.destroyed) return;
  if (!stream.writableEnded) stream.end(errorFrame(err));
  let drained = 0;
  const timer = setTimeout(() => stream.destroy(), DRAIN_MS);
  timer.unref();
  void (async () => {
    try {
      for (;;) {
        const c = await reader.next(64 * 1024);
        if (c === null) break;
        drained += c.length;
        if (drained > DRAIN_LIMIT) break;
      }
    } catch {
      /* the peer reset: nothing more to do */
    }
    clearTimeout(timer);
    // after end(): graceful, our answer and FIN still go out
    if (drained > DRAIN_LIMIT) stream.destroy();
  })();
}

const REMOTE_CODES = new Set<string>([
  'BAD_ARGUMENT',
  'BAD_REQUEST',
  'NOT_FOUND',
  'TIMEOUT',
  'CONNECTION_RESET',
  'CONNECTION_REFUSED',
  'NOT_TRUSTED',
  'FRAME_TOO_LARGE',
  'RATE_LIMITED',
  'INTERNAL',
  'QUOTA_EXCEEDED',
  'NO_SPACE',
]);

/** Turn a peer's answer frame into its fields, or throw the PilotError it carries. */
export function expectOk(frame: unknown, what: string): Record<string, unknown> {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) throw new PilotError('BAD_REQUEST', `malformed answer from the peer (${what})`);
  const f = frame as Record<string, unknown>;
  if (f.ok === true) return f;
  const code = typeof f.code === 'string' && REMOTE_CODES.has(f.code) ? (f.code as ErrorCode) : 'INTERNAL';
  const message = typeof f.message === 'string' ? f.message.slice(0, 500) : 'refused';
  const hint = typeof f.hint === 'string' ? f.hint.slice(0, 500) : undefined;
  throw new PilotError(code, `peer refused ${what}: ${message}`, hint);
}

/** Write, waiting for room when the stream pushes back. */
export async function writeAll(stream: Duplex, chunk: Buffer): Promise<void> {
  if (stream.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      stream.off('drain', onDrain);
      stream.off('error', onErr);
      stream.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onErr = (err: Error): void => done(err);
    const onClose = (): void => done(new PilotError('CONNECTION_RESET', 'stream closed while sending'));
    stream.on('drain', onDrain);
    stream.on('error', onErr);
    stream.on('close', onClose);
  });
}
