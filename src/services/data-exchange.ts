// Port 1001, data exchange: messages into the inbox and files into received/.
//
//   sender   -> [frame] {type: text|json|binary|file, name?, size, sha256}
//   receiver -> [frame] {ok:true, offset} (offset > 0: resume a broken file transfer)
//               or {ok:false, code, message, hint} and the stream closes
//   sender   -> body bytes [offset, size), then FIN
//   receiver -> [frame] {ok:true, id | name, size} once the sha256 matched, or an error
//
// The header is accepted (size, type, room) before any body byte is sent, so
// nothing large is ever sent just to be refused.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { int, issuesText, withMessages } from '../util/schema.ts';
import { ByteReader, MAX_FRAME, REQUEST_TIMEOUT_MS, expectOk, okFrame, refuse, withTimeout, writeAll } from './framing.ts';
import { ask } from './request.ts';
import { DEFAULT_STALL_TIMEOUT_MS, StallGuard } from './stall.ts';
import type { ServiceHost, ServiceStream } from './host.ts';
import type { Inbox, MessageType } from './inbox.ts';
import type { ReceivedFiles, Incoming } from './received-files.ts';

export const DATA_PORT = 1001;
/** A transfer that moves no byte for this long is cut. */
const IDLE_MS = 60_000;
/** How long the end of a body (the FIN) may take. */
const ACCEPT_TIMEOUT_MS = 30_000;
const DONE_TIMEOUT_MS = 120_000;

const HeaderSchema = withMessages(
  v.object({
    type: v.picklist(['text', 'json', 'binary', 'file']),
    name: v.optional(v.pipe(v.string(), v.maxLength(MAX_FRAME))),
    size: int(0, Number.MAX_SAFE_INTEGER),
    sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  }),
);
type Header = v.InferOutput<typeof HeaderSchema>;

export interface DataExchangeOptions {
  inbox: Inbox | undefined;
  files: ReceivedFiles | undefined;
  maxMessageBytes: number;
  maxFileBytes: number;
}

export function startDataExchange(host: ServiceHost, opts: DataExchangeOptions): () => void {
  return host.listen(DATA_PORT, (stream, from) => {
    stream.on('error', () => {});
    const reader = new ByteReader(stream);
    serve(host, opts, stream, reader, from).catch((err: unknown) => {
      host.log.info({ peer: from, code: (err as PilotError).code, err: (err as Error).message }, 'data exchange refused');
      refuse(stream, reader, err);
    });
  });
}

async function serve(host: ServiceHost, opts: DataExchangeOptions, stream: ServiceStream, reader: ByteReader, from: string): Promise<void> {
  const raw = await withTimeout(reader.readFrame(MAX_FRAME), REQUEST_TIMEOUT_MS, 'the request header');
  const parsed = v.safeParse(HeaderSchema, raw);
  if (!parsed.success) throw new PilotError('BAD_REQUEST', `bad header: ${issuesText(parsed.issues)}`);
  const h = parsed.output;
  if (h.type === 'file') await receiveFile(host, opts, stream, reader, from, h);
  else await receiveMessage(host, opts, stream, reader, from, h);
}

/** Fail the transfer if no byte arrives for IDLE_MS. Returns the function that notes activity and the one that stops watching. */
function idleWatch(stream: ServiceStream): { touch: () => void; stop: () => void } {
  let last = Date.now();
  const timer = setInterval(() => {
    if (Date.now() - last > IDLE_MS) stream.destroy(new PilotError('TIMEOUT', 'transfer idle'));
  }, 5_000);
  timer.unref();
  return { touch: () => (last = Date.now()), stop: () => clearInterval(timer) };
}

/** After the body: the sender's FIN, not one byte more. */
async function expectEnd(reader: ByteReader, declared: number): Promise<void> {
  const extra = await withTimeout(reader.next(1), ACCEPT_TIMEOUT_MS, 'the end of the body');
  if (extra !== null) throw new PilotError('BAD_REQUEST', `body longer than the declared ${declared} bytes`);
}

async function receiveMessage(host: ServiceHost, opts: DataExchangeOptions, stream: ServiceStream, reader: ByteReader, from: string, h: Header): Promise<void> {
  const inbox = opts.inbox;
  if (!inbox) throw new PilotError('CONNECTION_REFUSED', 'messages are disabled on this node');
  if (h.size > opts.maxMessageBytes)
    throw new PilotError('FRAME_TOO_LARGE', `message of ${h.size} bytes (limit ${opts.maxMessageBytes})`, 'send large data as a file: pilotctl send-file');
  inbox.ensureRoom(from, h.type as MessageType, h.size);
  stream.write(okFrame({ offset: 0 }));
  const watch = idleWatch(stream);
  let body: Buffer;
  try {
    body = Buffer.from(await reader.readExact(h.size));
    await expectEnd(reader, h.size);
  } finally {
    watch.stop();
  }
  const sha = crypto.createHash('sha256').update(body).digest('hex');
  if (sha !== h.sha256) throw new PilotError('BAD_REQUEST', 'sha256 of the message does not match its header');
  if (h.type === 'json') {
    try {
      JSON.parse(body.toString('utf8'));
    } catch {
      throw new PilotError('BAD_REQUEST', 'message of type json is not valid JSON');
    }
  }
  const msg = inbox.add(from, h.type as MessageType, body, sha);
  stream.end(okFrame({ id: msg.id, size: msg.size }));
  host.event('message_received', { from, id: msg.id, type: msg.type, size: msg.size });
}

