// Cluster over PostgreSQL: the instances sharing a registry database also share
//   cluster_instances  id, advertised UDP host:port, last_seen (refreshed every 5 s)
//   cluster_presence   which instance each online node is at, its endpoints, last_seen
//   cluster_secret     one random key: tags relay packets between instances
//   cluster_server_key the server identity every instance answers with (sharedServerIdentity)
// Pushes and cache invalidations travel as NOTIFY (channel pilot_rdv for all,
// pilot_rdv_<id> for one instance); relay packets go straight from instance to
// instance over UDP (relay-forward.ts), never through the database.
import crypto from 'node:crypto';
import pg from 'pg';
import * as v from 'valibot';
import { addressKey, makeAddress, type Address } from '../wire/address.ts';
import { ONLINE_MS } from '../registry/protocol.ts';
import { migrate, type Migration } from './store/postgres-connect.ts';
import type { Logger } from '../util/logger.ts';
import { int, notArray } from '../util/schema.ts';
import type { Cluster, ClusterEvents, RelayTarget, RemotePresence } from './cluster.ts';
import { decodeRelayForward, encodeRelayForward } from './relay-forward.ts';
import { parseLanEndpoints } from './store/lan-column.ts';
import { identityFromSecretKey, type Identity } from '../registry/signing.ts';
import { PilotError } from '../util/errors.ts';
import { PresenceWriter } from './pg-presence.ts';

/**
 * The server key of a cluster: every instance sharing the database answers, signs pushes and
 * signs member tickets with ONE key, so a daemon that pinned it may talk to any instance (fail
 * over, DNS round robin) and a member's ticket from one instance verifies at a peer homed at
 * another (each instance used its own data dir's key: half of a two-instance fleet refused the
 * other half's tickets). The first instance to start offers its own key; every one uses the
 * key that won. Whoever can read the database could already rewrite the registry it holds.
 */
export async function sharedServerIdentity(pool: pg.Pool, local: Identity, log: Logger): Promise<Identity> {
  await pool.query('CREATE TABLE IF NOT EXISTS cluster_server_key (id INTEGER PRIMARY KEY CHECK (id = 1), secret BYTEA NOT NULL)');
  await pool.query('INSERT INTO cluster_server_key (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING', [Buffer.from(local.secretKey)]);
  const row = (await pool.query<{ secret: Buffer }>('SELECT secret FROM cluster_server_key WHERE id = 1')).rows[0];
  const id = row ? identityFromSecretKey(Buffer.from(row.secret)) : null;
  if (!id)
    throw new PilotError('INTERNAL', 'the cluster server key in the database is not an Ed25519 secret key', 'restore table cluster_server_key from a backup');
  if (!id.publicKey.equals(local.publicKey))
    log.warn(
      { cluster: id.publicKey.toString('base64') },
      "this instance answers with the cluster's server key (kept in the database); its own server.key is not used",
    );
  return id;
}

export const CLUSTER_MIGRATIONS: Migration[] = [
  {
    id: 'cluster-1',
    sql: `
CREATE TABLE IF NOT EXISTS cluster_instances (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  last_seen BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_presence (
  address BIGINT PRIMARY KEY,
  instance TEXT NOT NULL,
  observed TEXT,
  lan_endpoints TEXT NOT NULL DEFAULT '[]',
  last_seen BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_secret (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  secret BYTEA NOT NULL
);
`,
  },
];

const CHANNEL = 'pilot_rdv';
/** An instance not heard from for this long is down: its nodes are offline. */
const INSTANCE_ALIVE_MS = 20_000;
/** Presence is rewritten at least this often while the node heartbeats (well inside ONLINE_MS). */
const PRESENCE_REFRESH_MS = ONLINE_MS / 4;
/** Relay destination lookups are cached this long (found / not found). */
const TARGET_MS = 2_000;
const NO_TARGET_MS = 500;
const CLEANUP_EVERY_MS = 60_000;

/** Broadcasts per NOTIFY: ~60 bytes each, well inside PostgreSQL's 8,000-byte payload limit. */
const BATCH_MAX = 100;
const QUEUED_MAX = 10_000;

