// The built-in services of a daemon, started together from services.json:
// stdio (1000: text lines into a queue), data exchange (1001: inbox + received files), pub/sub (1002), tasks (1003)
// and the webhook dispatcher that reports events.
import type { ServiceHost } from './host.ts';
import type { ServiceConfig } from './service-config.ts';
import { Inbox } from './inbox.ts';
import { ReceivedFiles } from './received-files.ts';
import { startDataExchange } from './data-exchange.ts';
import { Broker, startPubSub } from './pubsub.ts';
import { TaskStore } from './task-store.ts';
import { TaskService } from './tasks.ts';
import { WebhookDispatcher } from './webhook.ts';
import { StdioQueue, startStdio } from './stdio.ts';
import { DiskBudget } from './quota.ts';

export interface Services {
  readonly config: ServiceConfig;
  readonly inbox: Inbox | undefined;
  readonly files: ReceivedFiles | undefined;
  readonly broker: Broker | undefined;
  readonly tasks: TaskService | undefined;
  readonly webhook: WebhookDispatcher | undefined;
  readonly stdio: StdioQueue | undefined;
  /** What each peer may put on our disk (free-space floor, per-peer quota). */
  readonly budget: DiskBudget;
  stop(): void;
}

/** `host.event` should end up in `webhook.emit` (the daemon wires that, it also adds its own events). */
export function startServices(host: ServiceHost, config: ServiceConfig): Services {
  const stops: Array<() => void> = [];
  const stdio = config.stdio ? new StdioQueue(config.stdioQueue) : undefined;
  if (stdio) stops.push(startStdio(host, stdio, { maxLineBytes: config.stdioMaxLineBytes }));
  const budget = new DiskBudget({ dir: host.home, floorBytes: config.diskFloorBytes, peerQuotaBytes: config.peerDiskQuotaBytes });
  const inbox = config.messages ? new Inbox(host.home, { maxMessages: config.maxInboxMessages, maxPerPeer: config.maxPeerInboxMessages, budget }) : undefined;
  const files = config.files
    ? new ReceivedFiles(host.home, { budget, partialMaxAgeMs: config.partialMaxAgeSeconds * 1000, maxPerPeer: config.maxPeerIncomingFiles })
    : undefined;
  if (inbox || files) stops.push(startDataExchange(host, { inbox, files, maxMessageBytes: config.maxMessageBytes, maxFileBytes: config.maxFileBytes }));
  const broker = config.pubsub
    ? new Broker({
        maxSubscribers: config.maxSubscribers,
        maxPerPeer: config.maxPeerSubscriptions,
        backlogBytes: config.subscriberBacklogBytes,
        totalBacklogBytes: config.pubsubBacklogBytes,
      })
    : undefined;
  if (broker) stops.push(startPubSub(host, broker));
  const tasks = config.tasks
    ? new TaskService(
        host,
        new TaskStore(host.home, {
          maxReceived: config.maxReceivedTasks,
          maxPeerOpen: config.maxPeerOpenTasks,
          maxReceivedBytes: config.maxReceivedTaskBytes,
          budget,
        }),
      )
    : undefined;
  if (tasks) stops.push(tasks.start());
  const webhook = config.webhooks
    ? new WebhookDispatcher({
        home: host.home,
        log: host.log,
        self: () => host.self(),
        queueSize: config.webhookQueue,
        retries: config.webhookRetries,
        backoffMs: config.webhookBackoffMs,
        timeoutMs: config.webhookTimeoutMs,
      })
    : undefined;
  if (webhook) stops.push(() => webhook.stop());
  return {
    config,
    inbox,
    files,
    broker,
    tasks,
    webhook,
    stdio,
    budget,
    stop: () => {
      for (const s of stops.splice(0)) s();
    },
  };
}
