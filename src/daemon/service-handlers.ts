// IPC methods of the built-in services (src/services): messages, files,
// pub/sub, tasks, webhooks. Merged into ipcHandlers.
import { addressKey, formatAddress } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import type { Handlers } from '../ipc/server.ts';
import type { Daemon } from './daemon.ts';
import { parseTarget } from './targets.ts';
import type { ServiceHost } from '../services/host.ts';
import { sendFile, sendMessage } from '../services/data-exchange.ts';
import { publishTo, subscribeTo, type PubSubEvent } from '../services/pubsub.ts';
import { validatePattern } from '../services/topics.ts';
import type { Services } from '../services/index.ts';
import { stdioHandlers } from './stdio-handlers.ts';
import { IPC_KEEPALIVE_MS } from './ipc-wait.ts';

function services(d: Daemon): Services {
  if (!d.services) throw new PilotError('INTERNAL', 'the built-in services are not running');
  return d.services;
}

function need<T>(svc: T | undefined, what: string): T {
  if (svc === undefined)
    throw new PilotError('CONNECTION_REFUSED', `${what} is disabled on this node`, 'enable it in $PILOT_HOME/services.json and restart the daemon');
  return svc;
}

/** Outgoing operations use the daemon itself (dial enforces trust), whatever is enabled locally. */
function clientHost(d: Daemon): ServiceHost {
  return {
    home: d.home,
    log: d.log,
    listen: () => {
      throw new PilotError('INTERNAL', 'client host cannot listen');
    },
    onDatagram: () => {
      throw new PilotError('INTERNAL', 'client host cannot listen');
    },
    dial: async (target, port) => {
      const peer = await d.peerFor(target);
      const stream = await d.dial(peer.address, port);
      return { stream, peer: formatAddress(peer.address) };
    },
    self: () => (d.address ? formatAddress(d.address) : ''),
    event: () => {},
  };
}

/** Is this target text our own node (pub/sub on the local broker)? */
function isSelf(d: Daemon, target: string): boolean {
  if (!d.address) return false;
  if (d.config.hostname !== undefined && target.toLowerCase() === d.config.hostname.toLowerCase()) return true;
  try {
    const t = parseTarget(target, d.address.network);
    return 'address' in t && addressKey(t.address) === addressKey(d.address);
  } catch {
    return false;
  }
}

type ServiceMethod =
  | 'stdio_recv'
  | 'stdio_status'
  | 'send_message'
  | 'inbox'
  | 'send_file'
  | 'received'
  | 'publish'
  | 'subscribe'
  | 'pubsub_status'
  | 'task_submit'
  | 'task_list'
  | 'task_accept'
  | 'task_decline'
  | 'task_execute'
  | 'task_send_results'
  | 'set_webhook'
  | 'clear_webhook'
  | 'webhook_status';