const fromKey = (k: number): Address => makeAddress(Math.floor(k / 0x100000000), k % 0x100000000);
const AddrKey = int(0, 2 ** 48 - 1);
const PairNote = v.object({ k: v.literal('pair'), from: v.string(), x: AddrKey, y: AddrKey });
const NodeNote = v.object({ k: v.literal('node'), from: v.string(), a: AddrKey });
type Broadcast = v.InferOutput<typeof PairNote> | v.InferOutput<typeof NodeNote>;
const Note = v.variant('k', [
  v.object({
    k: v.literal('push'),
    from: v.string(),
    to: AddrKey,
    event: v.pipe(v.string(), v.maxLength(64)),
    data: v.pipe(notArray(), v.record(v.string(), v.unknown())),
  }),
  PairNote,
  NodeNote,
  // Broadcasts that queued while the previous one was being sent, in one NOTIFY.
  v.object({ k: v.literal('batch'), from: v.string(), notes: v.pipe(v.array(v.variant('k', [PairNote, NodeNote])), v.maxLength(BATCH_MAX)) }),
]);

export interface PgClusterStart {
  /** Where the other instances send relay packets for nodes online here (our UDP port). */
  advertise: { host: string; port: number };
  /** Sends a datagram from the rendezvous's UDP socket. */
  sendUdp(pkt: Buffer, host: string, port: number): void;
  events: ClusterEvents;
}

export class PgCluster implements Cluster {
  readonly instanceId = crypto.randomBytes(8).toString('hex');
  private readonly pool: pg.Pool;
  private readonly url: string;
  private readonly log: Logger;
  private secret: crypto.KeyObject | undefined;
  private wiring: PgClusterStart | undefined;
  private listener: pg.Client | undefined;
  private closed = false;
  private lastCleanup = 0;
  /** address key -> what was last written and when (presence writes are throttled). */
  private readonly written = new Map<number, { sig: string; at: number }>();
  private readonly targets = new Map<number, { target: RelayTarget | undefined; expires: number }>();
  /** Broadcasts waiting for the one in flight (bounded: past QUEUED_MAX, the oldest are dropped; the others' caches expire anyway). */
  private readonly queued = new Map<string, Broadcast>();
  private sending = false;
  private readonly lookups = new Map<number, Promise<RelayTarget | undefined>>();
  /** Presence upserts and deletes, batched while one is on its way (pg-presence.ts). */
  private readonly presence: PresenceWriter;

  /** `pool` is shared with the PostgresStore; `url` opens the one LISTEN connection. */
  constructor(pool: pg.Pool, url: string, log: Logger) {
    this.pool = pool;
    this.url = url;
    this.log = log;
    this.presence = new PresenceWriter(pool, this.instanceId);
  }

  /** Schema, cluster secret, our instance row, then LISTEN. */
  async start(s: PgClusterStart): Promise<void> {
    this.wiring = s;
    await migrate(this.pool, CLUSTER_MIGRATIONS);
    // The first instance ever creates the secret; everyone reads the one that won.
    await this.pool.query('INSERT INTO cluster_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING', [crypto.randomBytes(32)]);
    this.secret = crypto.createSecretKey(
      Buffer.from((await this.pool.query<{ secret: Buffer }>('SELECT secret FROM cluster_secret WHERE id = 1')).rows[0]!.secret),
    );
    await this.beat(Date.now());
    await this.listen();
  }

