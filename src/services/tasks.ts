// Port 1003, tasks: a peer submits a task, we accept or decline it, execute
// it and send the results back. Every change is saved before it is answered;
// the submitter is told each status change over its own port 1003, retried
// (also across restarts) until it answers.
//
//   {op:"submit", id, description}                   -> {ok:true, status:"submitted"}
//   {op:"update", id, status, reason?, results?}     -> {ok:true}   (only from the task's executor)
import crypto from 'node:crypto';
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { issuesText, withMessages } from '../util/schema.ts';
import { ByteReader, REQUEST_TIMEOUT_MS, okFrame, refuse, withTimeout } from './framing.ts';
import { ask } from './request.ts';
import type { ServiceHost, ServiceStream } from './host.ts';
import { MAX_DESCRIPTION, MAX_REASON, MAX_RESULTS, TASK_STATUSES, type Task, type TaskStatus, type TaskStore } from './task-store.ts';

export const TASK_PORT = 1003;
/** Results travel inside one JSON frame; escaping can make them longer than their bytes. */
const MAX_TASK_FRAME = 8 * MAX_RESULTS;
const RETRY_TICK_MS = 1000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;
/** How long accept/decline/execute/send-results wait for the submitter to confirm. */
const NOTIFY_WAIT_MS = 5_000;

const RequestSchema = withMessages(
  v.variant('op', [
    v.object({ op: v.literal('submit'), id: v.pipe(v.string(), v.maxLength(64)), description: v.string() }),
    v.object({
      op: v.literal('update'),
      id: v.pipe(v.string(), v.maxLength(64)),
      status: v.picklist(TASK_STATUSES),
      reason: v.nullish(v.string()),
      results: v.nullish(v.string()),
    }),
  ]),
);

function checkSize(text: string, max: number, what: string): void {
  if (Buffer.byteLength(text) > max) throw new PilotError('FRAME_TOO_LARGE', `${what} is limited to ${max} bytes`);
}

export interface TaskChange {
  task: Task;
  /** Did the submitter get the change already (false: it is retried in the background)? */
  notified: boolean;
}

export class TaskService {
  private readonly host: ServiceHost;
  readonly store: TaskStore;
  private readonly retry = new Map<string, { at: number; delay: number }>();
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private off: (() => void) | undefined;

  constructor(host: ServiceHost, store: TaskStore) {
    this.host = host;
    this.store = store;
  }

  start(): () => void {
    this.off = this.host.listen(TASK_PORT, (stream, from) => {
      stream.on('error', () => {});
      const reader = new ByteReader(stream);
      this.serve(stream, reader, from).catch((err: unknown) => {
        this.host.log.info({ peer: from, code: (err as PilotError).code, err: (err as Error).message }, 'task request refused');
        refuse(stream, reader, err);
      });
    });
    this.timer = setInterval(() => this.retryDue(), RETRY_TICK_MS);
    this.timer.unref();
    return () => this.stop();
  }

  stop(): void {
    this.off?.();
    if (this.timer) clearInterval(this.timer);
  }

  private async serve(stream: ServiceStream, reader: ByteReader, from: string): Promise<void> {
    const raw = await withTimeout(reader.readFrame(MAX_TASK_FRAME), REQUEST_TIMEOUT_MS, 'the request');
    const parsed = v.safeParse(RequestSchema, raw);
    if (!parsed.success) throw new PilotError('BAD_REQUEST', `bad task request: ${issuesText(parsed.issues)}`);
    const req = parsed.output;
    if (req.op === 'submit') {
      checkSize(req.description, MAX_DESCRIPTION, 'a task description');
      // a repeated submit (the sender retried after a reset) is answered, not duplicated
      const known = this.store.get('received', req.id);
      if (known && known.peer === from && known.description === req.description) {
        stream.end(okFrame({ status: known.status }));
        return;
      }
      const t = this.store.create('received', req.id, from, req.description);
      stream.end(okFrame({ status: t.status }));
      this.host.event('task_received', { from, id: t.id });
      return;
    }
    const t = this.store.get('submitted', req.id);
    // only the node the task was sent to may move it
    if (!t || t.peer !== from) throw new PilotError('NOT_FOUND', `no task ${req.id} submitted to you`);
    if (req.results != null) checkSize(req.results, MAX_RESULTS, 'task results');
    if (req.reason != null) checkSize(req.reason, MAX_REASON, 'a decline reason');
    if (t.status !== req.status) {
      this.store.move(t, req.status, { ...(req.reason != null ? { reason: req.reason } : {}), ...(req.results != null ? { results: req.results } : {}) });
      this.host.event('task_updated', { peer: from, id: t.id, status: req.status });
    }
    stream.end(okFrame({}));
  }