export function serviceHandlers(d: Daemon): Pick<Handlers, ServiceMethod> {
  const client = clientHost(d);
  return {
    ...stdioHandlers(d), // stdio (port 1000): stdio_recv, stdio_status
    // ---- messages (port 1001) ----
    send_message: async (p) => {
      const { target, type, data } = p;
      let body: Buffer;
      if (type === 'binary') {
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data)) throw new PilotError('BAD_ARGUMENT', 'binary data must be base64');
        body = Buffer.from(data, 'base64');
      } else {
        body = Buffer.from(data, 'utf8');
      }
      if (type === 'json') {
        try {
          JSON.parse(data);
        } catch {
          throw new PilotError('BAD_ARGUMENT', '--data is not valid JSON', 'quote it for the shell, e.g. --data \'{"k":1}\'');
        }
      }
      const r = await sendMessage(client, target, type, body, d.services?.config.stallTimeoutMs);
      return { target, ...r };
    },
    inbox: (p) => {
      const inbox = need(services(d).inbox, 'the message inbox');
      if (p.clear) return { cleared: inbox.clear() };
      const messages = inbox.list().map((m) => (m.type === 'json' ? { ...m, json: safeJson(m.data) } : m));
      return { count: messages.length, messages };
    },

    // ---- files (port 1001) ----
    send_file: async (p, ctx) => {
      const { target, path: file } = p;
      const ac = new AbortController();
      void ctx.closed.then(() => ac.abort());
      const r = await sendFile(client, target, file, (prog) => ctx.emit('progress', prog), ac.signal, d.services?.config.stallTimeoutMs);
      return { target, file, ...r };
    },
    received: (p) => {
      const files = need(services(d).files, 'file transfer');
      if (p.clear) return { cleared: files.clear() };
      const list = files.list();
      return { dir: files.dir, count: list.length, files: list };
    },

    // ---- pub/sub (port 1002) ----
    publish: async (p) => {
      const { target, topic, data } = p;
      if (isSelf(d, target)) {
        const broker = need(services(d).broker, 'pub/sub');
        return { target, peer: client.self(), topic, delivered: broker.publish(topic, data, client.self()) };
      }
      return { target, topic, ...(await publishTo(client, target, topic, data)) };
    },
    subscribe: async (p, ctx) => {
      const { target, count, timeoutMs } = p; // count 0 = until timeout / the client leaves; timeoutMs 0 = none
      const topic = validatePattern(p.topic);
      const ac = new AbortController();
      const events: PubSubEvent[] = [];
      let received = 0;
      const counting = (ev: PubSubEvent): void => {
        if (ac.signal.aborted) return;
        received++;
        if (count > 0) events.push(ev); // unbounded: streamed only, never kept
        ctx.emit('event', ev);
        if (count > 0 && received >= count) ac.abort();
      };
      const timer = timeoutMs > 0 ? setTimeout(() => ac.abort(), timeoutMs) : undefined;
      void ctx.closed.then(() => ac.abort());
      // A killed pilotctl only shows as a failed write on its IPC socket: write now and then, so a
      // quiet topic does not keep a dead subscription (and its stream to the broker) forever.
      const heartbeat = setInterval(() => ctx.emit('keepalive', {}), IPC_KEEPALIVE_MS);
      try {
        if (isSelf(d, target)) {
          const broker = need(services(d).broker, 'pub/sub');
          const off = broker.subscribe(topic, (ev) => {
            counting(ev);
            return true;
          });
          ctx.emit('subscribed', { target, topic });
          await new Promise<void>((resolve) => {
            if (ac.signal.aborted) resolve();
            else ac.signal.addEventListener('abort', () => resolve(), { once: true });
          });
          off();
        } else {
          await subscribeTo(client, target, topic, counting, ac.signal, (peer) => ctx.emit('subscribed', { target, peer, topic }));
        }
      } finally {
        if (timer) clearTimeout(timer);
        clearInterval(heartbeat);
      }
      return { target, topic, received, ...(count > 0 ? { events } : {}) };
    },

    pubsub_status: () => {
      const broker = need(services(d).broker, 'pub/sub');
      return { subscribers: broker.subscribers, published: broker.published };
    },

    // ---- tasks (port 1003) ----
    task_submit: async (p) => {
      const tasks = need(services(d).tasks, 'tasks');
      const t = await tasks.submit(p.target, p.description);
      return { task: t };
    },
    task_list: (p) => {
      const tasks = need(services(d).tasks, 'tasks');
      const list = tasks.store.list(p.type);
      return { count: list.length, tasks: list };
    },
    task_accept: (p) => need(services(d).tasks, 'tasks').accept(p.id),
    task_decline: (p) => need(services(d).tasks, 'tasks').decline(p.id, p.reason),
    task_execute: (p) => need(services(d).tasks, 'tasks').execute(p.id),
    task_send_results: (p) => need(services(d).tasks, 'tasks').sendResults(p.id, p.results),

    // ---- webhooks ----
    set_webhook: (p) => need(services(d).webhook, 'webhooks').setUrl(p.url),
    clear_webhook: () => {
      need(services(d).webhook, 'webhooks').clear();
      return { url: null };
    },
    webhook_status: () => need(services(d).webhook, 'webhooks').status(),
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
