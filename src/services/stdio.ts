// Port 1000, stdio: text lines between agents, like a pipe.
//
//   peer -> lines of text on a stream ("\n" ends a line, a trailing "\r" is dropped),
//           or one datagram = one message
//   us   -> nothing while the stream is open; after the peer's FIN one line
//           {"ok":true,"lines":N,"truncated":T} and our FIN (so a one-shot sender
//           knows every line was queued), or {"ok":false,code,message} on refusal
//
// Lines wait in a bounded in-memory queue until a local reader takes them
// (`pilotctl recv 1000`, `pilotctl connect <peer>`); when it is full the oldest
// line is dropped and counted. A line longer than maxLineBytes is cut there
// (kept with truncated:true, the rest up to the next "\n" discarded). Bytes
// that are not UTF-8 are kept as base64 (encoding:"base64").
import type { ServiceHost, ServiceStream } from './host.ts';
import { PilotError, type ErrorCode } from '../util/errors.ts';

export const STDIO_PORT = 1000;
/** Streams open at once from all peers; more are refused (each may hold one partial line). */
const MAX_STREAMS = 64;

export interface StdioMessage {
  seq: number;
  from: string;
  via: 'stream' | 'datagram';
  /** UTF-8 text, or base64 when the bytes were not valid UTF-8. */
  data: string;
  encoding: 'utf8' | 'base64';
  bytes: number;
  truncated: boolean;
  receivedAt: number;
}

export interface StdioStats {
  queued: number;
  received: number;
  dropped: number;
  truncated: number;
  streams: number;
}

