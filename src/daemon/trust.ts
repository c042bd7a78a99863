// The daemon's view of trust. The registry is the authority (a trust pair
// needs both nodes' signatures there); this keeps a local copy, persisted in
// $PILOT_HOME/trust.json, so enforcement works at once after a restart and
// while the rendezvous is unreachable.
//
// The copy in memory is what is enforced, and it changes first: a revocation
// cuts the peer at once even when the disk is full. Writing the file can then
// fail (ENOSPC) without undoing anything: see persist().
import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { writeFileAtomic } from '../util/atomic-file.ts';

export interface TrustedPeer {
  peer: string; // address text
  hostname: string | null;
  since: number;
  mutual: boolean;
}

export interface PendingRequest {
  from: string;
  hostname: string | null;
  reason: string | null;
  created: number;
}

export interface OutgoingRequest {
  to: string;
  hostname: string | null;
  reason: string | null;
  created: number;
}

interface TrustFile {
  trusted: TrustedPeer[];
  incoming: PendingRequest[];
  outgoing: OutgoingRequest[];
  /** Revoked here, not yet confirmed by the registry (retried on every sync). */
  revoking?: string[];
}

/** The file keeps this much slack (trailing whitespace, valid JSON) so a slightly longer list still fits in place on a full disk. */
const SLACK = 4096;
const RETRY_MS = 5_000;

export interface TrustBookEvents {
  /** trust.json could not be written; trust is enforced from memory and the write retried. */
  'persist-error': [err: Error];
  /** A peer's trust ended (its sessions and streams must go at once). */
  revoked: [peer: string];
  trusted: [peer: string];
}

export class TrustBook extends EventEmitter<TrustBookEvents> {
  private readonly file: string;
  private trusted = new Map<string, TrustedPeer>();
  private incoming = new Map<string, PendingRequest>();
  private outgoing = new Map<string, OutgoingRequest>();
  /**
   * Peers the owner revoked while the registry could not be told. Enforcement does not
   * wait for the registry: these stay untrusted here, whatever a sync or push says,
   * until the registry confirms the revocation (or the owner trusts the peer again).
   */
  private revoking = new Set<string>();
  /** The file is behind memory (a write failed); retried on a timer and on the next change. */
  private dirty = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastError: Error | undefined;

  constructor(home: string) {
    super();
    this.file = path.join(home, 'trust.json');
    this.load();
  }

  private load(): void {
    if (!fs.existsSync(this.file)) return;
    try {
      const raw = JSON.parse(fs.readFileSync(this.file, 'utf8')) as Partial<TrustFile>;
      for (const t of raw.trusted ?? []) if (typeof t.peer === 'string') this.trusted.set(t.peer, t);
      for (const p of raw.incoming ?? []) if (typeof p.from === 'string') this.incoming.set(p.from, p);
      for (const o of raw.outgoing ?? []) if (typeof o.to === 'string') this.outgoing.set(o.to, o);
      for (const r of raw.revoking ?? []) if (typeof r === 'string') this.revoking.add(r);
      for (const r of this.revoking) this.trusted.delete(r);
    } catch {
      // A corrupt cache (also a torn in-place write) is rebuilt from the registry on the next sync; until then nobody is trusted.
    }
  }

  /** True when trust.json is behind what is enforced (the disk refused the last write). */
  get persistPending(): boolean {
    return this.dirty;
  }

  /**
   * Write the file; never throws (memory is already right and enforced).
   *  1. atomically (temp file + rename), padded with SLACK bytes;
   *  2. if the disk refuses new blocks (ENOSPC, EDQUOT): rewrite the existing
   *     file in place when the new text fits in its current size (a revocation
   *     only shrinks the list), which needs no new space; a crash in the middle
   *     leaves a torn file, which loads as "nobody trusted" (fail closed);
   *  3. otherwise: retried every RETRY_MS and on the next change.
   */
  private persist(): void {
    const body =
      JSON.stringify(
        {
          trusted: [...this.trusted.values()],
          incoming: [...this.incoming.values()],
          outgoing: [...this.outgoing.values()],
          revoking: [...this.revoking],
        } satisfies TrustFile,
        null,
        2,
      ) + '\n';
    const text = body + ' '.repeat(SLACK) + '\n';
    if (this.writeAtomic(text) || this.writeInPlace(body)) {
      this.dirty = false;
      if (this.retryTimer) clearInterval(this.retryTimer);
      this.retryTimer = undefined;
      return;
    }
    if (!this.dirty) this.emit('persist-error', this.lastError ?? new Error('trust.json not written'));
    this.dirty = true;
    if (!this.retryTimer) {
      this.retryTimer = setInterval(() => this.persist(), RETRY_MS);
      this.retryTimer.unref();
    }
  }

