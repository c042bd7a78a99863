// Shapes of the built-in services' answers: the IPC contract's types (the
// handlers in src/daemon/service-handlers.ts and stdio-handlers.ts must return
// them; src/ipc/api-types.ts), re-exported so the SDK's public types do not change.
export type {
  InboxMessage,
  InboxEntry,
  MessageType,
  ReceivedFile,
  ReceivedList,
  FileProgress,
  PubSubEvent,
  PubSubStatus,
  PublishResult,
  SendMessageResult,
  SendFileResult,
  StdioMessage,
  StdioStats,
  Task,
  TaskRole,
  TaskStatus,
  TaskChange,
  WebhookSet,
  WebhookStatus,
} from '../ipc/api-types.ts';

/** What `stdio.send()` reports: the peer queued `lines` lines (`truncated` of them cut at its line limit). */
export interface StdioSendResult {
  target: string;
  /** Bytes sent. */
  sent: number;
  lines: number;
  truncated: number;
}

/** How a subscription (pub/sub events, stdio lines) ended. */
export interface SubscriptionEnd {
  /** Items delivered to this subscriber. */
  received: number;
  /** true: ended by cancel() / break / the abort signal; false: by count, timeout or the source closing. */
  cancelled: boolean;
}
