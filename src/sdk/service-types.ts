// Shapes of the built-in services' answers (the IPC handlers in
// src/daemon/service-handlers.ts and stdio-handlers.ts, as JSON). The records a
// service keeps are its own types, re-exported, so they cannot drift.
import type { InboxMessage, MessageType } from '../services/inbox.ts';
import type { ReceivedFile } from '../services/received-files.ts';
import type { FileProgress } from '../services/data-exchange.ts';
import type { PubSubEvent } from '../services/pubsub.ts';
import type { StdioMessage, StdioStats } from '../services/stdio.ts';
import type { Task, TaskRole, TaskStatus } from '../services/task-store.ts';
import type { TaskChange } from '../services/tasks.ts';
import type { WebhookStatus } from '../services/webhook.ts';

export type {
  InboxMessage,
  MessageType,
  ReceivedFile,
  FileProgress,
  PubSubEvent,
  StdioMessage,
  StdioStats,
  Task,
  TaskRole,
  TaskStatus,
  TaskChange,
  WebhookStatus,
};

/** A message the peer stored in its inbox (port 1001). */
export interface SendMessageResult {
  /** The target as given. */
  target: string;
  /** The peer's virtual address. */
  peer: string;
  /** The message's id in the peer's inbox. */
  id: string;
  type: MessageType;
  bytes: number;
  sha256: string;
}

/** An inbox message; messages of type json also carry the parsed value (null if it does not parse). */
export type InboxEntry = InboxMessage & { json?: unknown };

/** A file the peer verified (sha256) and stored in its received/ directory. */
export interface SendFileResult {
  target: string;
  /** The absolute path that was sent. */
  file: string;
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

export interface ReceivedList {
  /** The directory the files are in ($PILOT_HOME/received). */
  dir: string;
  count: number;
  files: ReceivedFile[];
}

export interface PublishResult {
  target: string;
  /** The broker's virtual address (this node's when publishing locally). */
  peer: string;
  topic: string;
  /** How many subscribers got the event. */
  delivered: number;
}

export interface PubSubStatus {
  subscribers: number;
  published: number;
}

/** What `stdio.send()` reports: the peer queued `lines` lines (`truncated` of them cut at its line limit). */
export interface StdioSendResult {
  target: string;
  /** Bytes sent. */
  sent: number;
  lines: number;
  truncated: number;
}

export interface WebhookSet {
  url: string;
  /** Signs every POST: X-Pilot-Signature = "sha256=" + hex HMAC-SHA256(secret, raw body). */
  secret: string;
}

/** How a subscription (pub/sub events, stdio lines) ended. */
export interface SubscriptionEnd {
  /** Items delivered to this subscriber. */
  received: number;
  /** true: ended by cancel() / break / the abort signal; false: by count, timeout or the source closing. */
  cancelled: boolean;
}
