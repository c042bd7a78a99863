// $PILOT_HOME/services.json: which built-in services run and their limits.
// A missing file means everything on with the defaults; a broken one stops
// the daemon from starting (a silently ignored "disabled" would be worse).
import fs from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { int, issuesText, notArray, withMessages } from '../util/schema.ts';
import { DEFAULT_STALL_TIMEOUT_MS } from './stall.ts';

const MiB = 1024 * 1024;

export const ServiceConfigSchema = withMessages(
  v.pipe(
    notArray(),
    v.strictObject({
      /** Port 1001, messages into the inbox. */
      messages: v.optional(v.boolean(), true),
      /** Port 1001, files into received/. */
      files: v.optional(v.boolean(), true),
      /** Port 1002. */
      pubsub: v.optional(v.boolean(), true),
      /** Port 1003. */
      tasks: v.optional(v.boolean(), true),
      webhooks: v.optional(v.boolean(), true),
      /** Port 1000, text lines into an in-memory queue. */
      stdio: v.optional(v.boolean(), true),
      stdioQueue: v.optional(int(1, 1_000_000), 1000),
      stdioMaxLineBytes: v.optional(int(16, 16 * MiB), 64 * 1024),
      maxMessageBytes: v.optional(int(1, 64 * MiB), 1 * MiB),
      maxInboxMessages: v.optional(int(1, 1_000_000), 10_000),
      maxFileBytes: v.optional(int(1, Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER),
      maxReceivedTasks: v.optional(int(1, 1_000_000), 10_000),
      // ---- what one trusted peer may take (src/services/quota.ts) ----
      /** Free bytes Pilot never writes the disk below. Default: 5% of the filesystem, at most 1 GiB. */
      diskFloorBytes: v.optional(int(0, Number.MAX_SAFE_INTEGER)),
      /** Bytes one peer may hold on our disk (files, partials, messages, tasks) plus reserve in flight. Default: half the filesystem. */
      peerDiskQuotaBytes: v.optional(int(0, Number.MAX_SAFE_INTEGER)),
      /** Partial (broken) file transfers are kept this long for a resume, then deleted. */
      partialMaxAgeSeconds: v.optional(int(1, 30 * 24 * 3600), 3600),
      /** Files one peer may send at the same time (of 8 in all). */
      maxPeerIncomingFiles: v.optional(int(1, 8), 2),
      /** Inbox messages from one peer (of maxInboxMessages in all). */
      maxPeerInboxMessages: v.optional(int(1, 1_000_000), 1000),
      /** Open (not declined or completed) received tasks from one peer. */
      maxPeerOpenTasks: v.optional(int(1, 1_000_000), 100),
      /** Bytes of received tasks held in memory and on disk, all peers together. */
      maxReceivedTaskBytes: v.optional(int(1024, Number.MAX_SAFE_INTEGER), 64 * MiB),
      /** Pub/sub subscriptions in all, and from one peer. */
      maxSubscribers: v.optional(int(1, 100_000), 256),
      maxPeerSubscriptions: v.optional(int(1, 100_000), 16),
      /** Bytes queued towards one slow subscriber before its events are dropped, and towards all of them together. */
      subscriberBacklogBytes: v.optional(int(64 * 1024, 256 * MiB), 1 * MiB),
      pubsubBacklogBytes: v.optional(int(64 * 1024, 4096 * MiB), 32 * MiB),
      webhookQueue: v.optional(int(1, 100_000), 1000),
      /** Attempts after the first one. */
      webhookRetries: v.optional(int(0, 20), 5),
      webhookBackoffMs: v.optional(int(10, 600_000), 500),
      webhookTimeoutMs: v.optional(int(100, 120_000), 5000),
      /** A message or file send fails when the receiver takes no byte for this long (it stopped reading). */
      stallTimeoutMs: v.optional(int(1000, 3_600_000), DEFAULT_STALL_TIMEOUT_MS),
    }),
  ),
);
export type ServiceConfig = v.InferOutput<typeof ServiceConfigSchema>;

export function serviceConfigPath(home: string): string {
  return path.join(home, 'services.json');
}

export function loadServiceConfig(home: string): ServiceConfig {
  const p = serviceConfigPath(home);
  let raw: unknown = {};
  if (fs.existsSync(p)) {
    try {
      raw = JSON.parse(fs.readFileSync(p, 'utf8'));
    } catch (err) {
      throw new PilotError('BAD_ARGUMENT', `cannot read ${p}: ${(err as Error).message}`, 'fix or delete services.json');
    }
  }
  const parsed = v.safeParse(ServiceConfigSchema, raw);
  if (!parsed.success) throw new PilotError('BAD_ARGUMENT', `invalid ${p}: ${issuesText(parsed.issues)}`, 'fix or delete services.json');
  return parsed.output;
}
