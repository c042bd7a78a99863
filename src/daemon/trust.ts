// The daemon's view of trust. The registry is the authority (a trust pair
// needs both nodes' signatures there); this keeps a local copy, persisted in
// $PILOT_HOME/trust.json, so enforcement works at once after a restart and
// while the rendezvous is unreachable.
import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';

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
}

export class TrustBook extends EventEmitter {
  private readonly file: string;
  private trusted = new Map<string, TrustedPeer>();
  private incoming = new Map<string, PendingRequest>();
  private outgoing = new Map<string, OutgoingRequest>();

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
    } catch {
      // A corrupt cache is rebuilt from the registry on the next sync.
    }
  }

  private save(): void {
    const body: TrustFile = { trusted: [...this.trusted.values()], incoming: [...this.incoming.values()], outgoing: [...this.outgoing.values()] };
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, this.file);
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
    const gone = [...this.trusted.keys()].filter((p) => !trusted.some((t) => t.peer === p));
    const added = trusted.filter((t) => !this.trusted.has(t.peer));
    this.trusted = new Map(trusted.map((t) => [t.peer, t]));
    this.incoming = new Map(incoming.map((p) => [p.from, p]));
    this.outgoing = new Map(outgoing.map((o) => [o.to, o]));
    this.save();
    for (const p of gone) this.emit('revoked', p);
    for (const t of added) this.emit('trusted', t.peer);
  }

  addTrusted(peer: string, hostname: string | null): void {
    const had = this.trusted.has(peer);
    this.trusted.set(peer, { peer, hostname, since: this.trusted.get(peer)?.since ?? Date.now(), mutual: true });
    this.incoming.delete(peer);
    this.outgoing.delete(peer);
    this.save();
    if (!had) this.emit('trusted', peer);
  }

  removeTrusted(peer: string): void {
    if (!this.trusted.delete(peer)) return;
    this.save();
    this.emit('revoked', peer);
  }

  addIncoming(p: PendingRequest): void {
    this.incoming.set(p.from, p);
    this.save();
  }

  removeIncoming(from: string): void {
    if (this.incoming.delete(from)) this.save();
  }

  addOutgoing(o: OutgoingRequest): void {
    this.outgoing.set(o.to, o);
    this.save();
  }

  removeOutgoing(to: string): void {
    if (this.outgoing.delete(to)) this.save();
  }
}