async function receiveFile(host: ServiceHost, opts: DataExchangeOptions, stream: ServiceStream, reader: ByteReader, from: string, h: Header): Promise<void> {
  const files = opts.files;
  if (!files) throw new PilotError('CONNECTION_REFUSED', 'file transfer is disabled on this node');
  if (h.size > opts.maxFileBytes) throw new PilotError('FRAME_TOO_LARGE', `file of ${h.size} bytes (limit ${opts.maxFileBytes})`);
  const inc = await files.begin(from, h.size, h.sha256);
  let verified = false;
  try {
    stream.write(okFrame({ offset: inc.offset }));
    await receiveBody(stream, reader, inc, h.size);
    await expectEnd(reader, h.size);
    // the hash covers what arrived; the size check covers what reached the disk
    if (fs.statSync(inc.part).size !== h.size) {
      files.end(inc, true);
      throw new PilotError('INTERNAL', 'the received file on disk does not have the announced size', 'send it again');
    }
    if (inc.hash.digest('hex') !== h.sha256) {
      files.end(inc, true);
      throw new PilotError(
        'BAD_REQUEST',
        'sha256 of the received file does not match its header',
        'the file changed while it was sent, or the sender is broken; send it again',
      );
    }
    verified = true;
  } catch (err) {
    if ((err as { discard?: boolean }).discard === true) files.end(inc, true);
    throw err;
  } finally {
    // a broken transfer keeps its partial for a resume
    if (!verified) files.end(inc, false);
  }
  let name: string;
  try {
    name = files.finish(inc, h.name, from, h.size, h.sha256);
  } catch (err) {
    files.end(inc, false);
    throw err;
  }
  stream.end(okFrame({ name, size: h.size, sha256: h.sha256, resumedFrom: inc.offset }));
  host.log.info({ peer: from, name, size: h.size }, 'file received');
  host.event('file_received', { from, name, size: h.size, sha256: h.sha256 });
}

async function receiveBody(stream: ServiceStream, reader: ByteReader, inc: Incoming, size: number): Promise<void> {
  const out = fs.createWriteStream(inc.part, { flags: 'a' });
  let writeError: Error | undefined;
  const outErr = new Promise<never>((_, reject) => out.once('error', (err) => reject((writeError = err))));
  outErr.catch(() => {});
  const watch = idleWatch(stream);
  let left = size - inc.offset;
  try {
    while (left > 0) {
      const chunk = await reader.next(Math.min(left, 1 << 20));
      if (chunk === null)
        throw new PilotError('CONNECTION_RESET', `stream ended with ${left} bytes of the file missing`, 'send it again: the transfer resumes');
      watch.touch();
      left -= chunk.length;
      inc.hash.update(chunk);
      if (writeError) break;
      inc.reservation.wrote(chunk.length);
      if (!out.write(chunk)) await Promise.race([new Promise<void>((r) => out.once('drain', () => r())), outErr]);
    }
  } finally {
    watch.stop();
    // flush what arrived, also on error: it is the resume point ('close' comes after finish or an error)
    await new Promise<void>((resolve) => {
      out.once('close', () => resolve());
      out.end();
    });
  }
  if (writeError) {
    // the disk filled up under us (something else wrote to it): a partial that cannot grow only takes space
    if ((writeError as NodeJS.ErrnoException).code === 'ENOSPC')
      throw Object.assign(
        new PilotError('NO_SPACE', "the receiver's disk filled up during the transfer", 'the receiver must free disk space; send it again later'),
        { discard: true },
      );
    throw new PilotError('INTERNAL', `cannot write the received file: ${writeError.message}`, "is the receiver's disk full?");
  }
}

// ---------- sender side ----------

/** A message the peer stored in its inbox. */
export interface MessageSent {
  /** The peer's virtual address. */
  peer: string;
  /** The message's id in the peer's inbox. */
  id: string;
  type: MessageType;
  bytes: number;
  sha256: string;
}

/** A file the peer verified and stored. */
export interface FileSent {
  peer: string;
  /** Its name in the peer's received/ directory (numbered if the name was taken). */
  name: string | null;
  bytes: number;
  sha256: string;
  /** > 0: a broken earlier transfer of the same file was resumed at this byte. */
  resumedFrom: number;
  seconds: number;
  hashSeconds: number;
  mbPerSec: number;
}

