// The message inbox: one JSON file per message under $PILOT_HOME/inbox,
// written atomically, so messages survive daemon restarts until cleared.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { PilotError } from '../util/errors.ts';
import { readJsonFile, removeStaleTemps, writeJsonAtomic } from '../util/atomic-file.ts';
import { peerTag, type DiskBudget } from './quota.ts';

/** <15-digit ms time>-<sender tag>-<uuid>.json: the arrival order and the sender, without opening the file. */
const NAME_RE = /^\d{15}-(.+)-[0-9a-f-]{36}\.json$/;

export type MessageType = 'text' | 'json' | 'binary';

export interface InboxMessage {
  id: string;
  from: string;
  type: MessageType;
  /** UTF-8 text (text, json) or base64 (binary). */
  data: string;
  encoding: 'utf8' | 'base64';
  size: number;
  sha256: string;
  receivedAt: number;
}

export interface InboxOptions {
  maxMessages: number;
  /** Messages from one peer (its share of maxMessages). */
  maxPerPeer: number;
  budget: DiskBudget;
}

export class Inbox {
  readonly dir: string;
  private readonly max: number;
  private readonly maxPerPeer: number;
  private readonly budget: DiskBudget;
  private count: number;
  /** Per sender tag: messages and bytes on disk. */
  private readonly perPeer = new Map<string, { count: number; bytes: number }>();

  constructor(home: string, opts: InboxOptions) {
    this.dir = path.join(home, 'inbox');
    this.max = opts.maxMessages;
    this.maxPerPeer = opts.maxPerPeer;
    this.budget = opts.budget;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    removeStaleTemps(this.dir);
    const names = this.files();
    this.count = names.length;
    for (const n of names) {
      const tag = NAME_RE.exec(n)?.[1];
      if (tag === undefined) continue; // older names carry no sender: they count in the total only
      try {
        this.note(tag, 1, fs.statSync(path.join(this.dir, n)).size);
      } catch {
        /* removed meanwhile */
      }
    }
    this.budget.addUsage((peer) => this.perPeer.get(peerTag(peer))?.bytes ?? 0);
  }

  private note(tag: string, count: number, bytes: number): void {
    const e = this.perPeer.get(tag) ?? { count: 0, bytes: 0 };
    e.count += count;
    e.bytes += bytes;
    this.perPeer.set(tag, e);
  }

  private files(): string[] {
    return fs
      .readdirSync(this.dir)
      .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
      .sort();
  }

  /**
   * Throws before the body is accepted: RATE_LIMITED when the inbox is full,
   * QUOTA_EXCEEDED when this sender has its share of it (or of the disk),
   * NO_SPACE when the message would take the disk below its floor.
   */
  ensureRoom(from: string, type: MessageType, size: number): void {
    if (this.count >= this.max)
      throw new PilotError('RATE_LIMITED', `inbox full (${this.max} messages)`, 'the receiver must read and clear its inbox: pilotctl inbox --clear');
    const mine = this.perPeer.get(peerTag(from))?.count ?? 0;
    if (mine >= this.maxPerPeer) {
      throw new PilotError(
        'QUOTA_EXCEEDED',
        `the receiver is out of space for you: ${mine} of your messages wait in its inbox (limit ${this.maxPerPeer} per peer)`,
        'the receiver must read and clear its inbox (pilotctl inbox --clear) or raise maxPeerInboxMessages in services.json',
      );
    }
    this.budget.check(from, storedSize(type, size), 'a message');
  }

  add(from: string, type: MessageType, body: Buffer, sha256: string): InboxMessage {
    this.ensureRoom(from, type, body.length);
    const receivedAt = Date.now();
    const id = crypto.randomUUID();
    const binary = type === 'binary';
    const msg: InboxMessage = {
      id,
      from,
      type,
      data: body.toString(binary ? 'base64' : 'utf8'),
      encoding: binary ? 'base64' : 'utf8',
      size: body.length,
      sha256,
      receivedAt,
    };
    // time first in the name: a directory listing is the arrival order
    const tag = peerTag(from);
    const file = path.join(this.dir, `${String(receivedAt).padStart(15, '0')}-${tag}-${id}.json`);
    writeJsonAtomic(file, msg);
    this.count++;
    let bytes = body.length;
    try {
      bytes = fs.statSync(file).size;
    } catch {
      /* cleared meanwhile */
    }
    this.note(tag, 1, bytes);
    return msg;
  }

  list(): InboxMessage[] {
    const out: InboxMessage[] = [];
    for (const n of this.files()) {
      const m = readJsonFile(path.join(this.dir, n)) as InboxMessage | undefined;
      if (m && typeof m.id === 'string') out.push(m);
    }
    return out;
  }

  clear(): number {
    const names = this.files();
    for (const n of names) fs.rmSync(path.join(this.dir, n), { force: true });
    this.count = 0;
    this.perPeer.clear();
    return names.length;
  }
}

/** What a message of `size` bytes can take on disk at most: base64 for binary, JSON escapes (\u0001: 6 bytes) for text. */
function storedSize(type: MessageType, size: number): number {
  return (type === 'binary' ? Math.ceil(size / 3) * 4 : size * 6) + 1024;
}
