// Files from peers: streamed into $PILOT_HOME/incoming/<key>.part (kept on a
// broken transfer so the sender can resume), verified by sha256, then linked
// into $PILOT_HOME/received/ under a sanitised name that never replaces an
// existing file (link() fails on an existing name; rename() would overwrite).
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { PilotError } from '../util/errors.ts';
import { numberedName, sanitizeFileName } from './safe-name.ts';
import { peerTag, type DiskBudget, type Reservation } from './quota.ts';

const MAX_CONCURRENT = 8;
const USAGE_TTL_MS = 10_000;

export interface ReceivedFile {
  name: string;
  path: string;
  size: number;
  from: string | null;
  sha256: string | null;
  receivedAt: number;
}

interface IndexEntry {
  name: string;
  from: string;
  size: number;
  sha256: string;
  receivedAt: number;
}

/** One transfer in progress: append to `part`, hash running over every byte of it. */
export interface Incoming {
  readonly key: string;
  readonly part: string;
  readonly offset: number;
  readonly hash: crypto.Hash;
  /** The announced size, held on the disk budget from begin() to end(). */
  readonly reservation: Reservation;
}

export interface ReceivedFilesOptions {
  budget: DiskBudget;
  /** Partial transfers not resumed within this time are deleted (they count against the sender's quota meanwhile). */
  partialMaxAgeMs: number;
  /** Transfers of one peer at the same time (of MAX_CONCURRENT in all). */
  maxPerPeer: number;
}

export class ReceivedFiles {
  readonly dir: string;
  readonly partDir: string;
  private readonly indexFile: string;
  private readonly active = new Set<string>();
  private readonly budget: DiskBudget;
  private readonly partialMaxAgeMs: number;
  private readonly maxPerPeer: number;
  private usage: { at: number; byPeer: Map<string, number> } | undefined;