/** A live reader: gets matching messages directly instead of the queue. */
interface Reader {
  from: string | undefined;
  deliver: (m: StdioMessage) => void;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export class StdioQueue {
  private readonly max: number;
  private items: StdioMessage[] = [];
  private readers: Reader[] = [];
  private seq = 0;
  readonly counters = { received: 0, dropped: 0, truncated: 0 };
  streams = 0;

  constructor(max: number) {
    this.max = max;
  }

  add(from: string, via: StdioMessage['via'], bytes: Buffer, truncated: boolean): void {
    let data: string;
    let encoding: StdioMessage['encoding'] = 'utf8';
    try {
      data = utf8.decode(bytes);
    } catch {
      data = bytes.toString('base64');
      encoding = 'base64';
    }
    const m: StdioMessage = { seq: ++this.seq, from, via, data, encoding, bytes: bytes.length, truncated, receivedAt: Date.now() };
    this.counters.received++;
    if (truncated) this.counters.truncated++;
    const reader = this.readers.find((r) => r.from === undefined || r.from === from);
    if (reader) {
      reader.deliver(m);
      return;
    }
    if (this.items.length >= this.max) {
      this.items.shift();
      this.counters.dropped++;
    }
    this.items.push(m);
  }

  /** Remove and return up to `max` queued messages (0 = all), oldest first, optionally only from one peer. */
  take(from: string | undefined, max: number): StdioMessage[] {
    const out: StdioMessage[] = [];
    const keep: StdioMessage[] = [];
    for (const m of this.items) {
      if ((max === 0 || out.length < max) && (from === undefined || m.from === from)) out.push(m);
      else keep.push(m);
    }
    this.items = keep;
    return out;
  }

  /** Messages that arrive from now on go to `deliver` (the earliest reader wins); returns the remover. */
  read(from: string | undefined, deliver: (m: StdioMessage) => void): () => void {
    const r: Reader = { from, deliver };
    this.readers.push(r);
    return () => {
      this.readers = this.readers.filter((x) => x !== r);
    };
  }

  stats(): StdioStats {
    return { queued: this.items.length, ...this.counters, streams: this.streams };
  }
}

export interface StdioOptions {
  maxLineBytes: number;
}

export function startStdio(host: ServiceHost, queue: StdioQueue, opts: StdioOptions): () => void {
  const offStream = host.listen(STDIO_PORT, (stream, from) => {
    stream.on('error', () => {});
    if (queue.streams >= MAX_STREAMS) {
      stream.end(
        answer({
          ok: false,
          ...new PilotError('RATE_LIMITED', `too many stdio streams at once (${MAX_STREAMS})`, 'close other connections to port 1000').toJSON(),
        }),
      );
      stream.resume();
      return;
    }
    serveStream(queue, stream, from, opts.maxLineBytes);
  });
  const offDatagram = host.onDatagram(STDIO_PORT, (data, from) => {
    const cut = data.length > opts.maxLineBytes;
    queue.add(from, 'datagram', cut ? data.subarray(0, opts.maxLineBytes) : data, cut);
  });
  return () => {
    offStream();
    offDatagram();
  };
}

/**
 * The answer a sender reads after its FIN: {"ok":true,lines,truncated}, or
 * {"ok":false,code,message,hint} thrown as that PilotError.
 */
export function parseStdioAnswer(text: string): { lines: number; truncated: number } {
  let a: Record<string, unknown> | undefined;
  try {
    a = JSON.parse(text.trim().split('\n').pop() ?? '') as Record<string, unknown>;
  } catch {
    a = undefined;
  }
  if (a && a.ok === true && typeof a.lines === 'number') return { lines: a.lines, truncated: Number(a.truncated ?? 0) };
  if (a && a.ok === false && typeof a.code === 'string')
    throw new PilotError(a.code as ErrorCode, `peer refused: ${String(a.message ?? '').slice(0, 500)}`, typeof a.hint === 'string' ? a.hint : undefined);
  throw new PilotError(
    'CONNECTION_RESET',
    'the peer closed the stream without confirming the lines',
    'is port 1000 (stdio) enabled on the peer? its services.json may switch it off',
  );
}

function answer(obj: Record<string, unknown>): string {
  return JSON.stringify(obj) + '\n';
}

/** Split the stream into lines without ever holding more than maxLineBytes of one line. */
function serveStream(queue: StdioQueue, stream: ServiceStream, from: string, maxLine: number): void {
  queue.streams++;
  let parts: Buffer[] = [];
  let partLen = 0;
  /** After a cut line: drop bytes up to the next "\n". */
  let discarding = false;
  let lines = 0;
  let truncated = 0;
  const emit = (line: Buffer, cut: boolean): void => {
    const end = !cut && line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
    queue.add(from, 'stream', line.subarray(0, end), cut);
    lines++;
    if (cut) truncated++;
  };
  const push = (chunk: Buffer): void => {
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(0x0a, at);
      const end = nl === -1 ? chunk.length : nl;
      if (discarding) {
        if (nl === -1) return;
        discarding = false;
      } else if (partLen + (end - at) > maxLine) {
        // cut: keep the first maxLine bytes of the line, discard the rest of it
        emit(Buffer.concat([...parts, chunk.subarray(at, at + maxLine - partLen)]), true);
        parts = [];
        partLen = 0;
        if (nl === -1) {
          discarding = true;
          return;
        }
      } else if (nl === -1) {
        // an unfinished line: copy, the transport may reuse its buffers
        const rest = Buffer.from(chunk.subarray(at));
        parts.push(rest);
        partLen += rest.length;
        return;
      } else {
        emit(parts.length ? Buffer.concat([...parts, chunk.subarray(at, nl)]) : chunk.subarray(at, nl), false);
        parts = [];
        partLen = 0;
      }
      at = nl + 1;
    }
  };
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    queue.streams--;
  };
  stream.on('data', (chunk: Buffer) => {
    if (!done) push(chunk);
  });
  stream.on('end', () => {
    if (done) return;
    if (partLen > 0) emit(Buffer.concat(parts), false);
    finish();
    stream.end(answer({ ok: true, lines, truncated }));
  });
  stream.on('close', finish);
}
