// node.stdio: text lines between agents on port 1000. send() puts lines into a
// peer's queue (what `pilotctl connect <peer> --message` does); recv() takes
// the lines peers sent us from this node's queue (`pilotctl recv 1000`).
import { parseStdioAnswer } from '../services/stdio.ts';
import type { Backend } from './backend.ts';
import type { StdioMessage, StdioSendResult, StdioStats } from './service-types.ts';
import { ServiceSubscription, type SubscriptionOptions } from './subscription.ts';

export interface StdioRecvOptions extends SubscriptionOptions<StdioMessage> {
  /** Only lines from this peer (hostname, address or node id). */
  from?: string;
}

export class Stdio {
  private readonly backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  /**
   * Send text to `target`'s stdio queue: each "\n"-ended line (and a last
   * unfinished one) is one message; an array is sent as lines. At most 64 Ki
   * characters per call. Resolves once the peer confirmed how many lines it
   * queued; rejects with the peer's refusal (e.g. CONNECTION_REFUSED when its
   * stdio service is off) or NOT_TRUSTED, TIMEOUT, ...
   */
  async send(target: string, text: string | readonly string[], opts: { timeoutMs?: number } = {}): Promise<StdioSendResult> {
    const message = typeof text === 'string' ? text : text.join('\n');
    const r = await this.backend.call('connect', {
      target,
      port: 1000,
      message,
      timeoutMs: opts.timeoutMs ?? 5000,
    });
    return { target: r.target, sent: r.sent, ...parseStdioAnswer(r.reply) };
  }

  /**
   * Take lines from this node's queue: the queued ones first, then the ones
   * that arrive, until `count`, `timeoutMs` or cancel(). A line is gone from
   * the queue once taken (also if it was still in the iterator's buffer when
   * the loop stopped): use `count` to take exactly N.
   */
  recv(opts: StdioRecvOptions = {}): Promise<ServiceSubscription<StdioMessage>> {
    const { from, ...rest } = opts;
    return ServiceSubscription.open(this.backend, 'stdio_recv', from !== undefined ? { from } : {}, 'message', 'reading', rest);
  }

  /** This node's queue: lines queued, received, dropped (queue full), truncated, streams open. */
  status(): Promise<StdioStats> {
    return this.backend.call('stdio_status');
  }
}
