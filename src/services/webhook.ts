// Webhooks: the daemon POSTs each event as JSON to one URL, signed so the
// receiver can check it came from this node:
//
//   POST <url>
//   Content-Type: application/json
//   X-Pilot-Event: message_received
//   X-Pilot-Delivery: <uuid, the same on every retry>
//   X-Pilot-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
//   {"id","event","ts","node","data":{...}}
//
// The secret is made once, kept 0600 in $PILOT_HOME/webhook-secret and shown
// by `pilotctl set-webhook`. One delivery at a time, in order; network errors,
// timeouts, 429 and 5xx are retried with exponential backoff; the queue is
// bounded and drops its oldest event (counted) when full.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { PilotError } from '../util/errors.ts';
import type { Logger } from '../util/logger.ts';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from './atomic-file.ts';

export const SIGNATURE_HEADER = 'X-Pilot-Signature';

export interface WebhookOptions {
  home: string;
  log: Logger;
  self: () => string;
  queueSize: number;
  retries: number;
  backoffMs: number;
  timeoutMs: number;
}

interface Delivery {
  id: string;
  event: string;
  body: string;
}

export interface WebhookStatus {
  url: string | null;
  queued: number;
  delivered: number;
  failed: number;
  dropped: number;
  retries: number;
  lastError: string | null;
}

/** What receivers do: recompute the HMAC over the raw body and compare in constant time. */
export function verifySignature(secret: string, body: string | Buffer, header: string | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const want = crypto.createHmac('sha256', secret).update(body).digest();
  const got = Buffer.from(header.slice(7), 'hex');
  return got.length === want.length && crypto.timingSafeEqual(got, want);
}

export function signBody(secret: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`;
}

export class WebhookDispatcher {
  private readonly opts: WebhookOptions;
  private readonly urlFile: string;
  private readonly secretFile: string;
  private url: string | null = null;
  private queue: Delivery[] = [];
  private running = false;
  private stopped = false;
  /** Aborts the current POST / backoff sleep (clear, stop). */
  private abort = new AbortController();
  private readonly counters = { delivered: 0, failed: 0, dropped: 0, retries: 0 };
  private lastError: string | null = null;

  constructor(opts: WebhookOptions) {
    this.opts = opts;
    this.urlFile = path.join(opts.home, 'webhook.json');
    this.secretFile = path.join(opts.home, 'webhook-secret');
    const saved = readJsonFile(this.urlFile) as { url?: unknown } | undefined;
    if (saved && typeof saved.url === 'string') this.url = saved.url;
  }

  /** The signing secret, created on first use. */
  secret(): string {
    try {
      const s = fs.readFileSync(this.secretFile, 'utf8').trim();
      if (/^[0-9a-f]{64}$/.test(s)) {
        fs.chmodSync(this.secretFile, 0o600);
        return s;
      }
    } catch {
      /* none yet */
    }
    const s = crypto.randomBytes(32).toString('hex');
    writeFileAtomic(this.secretFile, s + '\n', 0o600);
    return s;
  }

  setUrl(raw: string): { url: string; secret: string } {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new PilotError('BAD_ARGUMENT', `invalid URL ${JSON.stringify(raw)}`, 'e.g. https://example.com/pilot-events');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new PilotError('BAD_ARGUMENT', 'webhook URL must be http or https');
    if (raw.length > 2048) throw new PilotError('BAD_ARGUMENT', 'webhook URL is limited to 2048 characters');
    const secret = this.secret();
    this.url = u.toString();
    writeJsonAtomic(this.urlFile, { url: this.url });
    return { url: this.url, secret };
  }

  clear(): void {
    this.url = null;
    fs.rmSync(this.urlFile, { force: true });
    this.queue = [];
    this.abort.abort();
    this.abort = new AbortController();
  }

  status(): WebhookStatus {
    return { url: this.url, queued: this.queue.length, ...this.counters, lastError: this.lastError };
  }

  emit(event: string, data: Record<string, unknown>): void {
    if (this.url === null || this.stopped) return;
    const id = crypto.randomUUID();
    const body = JSON.stringify({ id, event, ts: Date.now(), node: this.opts.self(), data });
    if (this.queue.length >= this.opts.queueSize) {
      this.queue.shift();
      this.counters.dropped++;
    }
    this.queue.push({ id, event, body });
    if (!this.running) void this.drain();
  }

  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.abort.abort();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        const d = this.queue.shift();
        if (!d || this.stopped) return;
        await this.deliver(d);
      }
    } finally {
      this.running = false;
    }
  }

  private async deliver(d: Delivery): Promise<void> {
    const signal = this.abort.signal;
    for (let attempt = 0; ; attempt++) {
      const url = this.url;
      if (url === null || signal.aborted) return;
      let retryable = true;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'pilot-daemon',
            'x-pilot-event': d.event,
            'x-pilot-delivery': d.id,
            [SIGNATURE_HEADER.toLowerCase()]: signBody(this.secret(), d.body),
          },
          body: d.body,
          redirect: 'manual',
          signal: AbortSignal.any([signal, AbortSignal.timeout(this.opts.timeoutMs)]),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status >= 200 && res.status < 300) {
          this.counters.delivered++;
          return;
        }
        retryable = res.status === 429 || res.status >= 500;
        this.lastError = `HTTP ${res.status}`;
      } catch (err) {
        if (signal.aborted) return;
        this.lastError = (err as Error).message;
      }
      if (!retryable || attempt >= this.opts.retries) {
        this.counters.failed++;
        this.opts.log.warn({ event: d.event, delivery: d.id, err: this.lastError, attempts: attempt + 1 }, 'webhook delivery failed');
        return;
      }
      this.counters.retries++;
      // exponential backoff with +-25 % jitter so many daemons do not retry in step
      const delay = this.opts.backoffMs * 2 ** attempt * (0.75 + Math.random() * 0.5);
      await sleep(delay, signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