  constructor(home: string, opts: ReceivedFilesOptions) {
    this.dir = path.join(home, 'received');
    this.partDir = path.join(home, 'incoming');
    this.indexFile = path.join(home, 'received.jsonl');
    this.budget = opts.budget;
    this.partialMaxAgeMs = opts.partialMaxAgeMs;
    this.maxPerPeer = opts.maxPerPeer;
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.partDir, { recursive: true, mode: 0o700 });
    this.prunePartials();
    this.budget.addUsage((peer) => this.usageOf(peer));
  }

  /** Same sender, same content, same size: the same partial file (what makes resuming possible). The sender's tag first: its partials count against its quota. */
  private keyOf(from: string, size: number, sha256: string): string {
    return `${peerTag(from)}-${crypto.createHash('sha256').update(`${from}\n${size}\n${sha256}`).digest('hex').slice(0, 40)}`;
  }

  private prunePartials(): void {
    const now = Date.now();
    for (const n of fs.readdirSync(this.partDir)) {
      const p = path.join(this.partDir, n);
      try {
        if (this.active.has(n.replace(/\.part$/, ''))) continue;
        if (now - fs.statSync(p).mtimeMs > this.partialMaxAgeMs) fs.rmSync(p, { force: true });
      } catch {
        /* raced with another cleanup */
      }
    }
  }

  /**
   * Bytes of `peer` on disk: its received files not yet cleared and its idle
   * partials (active ones are counted by their reservation). Scanning received/
   * costs a stat per file, so the per-peer sums are kept until something here
   * changes (begin, end, finish, clear) or USAGE_TTL_MS passed (files removed by hand).
   */
  private usageOf(peer: string): number {
    const now = Date.now();
    if (!this.usage || now - this.usage.at > USAGE_TTL_MS) this.usage = { at: now, byPeer: this.scanUsage() };
    return this.usage.byPeer.get(peerTag(peer)) ?? 0;
  }

  private scanUsage(): Map<string, number> {
    this.prunePartials(); // expired partials count for nobody
    const m = new Map<string, number>();
    const add = (tag: string, n: number): void => {
      m.set(tag, (m.get(tag) ?? 0) + n);
    };
    for (const f of this.list()) if (f.from !== null) add(peerTag(f.from), f.size);
    for (const name of fs.readdirSync(this.partDir)) {
      const key = name.replace(/\.part$/, '');
      const dash = key.lastIndexOf('-');
      if (dash <= 0 || this.active.has(key)) continue;
      try {
        add(key.slice(0, dash), fs.statSync(path.join(this.partDir, name)).size);
      } catch {
        /* pruned meanwhile */
      }
    }
    return m;
  }

  /** Start (or resume) a transfer; the hash already covers the bytes of a resumed partial. */
  async begin(from: string, size: number, sha256: string): Promise<Incoming> {
    if (this.active.size >= MAX_CONCURRENT) throw new PilotError('RATE_LIMITED', `${MAX_CONCURRENT} files are already arriving`, 'retry in a moment');
    const key = this.keyOf(from, size, sha256);
    if (this.active.has(key)) throw new PilotError('RATE_LIMITED', 'this file is already being received', 'wait for the other transfer to finish');
    // one peer must not hold every transfer slot
    const tag = `${peerTag(from)}-`;
    let mine = 0;
    for (const k of this.active) if (k.startsWith(tag)) mine++;
    if (mine >= this.maxPerPeer) {
      throw new PilotError(
        'QUOTA_EXCEEDED',
        `the receiver is out of room for you: ${mine} of your files are already arriving (limit ${this.maxPerPeer} per peer)`,
        'send one file after the other (or the receiver raises maxPeerIncomingFiles in services.json)',
      );
    }
    this.prunePartials();
    const part = path.join(this.partDir, `${key}.part`);
    let offset = 0;
    try {
      offset = fs.statSync(part).size;
    } catch {
      offset = 0;
    }
    if (offset > size) {
      fs.rmSync(part, { force: true });
      offset = 0;
    }
    // the whole announced size is held before the first byte is accepted (a resumed partial is already on the disk)
    const reservation = this.budget.reserve(from, size, 'a file', offset);
    this.active.add(key);
    this.usage = undefined;
    try {
      const hash = crypto.createHash('sha256');
      if (offset > 0) {
        for await (const chunk of fs.createReadStream(part, { end: offset - 1 })) hash.update(chunk as Buffer);
      } else {
        fs.writeFileSync(part, '', { mode: 0o600 });
      }
      return { key, part, offset, hash, reservation };
    } catch (err) {
      this.active.delete(key);
      reservation.release();
      throw err;
    }
  }

  /** The transfer stopped (error or done): the key and the reservation are free again. The partial stays unless `discard`. */
  end(inc: Incoming, discard: boolean): void {
    this.active.delete(inc.key);
    inc.reservation.release();
    this.usage = undefined;
    if (discard) fs.rmSync(inc.part, { force: true });
  }

  /** Move a verified partial into received/ under a fresh name; returns that name. */
  finish(inc: Incoming, rawName: unknown, from: string, size: number, sha256: string): string {
    const base = sanitizeFileName(rawName);
    for (let n = 0; n < 100_000; n++) {
      const name = numberedName(base, n);
      try {
        fs.linkSync(inc.part, path.join(this.dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      this.end(inc, true);
      const entry: IndexEntry = { name, from, size, sha256, receivedAt: Date.now() };
      fs.appendFileSync(this.indexFile, JSON.stringify(entry) + '\n', { mode: 0o600 });
      this.usage = undefined;
      return name;
    }
    throw new PilotError('RATE_LIMITED', `too many files named like ${base}`, 'clear received/: pilotctl received --clear');
  }

  private index(): Map<string, IndexEntry> {
    const m = new Map<string, IndexEntry>();
    let text = '';
    try {
      text = fs.readFileSync(this.indexFile, 'utf8');
    } catch {
      return m;
    }
    for (const l of text.split('\n')) {
      if (!l) continue;
      try {
        const e = JSON.parse(l) as IndexEntry;
        if (typeof e.name === 'string') m.set(e.name, e);
      } catch {
        /* a torn last line after a crash */
      }
    }
    return m;
  }

  list(): ReceivedFile[] {
    const idx = this.index();
    const out: ReceivedFile[] = [];
    for (const name of fs.readdirSync(this.dir).sort()) {
      const p = path.join(this.dir, name);
      let st: fs.Stats;
      try {
        st = fs.statSync(p);
      } catch {
        continue;
      }
      if (!st.isFile()) continue;
      const e = idx.get(name);
      // an index entry for an older file of the same name (deleted by hand, then reused) would lie
      const known = e !== undefined && e.size === st.size;
      out.push({
        name,
        path: p,
        size: st.size,
        from: known ? e.from : null,
        sha256: known ? e.sha256 : null,
        receivedAt: known ? e.receivedAt : Math.round(st.mtimeMs),
      });
    }
    return out.sort((a, b) => a.receivedAt - b.receivedAt || a.name.localeCompare(b.name));
  }

  clear(): number {
    let n = 0;
    for (const name of fs.readdirSync(this.dir)) {
      const p = path.join(this.dir, name);
      if (!fs.statSync(p).isFile()) continue;
      fs.rmSync(p, { force: true });
      n++;
    }
    fs.rmSync(this.indexFile, { force: true });
    this.usage = undefined;
    return n;
  }
}
