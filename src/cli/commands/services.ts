// pilotctl commands of the built-in services: send-message, inbox, send-file,
// received, publish, subscribe, task submit|list|accept|decline|execute|send-results,
// set-webhook, clear-webhook, webhook.
import path from 'node:path';
import type { Command } from 'commander';
import { PilotError } from '../../util/errors.ts';
import { line, ok, parseCount, parseDuration, type OutputOptions } from '../output.ts';
import { readDataFile, utf8Text } from '../data-file.ts';
import { MAX_EVENT_DATA } from '../../services/pubsub.ts';
import type { RunWrapper } from '../action.ts';
import { answerWith, type Task, type TaskChange } from '../../ipc/api.ts';
import { hostnameLookup, named, type HostnameOf } from '../hostnames.ts';
import { columns } from './status.ts';
import { sendFileProgress } from './send-file-progress.ts';

const MiB = 1024 * 1024;
/** The largest message a receiver can be configured to take (services.json maxMessageBytes). */
const MAX_MESSAGE_FILE = 64 * MiB;

/** --data or --data-file (exactly one): text, or base64 of the raw bytes when `binary`. */
async function payload(o: { data?: string; dataFile?: string }, max: number, binary: boolean): Promise<string> {
  if (o.dataFile !== undefined && o.data !== undefined) throw new PilotError('BAD_ARGUMENT', 'give --data or --data-file, not both');
  if (o.dataFile === undefined) {
    if (o.data === undefined) throw new PilotError('BAD_ARGUMENT', 'missing --data or --data-file', 'e.g. --data hello, or --data-file ./msg.txt (- = stdin)');
    return o.data;
  }
  const bytes = await readDataFile(o.dataFile, max);
  return binary ? bytes.toString('base64') : utf8Text(bytes, o.dataFile, 'send raw bytes with --type binary');
}
const time = (ms: unknown): string => (typeof ms === 'number' ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-');
const short = (id: unknown): string => String(id).slice(0, 8);

/** A task as listed: its peer gains `peerHostname` when the daemon knows it. */
export type ListedTask = Task & { peerHostname: string | null };

/** `task list`: one line per task, the peer by hostname when known. */
export function formatTaskList(tasks: ListedTask[]): string {
  if (tasks.length === 0) return 'no tasks';
  const desc = (t: Task): string => (t.description.length > 40 ? `${t.description.slice(0, 39)}…` : t.description);
  return columns([
    ['ID', 'ROLE', 'STATUS', 'PEER', 'UPDATED', 'TASK'],
    ...tasks.map((t) => [short(t.id), t.role, t.status, named(t.peer, t.peerHostname), time(t.updatedAt), desc(t)]),
  ]);
}

/** `task show`: the whole record, results included (the list shows neither). */
export function formatTask(t: ListedTask): string {
  const who = t.role === 'received' ? 'from' : 'to';
  const lines = [
    `Task:     ${t.id}`,
    `Role:     ${t.role} (${who} ${named(t.peer, t.peerHostname)})`,
    `Status:   ${t.status}${t.notifyPending ? ' (the submitter is not told yet: retried in the background)' : ''}`,
    `Created:  ${time(t.createdAt)}`,
    `Updated:  ${time(t.updatedAt)}`,
    `History:  ${t.history.map((h) => `${h.status} ${time(h.at)}`).join(', ') || '-'}`,
    ...(t.reason !== null ? [`Reason:   ${t.reason}`] : []),
    '',
    'Description:',
    indent(t.description),
    '',
    'Results:',
    t.results === null ? `  (none yet${t.status === 'completed' ? '' : `: the task is ${t.status}`})` : indent(t.results),
  ];
  return lines.join('\n');
}

const indent = (text: string): string =>
  text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

/**
 * A task by id or unique prefix, among received and submitted ones alike (the
 * daemon's own lookup is per role; `show` should not make the user say which).
 */
export function findTask(tasks: Task[], id: string): Task {
  const exact = tasks.filter((t) => t.id === id);
  if (exact.length === 1) return exact[0]!;
  const hits = exact.length > 1 ? exact : id.length >= 4 ? tasks.filter((t) => t.id.startsWith(id)) : [];
  if (hits.length === 1) return hits[0]!;
  if (hits.length > 1)
    throw new PilotError('NOT_FOUND', `task id ${id} is ambiguous (${hits.length} tasks)`, `give more of the id: ${hits.map((t) => short(t.id)).join(', ')}`);
  throw new PilotError(
    'NOT_FOUND',
    `no task ${id}`,
    id.length < 4 ? 'give the full id or at least 4 characters of it (pilotctl task list)' : 'see: pilotctl task list',
  );
}

const withHostname = (t: Task, hostnameOf: HostnameOf): ListedTask => ({ ...t, peerHostname: hostnameOf(t.peer) });

function taskChanged(out: OutputOptions, r: TaskChange, verb: string): void {
  ok(out, r, () => `task ${short(r.task.id)} ${verb}${r.notified ? '' : ' (the submitter is not reachable now: it is told later)'}`);
}

export function registerServiceCommands(program: Command, run: RunWrapper): void {
  // ---- messages ----
  program
    .command('send-message <target>')
    .description("send a message into a peer's inbox (port 1001)")
    .option('--data <data>', 'the message (base64 with --type binary)')
    .option('--data-file <path>', 'read the message from a file (- = stdin; raw bytes with --type binary)')
    .option('--type <type>', 'text, json or binary', 'text')
    .action(
      run(async (_g, out, client, target: string, o: { data?: string; dataFile?: string; type: string }) => {
        const data = await payload(o, MAX_MESSAGE_FILE, o.type === 'binary');
        const r = await client().call('send_message', { target, data, type: o.type });
        ok(out, r, () => `message delivered to ${r.peer} (${r.bytes} bytes, ${o.type})`);
      }),
    );
  program
    .command('inbox')
    .description('messages received from peers (kept across restarts until --clear)')
    .option('--clear', 'delete every message')
    .action(
      run(async (_g, out, client, o: { clear?: boolean }) => {
        if (o.clear) {
          const r = answerWith(await client().call('inbox', { clear: true }), 'cleared');
          ok(out, r, () => `inbox cleared (${r.cleared} messages)`);
          return;
        }
        const c = client();
        const inbox = answerWith(await c.call('inbox'), 'messages');
        const hostnameOf = await hostnameLookup(c);
        const r = { ...inbox, messages: inbox.messages.map((m) => ({ ...m, fromHostname: hostnameOf(m.from) })) };
        ok(out, r, () =>
          r.messages.length === 0
            ? 'inbox empty'
            : r.messages.map((m) => `${time(m.receivedAt)}  ${named(m.from, m.fromHostname)}  ${m.type}: ${m.data}`).join('\n'),
        );
      }),
    );

  // ---- files ----
  program
    .command('send-file <target> <path>')
    .description('send a file of any size to a peer (port 1001): verified by sha256, resumes a broken transfer')
    .action(
      run(async (_g, out, client, target: string, file: string) => {
        const progress = sendFileProgress({ out, target, file });
        const r = await progress.run(() =>
          client().call('send_file', { target, path: path.resolve(file) }, (event, data) => {
            if (event === 'progress') progress.update(data);
          }),
        );
        ok(
          out,
          r,
          () =>
            `sent ${r.bytes} bytes to ${r.peer} as ${r.name}${Number(r.resumedFrom) > 0 ? ` (resumed at byte ${r.resumedFrom})` : ''}, sha256 verified, ${r.mbPerSec} MB/s`,
        );
      }),
    );
  program
    .command('received')
    .description('files received from peers (in $PILOT_HOME/received)')
    .option('--clear', 'delete every received file')
    .action(
      run(async (_g, out, client, o: { clear?: boolean }) => {
        if (o.clear) {
          const r = answerWith(await client().call('received', { clear: true }), 'cleared');
          ok(out, r, () => `received files cleared (${r.cleared} files)`);
          return;
        }
        const c = client();
        const list = answerWith(await c.call('received'), 'files');
        const hostnameOf = await hostnameLookup(c);
        const r = { ...list, files: list.files.map((f) => ({ ...f, fromHostname: hostnameOf(f.from) })) };
        ok(out, r, () =>
          r.files.length === 0
            ? `no files in ${r.dir}`
            : columns(r.files.map((f) => [time(f.receivedAt), named(f.from, f.fromHostname), String(f.size).padStart(12), f.name])),
        );
      }),
    );

  // ---- pub/sub ----
  program
    .command('publish <target> <topic>')
    .description("publish an event on a topic of a peer's broker (port 1002; the target may be this node)")
    .option('--data <data>', 'event payload (default: empty)')
    .option('--data-file <path>', 'read the payload from a file (- = stdin), UTF-8, at most 64 KiB')
    .action(
      run(async (_g, out, client, target: string, topic: string, o: { data?: string; dataFile?: string }) => {
        const data = o.data === undefined && o.dataFile === undefined ? '' : await payload(o, MAX_EVENT_DATA, false);
        const r = await client().call('publish', { target, topic, data });
        ok(out, r, () => `published on ${topic}: ${r.delivered} subscriber(s)`);
      }),
    );
  program
    .command('subscribe <target> <topic>')
    .description('stream events of a topic (a.b, a.*, or * for all) from a broker; NDJSON with --json')
    .option('--count <n>', 'stop after N events (default: until timeout or Ctrl-C)', '0')
    .option('--timeout <d>', 'stop after this long (default: wait forever)')
    .action(
      run(async (_g, out, client, target: string, topic: string, o: { count: string; timeout?: string }) => {
        const count = parseCount(o.count, 0);
        const r = await client().call('subscribe', { target, topic, count, timeoutMs: parseDuration(o.timeout, 0) }, (event, data) => {
          if (event === 'subscribed' && !out.json) process.stderr.write(`subscribed to ${topic} on ${target}\n`);
          if (event !== 'event') return; // subscribed, keepalive
          line(out, data, `${data.topic}  ${data.from}  ${data.data}`);
        });
        if (out.json) ok(out, { target, topic, received: r.received }, () => undefined);
        if (count > 0 && r.received < count) throw new PilotError('TIMEOUT', `${r.received} of ${count} events before the timeout`);
      }),
    );

  // ---- tasks ----
  const task = program.command('task').description('tasks between agents (port 1003)');
  task
    .command('submit <target>')
    .description('ask a peer to run a task')
    .requiredOption('--task <description>', 'what to do')
    .action(
      run(async (_g, out, client, target: string, o: { task: string }) => {
        const r = await client().call('task_submit', { target, description: o.task });
        ok(out, r, () => `task ${r.task.id} submitted to ${r.task.peer}`);
      }),
    );
  task
    .command('list')
    .description('tasks received and submitted')
    .option('--type <type>', 'received or submitted')
    .action(
      run(async (_g, out, client, o: { type?: string }) => {
        const c = client();
        const list = await c.call('task_list', { ...(o.type ? { type: o.type } : {}) });
        const hostnameOf = await hostnameLookup(c);
        const r = { ...list, tasks: list.tasks.map((t) => withHostname(t, hostnameOf)) };
        ok(out, r, () => formatTaskList(r.tasks));
      }),
    );
  task
    .command('show <id>')
    .description('one task in full: description, status history and results (id or a unique prefix of at least 4 characters)')
    .action(
      run(async (_g, out, client, id: string) => {
        const c = client();
        const t = findTask((await c.call('task_list')).tasks, id);
        const r = { task: withHostname(t, await hostnameLookup(c)) };
        ok(out, r, () => formatTask(r.task));
      }),
    );
  task
    .command('accept <id>')
    .description('accept a received task (id or a unique prefix)')
    .action(
      run(async (_g, out, client, id: string) => {
        taskChanged(out, await client().call('task_accept', { id }), 'accepted');
      }),
    );
  task
    .command('decline <id>')
    .description('decline a received task')
    .option('--reason <text>', 'why')
    .action(
      run(async (_g, out, client, id: string, o: { reason?: string }) => {
        taskChanged(out, await client().call('task_decline', { id, ...(o.reason ? { reason: o.reason } : {}) }), 'declined');
      }),
    );
  task
    .command('execute [id]')
    .description('start an accepted task (default: the oldest) and print what to do')
    .action(
      run(async (_g, out, client, id: string | undefined) => {
        const r = await client().call('task_execute', { ...(id ? { id } : {}) });
        ok(out, r, () => `executing task ${r.task.id} from ${r.task.peer}:\n${r.task.description}`);
      }),
    );
  task
    .command('send-results <id>')
    .description('complete an executing task and send its results to the submitter')
    .requiredOption('--results <text>', 'the results')
    .action(
      run(async (_g, out, client, id: string, o: { results: string }) => {
        taskChanged(out, await client().call('task_send_results', { id, results: o.results }), 'completed');
      }),
    );

  // ---- webhooks ----
  program
    .command('set-webhook <url>')
    .description('POST every event to this URL as JSON, signed: X-Pilot-Signature: sha256=HMAC(secret, body)')
    .action(
      run(async (_g, out, client, url: string) => {
        const r = await client().call('set_webhook', { url });
        ok(out, r, () => `webhook set: ${r.url}\nsigning secret: ${r.secret}\n(verify: X-Pilot-Signature = "sha256=" + hex HMAC-SHA256(secret, raw body))`);
      }),
    );
  program
    .command('clear-webhook')
    .description('stop sending events')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('clear_webhook');
        ok(out, r, () => 'webhook cleared');
      }),
    );
  program
    .command('webhook')
    .description('webhook URL and delivery counters')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('webhook_status');
        ok(
          out,
          r,
          () =>
            `url: ${r.url ?? '-'}\nqueued ${r.queued}, delivered ${r.delivered}, failed ${r.failed}, dropped ${r.dropped}, retries ${r.retries}${r.lastError ? `\nlast error: ${r.lastError}` : ''}`,
        );
      }),
    );
}
