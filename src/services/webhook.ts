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
// bounded and drops its oldest event (counted) when full. What is not yet
// delivered is kept in $PILOT_HOME/webhook-queue.json (0600, atomic writes,
// shortly after each change and at stop), so a restart resumes it; a corrupt
// or oversized file is ignored with a warning. Delivery is at least once: an
// event whose POST was cut by the stop is sent again (same X-Pilot-Delivery).
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { PilotError } from '../util/errors.ts';
import type { Logger } from '../util/logger.ts';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../util/atomic-file.ts';

export const SIGNATURE_HEADER = 'X-Pilot-Signature';
/** How long after a change the queue file is rewritten (bursts of events share one write). */
const SAVE_DELAY_MS = 250;
/** A saved event larger than this is not one of ours. */
const MAX_SAVED_BODY = 1 << 20;

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
  /** The delivery being attempted (out of `queue`, still undelivered). */
  private current: Delivery | undefined;
  private readonly queueFile: string;
  private saveTimer: NodeJS.Timeout | undefined;
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
    this.queueFile = path.join(opts.home, 'webhook-queue.json');
    const saved = readJsonFile(this.urlFile) as { url?: unknown } | undefined;
    if (saved && typeof saved.url === 'string') this.url = saved.url;
    this.queue = this.loadQueue();
    if (this.queue.length > 0 && this.url !== null) void this.drain();
  }

  /** The undelivered events of the last run; anything odd in the file means none. */
  private loadQueue(): Delivery[] {
    let size: number;
    try {
      size = fs.statSync(this.queueFile).size;
    } catch {
      return [];
    }
    const limit = this.opts.queueSize * (MAX_SAVED_BODY + 1024);
    if (size > limit) {
      this.opts.log.warn({ file: this.queueFile, size, limit }, 'webhook queue file too large: ignored');
      return [];
    }
    const raw = readJsonFile(this.queueFile);
    const ok = (d: unknown): d is Delivery => {
      const x = d as Delivery;
      return (
        typeof x === 'object' &&
        x !== null &&
        typeof x.id === 'string' &&
        x.id.length <= 64 &&
        typeof x.event === 'string' &&
        /^[a-z_]{1,64}$/.test(x.event) &&
        typeof x.body === 'string' &&
        x.body.length <= MAX_SAVED_BODY
      );
    };
    if (!Array.isArray(raw) || !raw.every(ok)) {
      this.opts.log.warn({ file: this.queueFile }, 'webhook queue file is corrupt: ignored');
      return [];
    }
    if (raw.length > 0) this.opts.log.info({ events: raw.length }, 'webhook queue resumed from the last run');
    return raw.slice(-this.opts.queueSize);
  }

  private pending(): Delivery[] {
    return this.current ? [this.current, ...this.queue] : [...this.queue];
  }

  private saveQueue(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    try {
      const list = this.url === null ? [] : this.pending();
      if (list.length === 0) fs.rmSync(this.queueFile, { force: true });
      else writeFileAtomic(this.queueFile, JSON.stringify(list), 0o600);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'cannot save the webhook queue');
    }
  }

  private queueChanged(): void {
    if (this.stopped || this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.saveQueue(), SAVE_DELAY_MS);
    this.saveTimer.unref();
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
    this.current = undefined;
    this.saveQueue();
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
    this.queueChanged();
    if (!this.running) void this.drain();
  }

  stop(): void {
    if (this.stopped) return;
    this.saveQueue(); // before the abort: the delivery in flight is kept too
    this.stopped = true;
    this.queue = [];
    this.current = undefined;
    this.abort.abort();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (;;) {
        if (this.stopped) return;
        const d = this.queue.shift();
        if (!d) return;
        this.current = d;
        await this.deliver(d);
        if (this.stopped) return;
        this.current = undefined;
        this.queueChanged();
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
