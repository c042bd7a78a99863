// node.messages, node.files, node.tasks, node.webhooks: the daemon's built-in
// services (src/services) through the same IPC methods pilotctl uses. Every
// call needs mutual trust with the target; failures are PilotErrors.
import path from 'node:path';
import { PilotError } from '../util/errors.ts';
import { answerWith } from '../ipc/api.ts';
import type { Backend } from './backend.ts';
import type {
  FileProgress,
  InboxEntry,
  MessageType,
  ReceivedList,
  SendFileResult,
  SendMessageResult,
  Task,
  TaskChange,
  TaskRole,
  WebhookSet,
  WebhookStatus,
} from './service-types.ts';

/** Messages into a peer's inbox (port 1001), and this node's inbox. */
export class Messages {
  private readonly backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  /**
   * Send a message into `target`'s inbox; resolves once the peer stored it.
   * A string is sent as text (or as JSON text with `{ type: 'json' }`), bytes
   * as binary. The receiver's limit is 1 MiB by default (FRAME_TOO_LARGE).
   */
  async send(target: string, data: string | Uint8Array, opts: { type?: MessageType } = {}): Promise<SendMessageResult> {
    const bytes = typeof data !== 'string';
    const type = opts.type ?? (bytes ? 'binary' : 'text');
    if (bytes && type !== 'binary') throw new PilotError('BAD_ARGUMENT', `bytes are sent as type binary, not ${type}`, 'pass a string for text or json');
    const payload = type !== 'binary' ? (data as string) : Buffer.from(bytes ? (data as Uint8Array) : Buffer.from(data as string, 'utf8')).toString('base64');
    return this.backend.call('send_message', { target, data: payload, type });
  }

  /** Send `value` as a JSON message (the receiver's inbox entry has it parsed in `json`). */
  async sendJson(target: string, value: unknown): Promise<SendMessageResult> {
    const text = JSON.stringify(value);
    if (text === undefined) throw new PilotError('BAD_ARGUMENT', 'that value has no JSON form');
    return this.send(target, text, { type: 'json' });
  }

  /** Messages received, oldest first (kept across restarts until clear()). Binary data is base64. */
  async inbox(): Promise<InboxEntry[]> {
    return answerWith(await this.backend.call('inbox'), 'messages').messages;
  }

  /** Delete every message in the inbox; resolves with how many there were. */
  async clear(): Promise<number> {
    return answerWith(await this.backend.call('inbox', { clear: true }), 'cleared').cleared;
  }
}

export interface SendFileOptions {
  /** Called about every 100 ms while bytes go out, and once at the start and end. */
  onProgress?: (p: FileProgress) => void;
  /** Abort the transfer (rejects with CONNECTION_RESET; a later send resumes it). */
  signal?: AbortSignal;
}

/** Files of any size to a peer (port 1001), and the files peers sent this node. */
export class Files {
  private readonly backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  /**
   * Send a file: the daemon reads it (so `file` is a path on the daemon's
   * host; relative paths are resolved here), the peer verifies its sha256
   * and stores it in its received/ directory. A broken transfer resumes.
   */
  async send(target: string, file: string, opts: SendFileOptions = {}): Promise<SendFileResult> {
    const { onProgress, signal } = opts;
    if (signal?.aborted) throw cancelled();
    const sub = this.backend.subscribe('send_file', { target, path: path.resolve(file) }, (event, data) => {
      if (event === 'progress') onProgress?.(data);
    });
    const stop = (): void => sub.cancel();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      const r = await sub.done;
      if (!r) throw cancelled(); // over IPC a cancelled request has no answer
      return r;
    } finally {
      signal?.removeEventListener('abort', stop);
    }
  }

  /** Files received, oldest first, in `dir` ($PILOT_HOME/received of the node). */
  async received(): Promise<ReceivedList> {
    return answerWith(await this.backend.call('received'), 'files');
  }

  /** Delete every received file; resolves with how many there were. */
  async clear(): Promise<number> {
    return answerWith(await this.backend.call('received', { clear: true }), 'cleared').cleared;
  }
}

function cancelled(): PilotError {
  return new PilotError('CONNECTION_RESET', 'transfer cancelled', 'send it again to resume');
}

/**
 * Tasks between agents (port 1003). The submitter submits; the receiver
 * accepts (or declines), executes, and sends results; each change reaches the
 * submitter's copy (`notified: false`: it is retried in the background).
 */
export class Tasks {
  private readonly backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  /** Ask `target` to run a task; resolves with this node's copy (role 'submitted'). */
  async submit(target: string, description: string): Promise<Task> {
    return (await this.backend.call('task_submit', { target, description })).task;
  }

  /** Tasks received and submitted, or only one role. */
  async list(opts: { type?: TaskRole } = {}): Promise<Task[]> {
    return (await this.backend.call('task_list', opts.type !== undefined ? { type: opts.type } : {})).tasks;
  }

  /** Accept a received task (id or a unique prefix). */
  accept(id: string): Promise<TaskChange> {
    return this.backend.call('task_accept', { id });
  }

  decline(id: string, reason?: string): Promise<TaskChange> {
    return this.backend.call('task_decline', { id, ...(reason !== undefined ? { reason } : {}) });
  }

  /** Start an accepted task (default: the oldest accepted one); NOT_FOUND if none waits. */
  execute(id?: string): Promise<TaskChange> {
    return this.backend.call('task_execute', id !== undefined ? { id } : {});
  }

  /** Complete an executing task and send `results` (at most 1 MiB) to the submitter. */
  sendResults(id: string, results: string): Promise<TaskChange> {
    return this.backend.call('task_send_results', { id, results });
  }
}

/** This node's webhook: every event POSTed as signed JSON to one URL. */
export class Webhooks {
  private readonly backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  /** Set the URL (http or https); resolves with the URL and the signing secret. */
  set(url: string): Promise<WebhookSet> {
    return this.backend.call('set_webhook', { url });
  }

  /** Stop sending events (the queue is dropped). */
  async clear(): Promise<void> {
    await this.backend.call('clear_webhook');
  }

  /** The URL (null: none) and delivery counters. */
  status(): Promise<WebhookStatus> {
    return this.backend.call('webhook_status');
  }
}
