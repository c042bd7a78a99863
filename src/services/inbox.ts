// The message inbox: one JSON file per message under $PILOT_HOME/inbox,
// written atomically, so messages survive daemon restarts until cleared.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { PilotError } from '../util/errors.ts';
import { readJsonFile, removeStaleTemps, writeJsonAtomic } from './atomic-file.ts';

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

export class Inbox {
  readonly dir: string;
  private readonly max: number;
  private count: number;

  constructor(home: string, maxMessages: number) {
    this.dir = path.join(home, 'inbox');
    this.max = maxMessages;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    removeStaleTemps(this.dir);
    this.count = this.files().length;
  }

  private files(): string[] {
    return fs.readdirSync(this.dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  }

  /** Throws RATE_LIMITED when the inbox is full (checked before the body is accepted). */
  ensureRoom(): void {
    if (this.count >= this.max) throw new PilotError('RATE_LIMITED', `inbox full (${this.max} messages)`, 'the receiver must read and clear its inbox: pilotctl inbox --clear');
  }

  add(from: string, type: MessageType, body: Buffer, sha256: string): InboxMessage {
    this.ensureRoom();
    const receivedAt = Date.now();
    const id = crypto.randomUUID();
    const binary = type === 'binary';
    const msg: InboxMessage = { id, from, type, data: body.toString(binary ? 'base64' : 'utf8'), encoding: binary ? 'base64' : 'utf8', size: body.length, sha256, receivedAt };
    // time first in the name: a directory listing is the arrival order
    writeJsonAtomic(path.join(this.dir, `${String(receivedAt).padStart(15, '0')}-${id}.json`), msg);
    this.count++;
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
    return names.length;
  }
}