  private async beat(now: number): Promise<void> {
    const a = this.wiring!.advertise;
    await this.pool.query(
      `INSERT INTO cluster_instances (id, host, port, last_seen) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET host = excluded.host, port = excluded.port, last_seen = excluded.last_seen`,
      [this.instanceId, a.host, a.port, now],
    );
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    // Runs once per client (error and end may both fire): drop it and start over.
    const lost = (why: string): boolean => {
      if (this.listener !== client) return false;
      this.listener = undefined;
      client.end().catch(() => {});
      this.relisten(why);
      return true;
    };
    client.on('error', (err) => lost(err.message));
    client.on('end', () => lost('connection ended'));
    client.on('notification', (n) => this.onNote(n.payload));
    this.listener = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      await client.query(`LISTEN ${CHANNEL}_${this.instanceId}`);
    } catch (err) {
      if (this.listener !== client) return; // 'error' came first and already scheduled the retry
      this.listener = undefined;
      client.end().catch(() => {});
      throw err;
    }
  }

  /** Notifications sent while we were away are lost; relay decisions then expire within their 10 s cache. */
  private relisten(why: string): void {
    if (this.closed) return;
    this.log.warn({ why }, 'cluster LISTEN connection lost; reconnecting in 1 s');
    setTimeout(() => void this.listen().catch((err: unknown) => this.relisten(`reconnect failed: ${(err as Error).message}`)), 1_000).unref();
  }

  private onNote(payload: string | undefined): void {
    let note: v.InferOutput<typeof Note>;
    try {
      const parsed = v.safeParse(Note, JSON.parse(payload ?? ''));
      if (!parsed.success) return;
      note = parsed.output;
    } catch {
      return;
    }
    if (note.from === this.instanceId) return;
    const ev = this.wiring!.events;
    if (note.k === 'push') ev.push(fromKey(note.to), note.event, note.data);
    else for (const b of note.k === 'batch' ? note.notes : [note]) this.onBroadcast(b);
  }

  private onBroadcast(note: Broadcast): void {
    const ev = this.wiring!.events;
    if (note.k === 'pair') ev.pairChanged(fromKey(note.x), fromKey(note.y));
    else {
      this.targets.delete(note.a);
      ev.nodeChanged(fromKey(note.a));
    }
  }

  /**
   * Node and pair changes are told to every instance one NOTIFY at a time; what changes while
   * one is on its way goes in the next, together (deduplicated). Idle, a change leaves at once;
   * under churn (100 joins and leaves a second) three NOTIFY statements per join-and-leave
   * became a fraction of one. The other instances act on them as before: they only invalidate.
   */
  private broadcast(note: Broadcast): void {
    this.queued.set(note.k === 'node' ? `n${note.a}` : `p${note.x},${note.y}`, note);
    if (this.queued.size > QUEUED_MAX) this.queued.delete(this.queued.keys().next().value!);
    if (!this.sending) this.sendQueued();
  }

  private sendQueued(): void {
    const notes = [...this.queued.values()].slice(0, BATCH_MAX);
    if (notes.length === 0) {
      this.sending = false;
      return;
    }
    for (const n of notes) this.queued.delete(n.k === 'node' ? `n${n.a}` : `p${n.x},${n.y}`);
    this.sending = true;
    void this.notify(CHANNEL, notes.length === 1 ? notes[0]! : { k: 'batch', from: this.instanceId, notes }).then(() => this.sendQueued());
  }

  private notify(channel: string, note: v.InferOutput<typeof Note>): Promise<void> {
    return this.pool.query('SELECT pg_notify($1, $2)', [channel, JSON.stringify(note)]).then(
      () => undefined,
      (err: unknown) => this.log.warn({ err: (err as Error).message, k: note.k }, 'cluster notify failed'),
    );
  }

  async present(p: { address: Address; observed: string | null; lanEndpoints: string[]; now: number }): Promise<void> {
    const k = addressKey(p.address);
    const sig = JSON.stringify([p.observed, p.lanEndpoints]);
    const w = this.written.get(k);
    if (w && w.sig === sig && p.now - w.at < PRESENCE_REFRESH_MS) return;
    await this.presence.put({ address: k, observed: p.observed, lanEndpoints: JSON.stringify(p.lanEndpoints), lastSeen: p.now });
    this.written.set(k, { sig, at: p.now });
  }

  async absent(address: Address): Promise<void> {
    const k = addressKey(address);
    this.written.delete(k);
    await this.presence.drop(k);
  }

  private async find(address: Address, now: number): Promise<(RemotePresence & { host: string; port: number }) | undefined> {
    const r = await this.pool.query<{ instance: string; observed: string | null; lan_endpoints: string; last_seen: string; host: string; port: number }>(
      `SELECT p.instance, p.observed, p.lan_endpoints, p.last_seen, i.host, i.port
       FROM cluster_presence p JOIN cluster_instances i ON i.id = p.instance
       WHERE p.address = $1 AND p.instance <> $2 AND p.last_seen > $3 AND i.last_seen > $4`,
      [addressKey(address), this.instanceId, now - ONLINE_MS, now - INSTANCE_ALIVE_MS],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      instance: row.instance,
      observed: row.observed,
      lanEndpoints: parseLanEndpoints(row.lan_endpoints).slice(0, 16),
      lastSeen: Number(row.last_seen),
      host: row.host,
      port: row.port,
    };
  }

  async locateMany(addresses: Address[], now = Date.now()): Promise<Map<number, RemotePresence>> {
    const out = new Map<number, RemotePresence>();
    if (addresses.length === 0) return out;
    // One round trip for a page: find with 8 workers had made 8 sequential lookups.
    const r = await this.pool.query<{ address: string; instance: string; observed: string | null; lan_endpoints: string; last_seen: string }>(
      `SELECT p.address, p.instance, p.observed, p.lan_endpoints, p.last_seen
       FROM cluster_presence p JOIN cluster_instances i ON i.id = p.instance
       WHERE p.address = ANY($1::BIGINT[]) AND p.instance <> $2 AND p.last_seen > $3 AND i.last_seen > $4`,
      [addresses.map(addressKey), this.instanceId, now - ONLINE_MS, now - INSTANCE_ALIVE_MS],
    );
    for (const row of r.rows)
      out.set(Number(row.address), {
        instance: row.instance,
        observed: row.observed,
        lanEndpoints: parseLanEndpoints(row.lan_endpoints).slice(0, 16),
        lastSeen: Number(row.last_seen),
      });
    return out;
  }

  async locate(address: Address, now = Date.now()): Promise<RemotePresence | undefined> {
    const f = await this.find(address, now);
    return f && { instance: f.instance, observed: f.observed, lanEndpoints: f.lanEndpoints, lastSeen: f.lastSeen };
  }

  relayTarget(address: Address, now = Date.now()): RelayTarget | undefined | Promise<RelayTarget | undefined> {
    const k = addressKey(address);
    const c = this.targets.get(k);
    if (c && c.expires > now) return c.target;
    let lookup = this.lookups.get(k);
    if (!lookup) {
      lookup = this.find(address, now)
        .then((f) => (f ? { instance: f.instance, host: f.host, port: f.port } : undefined))
        .catch(() => undefined)
        .then((target) => {
          this.lookups.delete(k);
          if (this.targets.size > 100_000) this.targets.clear();
          this.targets.set(k, { target, expires: Date.now() + (target ? TARGET_MS : NO_TARGET_MS) });
          return target;
        });
      this.lookups.set(k, lookup);
    }
    return lookup;
  }

  sendRelay(target: RelayTarget, src: Address, relaySend: Buffer): boolean {
    if (!this.secret) return false; // not started: no tag the other instance would believe
    this.wiring!.sendUdp(encodeRelayForward(this.secret, src, relaySend), target.host, target.port);
    return true;
  }

  receiveRelay(pkt: Buffer): { src: Address; relaySend: Buffer } | undefined {
    return this.secret ? decodeRelayForward(this.secret, pkt) : undefined;
  }

  async pushRemote(to: Address, event: string, data: Record<string, unknown>): Promise<boolean> {
    const at = await this.locate(to);
    if (!at) return false;
    await this.notify(`${CHANNEL}_${at.instance}`, { k: 'push', from: this.instanceId, to: addressKey(to), event, data });
    return true;
  }

  broadcastPairChanged(x: Address, y: Address): void {
    this.broadcast({ k: 'pair', from: this.instanceId, x: addressKey(x), y: addressKey(y) });
  }

  broadcastNodeChanged(a: Address): void {
    this.broadcast({ k: 'node', from: this.instanceId, a: addressKey(a) });
  }

  tick(now: number): void {
    this.beat(now).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'cluster heartbeat failed'));
    for (const [k, t] of this.targets) if (t.expires <= now) this.targets.delete(k);
    for (const [k, w] of this.written) if (now - w.at > ONLINE_MS) this.written.delete(k);
    if (now - this.lastCleanup >= CLEANUP_EVERY_MS) {
      this.lastCleanup = now;
      // Long gone: rows of nodes offline for 10 minutes and of instances that stopped.
      this.pool
        .query('DELETE FROM cluster_presence WHERE last_seen < $1', [now - 10 * ONLINE_MS])
        .then(() => this.pool.query('DELETE FROM cluster_instances WHERE last_seen < $1', [now - 10 * ONLINE_MS]))
        .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'cluster cleanup failed'));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => {});
    // Our nodes are offline now; peers stop routing to us at once rather than after expiry.
    await this.pool.query('DELETE FROM cluster_presence WHERE instance = $1', [this.instanceId]).catch(() => {});
    await this.pool.query('DELETE FROM cluster_instances WHERE id = $1', [this.instanceId]).catch(() => {});
  }
}
