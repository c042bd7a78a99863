// $PILOT_HOME/services.json: which built-in services run and their limits.
// A missing file means everything on with the defaults; a broken one stops
// the daemon from starting (a silently ignored "disabled" would be worse).
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { PilotError } from '../util/errors.ts';
import { DEFAULT_STALL_TIMEOUT_MS } from './stall.ts';

const MiB = 1024 * 1024;

export const ServiceConfigSchema = z
  .object({
    /** Port 1001, messages into the inbox. */
    messages: z.boolean().default(true),
    /** Port 1001, files into received/. */
    files: z.boolean().default(true),
    /** Port 1002. */
    pubsub: z.boolean().default(true),
    /** Port 1003. */
    tasks: z.boolean().default(true),
    webhooks: z.boolean().default(true),
    /** Port 1000, text lines into an in-memory queue. */
    stdio: z.boolean().default(true),
    stdioQueue: z.number().int().min(1).max(1_000_000).default(1000),
    stdioMaxLineBytes: z
      .number()
      .int()
      .min(16)
      .max(16 * MiB)
      .default(64 * 1024),
    maxMessageBytes: z
      .number()
      .int()
      .min(1)
      .max(64 * MiB)
      .default(1 * MiB),
    maxInboxMessages: z.number().int().min(1).max(1_000_000).default(10_000),
    maxFileBytes: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(Number.MAX_SAFE_INTEGER),
    maxReceivedTasks: z.number().int().min(1).max(1_000_000).default(10_000),
    // ---- what one trusted peer may take (src/services/quota.ts) ----
    /** Free bytes Pilot never writes the disk below. Default: 5% of the filesystem, at most 1 GiB. */
    diskFloorBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Bytes one peer may hold on our disk (files, partials, messages, tasks) plus reserve in flight. Default: half the filesystem. */
    peerDiskQuotaBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Partial (broken) file transfers are kept this long for a resume, then deleted. */
    partialMaxAgeSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 24 * 3600)
      .default(3600),
    /** Files one peer may send at the same time (of 8 in all). */
    maxPeerIncomingFiles: z.number().int().min(1).max(8).default(2),
    /** Inbox messages from one peer (of maxInboxMessages in all). */
    maxPeerInboxMessages: z.number().int().min(1).max(1_000_000).default(1000),
    /** Open (not declined or completed) received tasks from one peer. */
    maxPeerOpenTasks: z.number().int().min(1).max(1_000_000).default(100),
    /** Bytes of received tasks held in memory and on disk, all peers together. */
    maxReceivedTaskBytes: z
      .number()
      .int()
      .min(1024)
      .max(Number.MAX_SAFE_INTEGER)
      .default(64 * MiB),
    /** Pub/sub subscriptions in all, and from one peer. */
    maxSubscribers: z.number().int().min(1).max(100_000).default(256),
    maxPeerSubscriptions: z.number().int().min(1).max(100_000).default(16),
    /** Bytes queued towards one slow subscriber before its events are dropped, and towards all of them together. */
    subscriberBacklogBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(256 * MiB)
      .default(1 * MiB),
    pubsubBacklogBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(4096 * MiB)
      .default(32 * MiB),
    webhookQueue: z.number().int().min(1).max(100_000).default(1000),
    /** Attempts after the first one. */
    webhookRetries: z.number().int().min(0).max(20).default(5),
    webhookBackoffMs: z.number().int().min(10).max(600_000).default(500),
    webhookTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    /** A message or file send fails when the receiver takes no byte for this long (it stopped reading). */
    stallTimeoutMs: z.number().int().min(1000).max(3_600_000).default(DEFAULT_STALL_TIMEOUT_MS),
  })
  .strict();
export type ServiceConfig = z.infer<typeof ServiceConfigSchema>;

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
  const parsed = ServiceConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `invalid ${p}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
      'fix or delete services.json',
    );
  }
  return parsed.data;
}