async function openExchange(
  host: ServiceHost,
  target: string,
  header: Header,
): Promise<{ stream: ServiceStream; reader: ByteReader; peer: string; offset: number }> {
  const x = await ask(host, target, DATA_PORT, header, { what: header.type === 'file' ? 'the file' : 'the message' });
  const offset = x.answer.offset;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || offset > header.size) {
    x.stream.destroy();
    throw new PilotError('BAD_REQUEST', 'peer answered with an invalid resume offset');
  }
  return { stream: x.stream, reader: x.reader, peer: x.peer, offset };
}

export async function sendMessage(
  host: ServiceHost,
  target: string,
  type: MessageType,
  body: Buffer,
  stallMs = DEFAULT_STALL_TIMEOUT_MS,
): Promise<MessageSent> {
  const sha256 = crypto.createHash('sha256').update(body).digest('hex');
  const x = await openExchange(host, target, { type, size: body.length, sha256 });
  const guard = new StallGuard(x.stream, stallMs, 'the message');
  try {
    await writeAll(x.stream, body);
    x.stream.end();
    const done = expectOk(await withTimeout(x.reader.readFrame(), DONE_TIMEOUT_MS, 'the peer storing the message'), 'the message');
    // the id is the peer's word (text from an honest peer); kept a string either way
    return { peer: x.peer, id: typeof done.id === 'string' ? done.id : String(done.id ?? ''), type, bytes: body.length, sha256 };
  } catch (err) {
    x.stream.destroy();
    throw stallError(x.stream, err);
  } finally {
    guard.stop();
  }
}

/** The guard's TIMEOUT, if it cut the stream, says more than what the cut caused downstream. */
function stallError(stream: ServiceStream, err: unknown): unknown {
  const cause = (stream as { errored?: unknown }).errored;
  return cause instanceof PilotError && cause.code === 'TIMEOUT' ? cause : err;
}

export interface FileProgress {
  sent: number;
  size: number;
  resumedFrom: number;
}

async function hashFile(file: string, signal?: AbortSignal): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const c of fs.createReadStream(file, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) })) h.update(c as Buffer);
  return h.digest('hex');
}

export async function sendFile(
  host: ServiceHost,
  target: string,
  file: string,
  onProgress?: (p: FileProgress) => void,
  signal?: AbortSignal,
  stallMs = DEFAULT_STALL_TIMEOUT_MS,
): Promise<FileSent> {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new PilotError('NOT_FOUND', `no such file: ${file}`);
  }
  if (!st.isFile()) throw new PilotError('BAD_ARGUMENT', `${file} is not a regular file`);
  const size = st.size;
  const t0 = performance.now();
  const sha256 = await hashFile(file, signal);
  const t1 = performance.now();
  const x = await openExchange(host, target, { type: 'file', name: path.basename(file), size, sha256 });
  const onAbort = (): void => {
    x.stream.destroy(new PilotError('CONNECTION_RESET', 'transfer cancelled'));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const guard = new StallGuard(x.stream, stallMs, 'the file');
  try {
    let sent = x.offset;
    let lastReport = 0;
    const report = (force: boolean): void => {
      const now = performance.now();
      if (!onProgress || (!force && now - lastReport < 100)) return;
      lastReport = now;
      onProgress({ sent, size, resumedFrom: x.offset });
    };
    report(true);
    if (x.offset < size) {
      for await (const c of fs.createReadStream(file, { start: x.offset, highWaterMark: 256 * 1024 })) {
        const chunk = c as Buffer;
        // never send more than we announced, even if the file grew meanwhile
        const part = chunk.subarray(0, Math.min(chunk.length, size - sent));
        if (part.length === 0) break;
        await writeAll(x.stream, part);
        sent += part.length;
        report(false);
        if (signal?.aborted) throw new PilotError('CONNECTION_RESET', 'transfer cancelled');
      }
    }
    if (sent !== size) throw new PilotError('BAD_ARGUMENT', `${file} shrank while it was sent`);
    x.stream.end();
    const done = expectOk(await withTimeout(x.reader.readFrame(), DONE_TIMEOUT_MS, 'the peer verifying the file'), 'the file');
    report(true);
    const now = performance.now();
    const seconds = (now - t0) / 1000;
    const sendSeconds = (now - t1) / 1000;
    return {
      peer: x.peer,
      name: typeof done.name === 'string' ? done.name : null,
      bytes: size,
      sha256,
      resumedFrom: x.offset,
      seconds: Math.round(seconds * 1000) / 1000,
      hashSeconds: Math.round(t1 - t0) / 1000,
      // the transfer alone (after hashing), for the bytes that travelled
      mbPerSec: Math.round(((size - x.offset) / 1e6 / Math.max(sendSeconds, 1e-6)) * 100) / 100,
    };
  } catch (err) {
    x.stream.destroy();
    throw stallError(x.stream, err);
  } finally {
    guard.stop();
    signal?.removeEventListener('abort', onAbort);
  }
}