  private writeAtomic(text: string): boolean {
    try {
      writeFileAtomic(this.file, text);
      return true;
    } catch (err) {
      this.lastError = err as Error;
      return false;
    }
  }

  private writeInPlace(body: string): boolean {
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.file, 'r+');
      const size = fs.fstatSync(fd).size;
      const bytes = Buffer.byteLength(body);
      if (bytes > size) return false;
      // pad to the old size with whitespace: the same blocks, still valid JSON
      const buf = Buffer.alloc(size, 0x20);
      buf.write(body, 0, 'utf8');
      buf[size - 1] = 0x0a;
      fs.writeSync(fd, buf, 0, size, 0);
      fs.fsyncSync(fd);
      return true;
    } catch {
      return false;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  isTrusted(address: string): boolean {
    return this.trusted.has(address);
  }

  listTrusted(): TrustedPeer[] {
    return [...this.trusted.values()];
  }

  listIncoming(): PendingRequest[] {
    return [...this.incoming.values()];
  }

  listOutgoing(): OutgoingRequest[] {
    return [...this.outgoing.values()];
  }

  /** Replace everything with the registry's answer; emits 'revoked' for peers that disappeared. */
  replace(trusted: TrustedPeer[], incoming: PendingRequest[], outgoing: OutgoingRequest[]): void {
    trusted = trusted.filter((t) => !this.revoking.has(t.peer));
    const gone = [...this.trusted.keys()].filter((p) => !trusted.some((t) => t.peer === p));
    const added = trusted.filter((t) => !this.trusted.has(t.peer));
    this.trusted = new Map(trusted.map((t) => [t.peer, t]));
    this.incoming = new Map(incoming.map((p) => [p.from, p]));
    this.outgoing = new Map(outgoing.map((o) => [o.to, o]));
    // enforce first, then write down
    for (const p of gone) this.emit('revoked', p);
    for (const t of added) this.emit('trusted', t.peer);
    this.persist();
  }

  addTrusted(peer: string, hostname: string | null): void {
    if (this.revoking.has(peer)) return; // a push that crossed our revocation
    const had = this.trusted.has(peer);
    this.trusted.set(peer, { peer, hostname, since: this.trusted.get(peer)?.since ?? Date.now(), mutual: true });
    this.incoming.delete(peer);
    this.outgoing.delete(peer);
    this.persist();
    if (!had) this.emit('trusted', peer);
  }

  /** The owner revoked `peer`: cut at once, and remembered until the registry confirms it. */
  revoke(peer: string): void {
    this.revoking.add(peer);
    if (this.trusted.delete(peer)) this.emit('revoked', peer);
    this.persist();
  }

  /** The registry has the revocation (or the owner asks for trust again): sync and pushes rule again. */
  settleRevocation(peer: string): void {
    if (this.revoking.delete(peer)) this.persist();
  }

  /** Revocations the registry has not confirmed yet. */
  pendingRevocations(): string[] {
    return [...this.revoking];
  }

  removeTrusted(peer: string): void {
    if (!this.trusted.delete(peer)) {
      if (this.dirty) this.persist();
      return;
    }
    // the peer is cut before the disk is touched: a full disk cannot delay or undo a revocation
    this.emit('revoked', peer);
    this.persist();
  }

  addIncoming(p: PendingRequest): void {
    this.incoming.set(p.from, p);
    this.persist();
  }

  removeIncoming(from: string): void {
    if (this.incoming.delete(from)) this.persist();
  }

  addOutgoing(o: OutgoingRequest): void {
    this.outgoing.set(o.to, o);
    this.persist();
  }

  removeOutgoing(to: string): void {
    if (this.outgoing.delete(to)) this.persist();
  }
}