  // ---------- submitter side ----------

  async submit(target: string, description: string): Promise<Task> {
    if (description.length === 0) throw new PilotError('BAD_ARGUMENT', 'the task description is empty');
    checkSize(description, MAX_DESCRIPTION, 'a task description');
    const id = crypto.randomUUID();
    const x = await ask(this.host, target, TASK_PORT, { op: 'submit', id, description }, { what: 'the task', end: true });
    x.stream.destroy();
    return this.store.create('submitted', id, x.peer, description);
  }

  // ---------- executor side ----------

  accept(id: string): Promise<TaskChange> {
    return this.change(this.store.find('received', id), 'accepted', {});
  }

  decline(id: string, reason: string | undefined): Promise<TaskChange> {
    if (reason !== undefined) checkSize(reason, MAX_REASON, 'a decline reason');
    return this.change(this.store.find('received', id), 'declined', reason !== undefined ? { reason } : {});
  }

  /** Start an accepted task (by id, or the oldest accepted one); returns it with its description. */
  execute(id: string | undefined): Promise<TaskChange> {
    const t = id !== undefined ? this.store.find('received', id) : this.store.list('received').find((x) => x.status === 'accepted');
    if (!t) throw new PilotError('NOT_FOUND', 'no accepted task waiting', 'accept one first: pilotctl task list --type received');
    return this.change(t, 'executing', {});
  }

  sendResults(id: string, results: string): Promise<TaskChange> {
    checkSize(results, MAX_RESULTS, 'task results');
    return this.change(this.store.find('received', id), 'completed', { results });
  }

  private async change(t: Task, to: TaskStatus, extra: { reason?: string; results?: string }): Promise<TaskChange> {
    const moved = this.store.move(t, to, { ...extra, notifyPending: true });
    // an offline submitter must not block the command: the attempt goes on (and is retried) in the background
    const notified = await Promise.race([this.notify(moved), new Promise<boolean>((r) => setTimeout(() => r(false), NOTIFY_WAIT_MS).unref())]);
    return { task: this.store.get('received', t.id) ?? moved, notified };
  }

  /** Tell the submitter the task's current status. */
  private async notify(t: Task): Promise<boolean> {
    if (this.inFlight.has(t.id)) return false;
    this.inFlight.add(t.id);
    try {
      const cur = this.store.get('received', t.id) ?? t;
      const x = await ask(
        this.host,
        cur.peer,
        TASK_PORT,
        { op: 'update', id: cur.id, status: cur.status, reason: cur.reason, results: cur.results },
        { what: 'the task update', end: true },
      );
      x.stream.destroy();
      const after = this.store.get('received', t.id);
      // a newer change made meanwhile still needs its own notification
      if (after && after.status === cur.status) this.store.setNotified(after, false);
      this.retry.delete(t.id);
      return after?.status === cur.status;
    } catch (err) {
      const prev = this.retry.get(t.id);
      const delay = prev ? Math.min(prev.delay * 2, RETRY_MAX_MS) : RETRY_MIN_MS;
      this.retry.set(t.id, { at: Date.now() + delay, delay });
      this.host.log.info({ task: t.id, peer: t.peer, err: (err as Error).message, retryInMs: delay }, 'task update not delivered');
      return false;
    } finally {
      this.inFlight.delete(t.id);
    }
  }

  private retryDue(): void {
    const now = Date.now();
    for (const t of this.store.list('received')) {
      if (!t.notifyPending || this.inFlight.has(t.id)) continue;
      const r = this.retry.get(t.id);
      if (r && r.at > now) continue;
      void this.notify(t);
    }
  }
}
