// SQLite RegistryStore (better-sqlite3). WAL + synchronous=FULL: a registration
// is on disk before the client hears about it, so it survives kill -9. The hot
// writes (register, heartbeat touch) share one commit per event-loop turn.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PilotError } from '../../util/errors.ts';
import { addressKey, makeAddress, type Address } from '../../wire/address.ts';
import type { KeyRotationRecord, NodeRecord, RegisterInput, RegistryStore, RemovedNode, TouchInput, TrustPair, TrustRequest } from './store.ts';
import { parseLanEndpoints } from './lan-column.ts';
import { GroupCommit } from './sqlite-group-commit.ts';
import { SqliteNetworks } from './sqlite-networks.ts';
import { listRotationsSync, retiredKeySync, ROTATION_SCHEMA, rotateSync } from './sqlite-rotation.ts';
import { rotationErrors } from './rotation-errors.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS counters (
  network INTEGER PRIMARY KEY,
  next_node INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
  network INTEGER NOT NULL,
  node INTEGER NOT NULL,
  public_key BLOB NOT NULL UNIQUE,
  email TEXT NOT NULL,
  hostname TEXT UNIQUE,
  public INTEGER NOT NULL DEFAULT 0,
  active INTEGER NOT NULL DEFAULT 1,
  created INTEGER NOT NULL,
  last_seen INTEGER NOT NULL DEFAULT 0,
  observed TEXT,
  lan_endpoints TEXT NOT NULL DEFAULT '[]',
  ephemeral INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (network, node)
);
CREATE TABLE IF NOT EXISTS trust_pairs (
  a INTEGER NOT NULL,
  b INTEGER NOT NULL,
  stmt_a TEXT NOT NULL DEFAULT '',
  sig_a BLOB NOT NULL,
  stmt_b TEXT NOT NULL DEFAULT '',
  sig_b BLOB NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY (a, b)
);
CREATE INDEX IF NOT EXISTS trust_pairs_b ON trust_pairs (b);
CREATE TABLE IF NOT EXISTS trust_requests (
  from_addr INTEGER NOT NULL,
  to_addr INTEGER NOT NULL,
  reason TEXT NOT NULL,
  statement TEXT NOT NULL,
  sig BLOB NOT NULL DEFAULT x'',
  created INTEGER NOT NULL,
  PRIMARY KEY (from_addr, to_addr)
);
CREATE INDEX IF NOT EXISTS trust_requests_to ON trust_requests (to_addr);
`;

interface NodeRow {
  network: number;
  node: number;
  public_key: Buffer;
  email: string;
  hostname: string | null;
  public: number;
  active: number;
  created: number;
  last_seen: number;
  observed: string | null;
  lan_endpoints: string;
  ephemeral: number;
}

interface PairRow {
  a: number;
  b: number;
  stmt_a: string;
  sig_a: Buffer;
  stmt_b: string;
  sig_b: Buffer;
  created: number;
}

interface RequestRow {
  from_addr: number;
  to_addr: number;
  reason: string;
  statement: string;
  sig: Buffer;
  created: number;
}

function toRecord(r: NodeRow): NodeRecord {
  const lan = parseLanEndpoints(r.lan_endpoints);
  return {
    address: makeAddress(r.network, r.node),
    publicKey: Buffer.from(r.public_key),
    email: r.email,
    hostname: r.hostname,
    public: r.public === 1,
    active: r.active === 1,
    created: r.created,
    lastSeen: r.last_seen,
    observed: r.observed,
    lanEndpoints: lan,
    ephemeral: r.ephemeral === 1,
  };
}

function fromKey(k: number): Address {
  return makeAddress(Math.floor(k / 0x100000000), k % 0x100000000);
}

function ordered(x: Address, y: Address): [number, number] {
  const a = addressKey(x);
  const b = addressKey(y);
  return a <= b ? [a, b] : [b, a];
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string })?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}

const taken = (h: string) => new PilotError('HOSTNAME_TAKEN', `hostname ${h} is taken`, 'pick another hostname');
const notRegistered = () => new PilotError('NOT_REGISTERED', 'this key is not registered', 'register first');

export interface SqliteStoreOptions {
  /** Network new nodes are allocated on (default 0). */
  network?: number;
}

export class SqliteStore implements RegistryStore {
  private readonly db: Database.Database;
  private readonly network: number;
  /** Prepared once, reused: preparing is most of the cost of a tiny query. */
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly registerTx: (input: RegisterInput) => NodeRecord;
  /** Batches register/touch into one fsync per event-loop turn. */
  readonly group: GroupCommit;
  readonly networks: SqliteNetworks;

  /** `file` is a path, or ':memory:' for tests. The directory is created 0700. */
  constructor(file: string, opts: SqliteStoreOptions = {}) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    // Emails and keys: readable by the server user only.
    if (file !== ':memory:') fs.chmodSync(file, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.migrate();
    this.db.exec(ROTATION_SCHEMA);
    this.network = opts.network ?? 0;
    this.registerTx = this.db.transaction((inp: RegisterInput) => this.registerSync(inp));
    this.group = new GroupCommit(this.db);
    this.networks = new SqliteNetworks(this.db, (sql) => this.q(sql), this.group);
  }

  /** Columns added after the first schema (databases created before them). */
  private migrate(): void {
    const has = (table: string, col: string) => (this.db.pragma(`table_info(${table})`) as { name: string }[]).some((c) => c.name === col);
    if (!has('trust_pairs', 'stmt_a')) this.db.exec(`ALTER TABLE trust_pairs ADD COLUMN stmt_a TEXT NOT NULL DEFAULT ''`);
    if (!has('trust_pairs', 'stmt_b')) this.db.exec(`ALTER TABLE trust_pairs ADD COLUMN stmt_b TEXT NOT NULL DEFAULT ''`);
    if (!has('trust_requests', 'sig')) this.db.exec(`ALTER TABLE trust_requests ADD COLUMN sig BLOB NOT NULL DEFAULT x''`);
    if (!has('nodes', 'ephemeral')) this.db.exec(`ALTER TABLE nodes ADD COLUMN ephemeral INTEGER NOT NULL DEFAULT 0`);
    this.db.exec('CREATE INDEX IF NOT EXISTS nodes_ephemeral ON nodes (last_seen) WHERE ephemeral = 1');
  }

  private q(sql: string): Database.Statement {
    let st = this.stmts.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.stmts.set(sql, st);
    }
    return st;
  }

  private row(sql: string, ...args: unknown[]): NodeRecord | undefined {
    const r = this.q(sql).get(...args) as NodeRow | undefined;
    return r ? toRecord(r) : undefined;
  }

  private byKeySync(publicKey: Buffer): NodeRecord | undefined {
    return this.row('SELECT * FROM nodes WHERE public_key = ?', publicKey);
  }

  private allocate(): number {
    const r = this.q('SELECT next_node FROM counters WHERE network = ?').get(this.network) as { next_node: number } | undefined;
    const id = r?.next_node ?? 1;
    if (id > 0xffffffff) throw new PilotError('INTERNAL', `network ${this.network} has no free node ids`);
    this.q('INSERT INTO counters (network, next_node) VALUES (?, ?) ON CONFLICT(network) DO UPDATE SET next_node = excluded.next_node').run(
      this.network,
      id + 1,
    );
    return id;
  }

  /** Runs inside registerTx: lookup, hostname check, allocation and write are one atomic step. */
  private registerSync(inp: RegisterInput): NodeRecord {
    const existing = this.byKeySync(inp.publicKey);
    if (inp.hostname !== undefined) {
      const owner = this.row('SELECT * FROM nodes WHERE hostname = ?', inp.hostname);
      if (owner && !owner.publicKey.equals(inp.publicKey)) throw taken(inp.hostname);
    }
    const lan = inp.lanEndpoints !== undefined ? JSON.stringify(inp.lanEndpoints) : null;
    if (existing) {
      // Omitted fields keep their value (COALESCE); the key proves it is the same node.
      this.q(
        `UPDATE nodes SET email = ?, hostname = COALESCE(?, hostname), public = COALESCE(?, public), active = 1,
           last_seen = ?, observed = COALESCE(?, observed), lan_endpoints = COALESCE(?, lan_endpoints), ephemeral = MAX(ephemeral, ?)
         WHERE public_key = ?`,
      ).run(
        inp.email,
        inp.hostname ?? null,
        inp.public === undefined ? null : inp.public ? 1 : 0,
        inp.now,
        inp.observed ?? null,
        lan,
        inp.ephemeral ? 1 : 0,
        inp.publicKey,
      );
    } else {
      // A key a rotation retired must not come back as a new node (or take its old address).
      const retired = retiredKeySync((sql) => this.q(sql), inp.publicKey);
      if (retired) throw rotationErrors.retired(retired);
      const node = this.allocate();
      this.q(
        `INSERT INTO nodes (network, node, public_key, email, hostname, public, active, created, last_seen, observed, lan_endpoints, ephemeral)
         VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)`,
      ).run(
        this.network,
        node,
        inp.publicKey,
        inp.email,
        inp.hostname ?? null,
        inp.public ? 1 : 0,
        inp.now,
        inp.now,
        inp.observed ?? null,
        lan ?? '[]',
        inp.ephemeral ? 1 : 0,
      );
    }
    return this.byKeySync(inp.publicKey)!;
  }

  async register(input: RegisterInput): Promise<NodeRecord> {
    try {
      return await this.group.run(() => this.registerTx(input));
    } catch (err) {
      if (isUniqueViolation(err)) throw taken(input.hostname ?? '');
      throw err;
    }
  }

  async getByKey(publicKey: Buffer): Promise<NodeRecord | undefined> {
    return this.byKeySync(publicKey);
  }

  async getByAddress(address: Address): Promise<NodeRecord | undefined> {
    return this.row('SELECT * FROM nodes WHERE network = ? AND node = ?', address.network, address.node);
  }

  async getByHostname(hostname: string): Promise<NodeRecord | undefined> {
    return this.row('SELECT * FROM nodes WHERE hostname = ? AND active = 1', hostname);
  }

  async setHostname(publicKey: Buffer, hostname: string | null): Promise<NodeRecord> {
    let changes: number;
    try {
      changes = this.q('UPDATE nodes SET hostname = ? WHERE public_key = ? AND active = 1').run(hostname, publicKey).changes;
    } catch (err) {
      if (isUniqueViolation(err)) throw taken(hostname ?? '');
      throw err;
    }
    if (changes === 0) throw notRegistered();
    return this.byKeySync(publicKey)!;
  }

  async setVisibility(publicKey: Buffer, pub: boolean): Promise<NodeRecord> {
    const { changes } = this.q('UPDATE nodes SET public = ? WHERE public_key = ? AND active = 1').run(pub ? 1 : 0, publicKey);
    if (changes === 0) throw notRegistered();
    return this.byKeySync(publicKey)!;
  }

  async touch(publicKey: Buffer, input: TouchInput): Promise<NodeRecord> {
    const lan = input.lanEndpoints !== undefined ? JSON.stringify(input.lanEndpoints) : null;
    return this.group.run(() => {
      const { changes } = this.q(
        'UPDATE nodes SET last_seen = ?, observed = ?, lan_endpoints = COALESCE(?, lan_endpoints) WHERE public_key = ? AND active = 1',
      ).run(input.now, input.observed, lan, publicKey);
      if (changes === 0) throw notRegistered();
      return this.byKeySync(publicKey)!;
    });
  }

  async deregister(publicKey: Buffer): Promise<void> {
    const { changes } = this.q("UPDATE nodes SET active = 0, hostname = NULL, observed = NULL, lan_endpoints = '[]' WHERE public_key = ? AND active = 1").run(
      publicKey,
    );
    if (changes === 0) throw notRegistered();
  }

  async releaseLapsedHostnames(seenBefore: number): Promise<number> {
    return this.q('UPDATE nodes SET hostname = NULL WHERE hostname IS NOT NULL AND last_seen < ?').run(seenBefore).changes;
  }

  // ---------------- ephemeral nodes ----------------

  async markEphemeral(publicKey: Buffer): Promise<void> {
    if (this.q('UPDATE nodes SET ephemeral = 1 WHERE public_key = ?').run(publicKey).changes === 0) throw notRegistered();
  }

  /** One job of the group commit: the three deletes are atomic (each job runs in a savepoint). */
  async remove(publicKey: Buffer, opts: { onlyEphemeral?: boolean } = {}): Promise<RemovedNode | undefined> {
    return this.group.run(() => {
      const node = this.byKeySync(publicKey);
      if (!node || (opts.onlyEphemeral === true && !node.ephemeral)) return undefined;
      const k = addressKey(node.address);
      const pairs = (this.q('DELETE FROM trust_pairs WHERE a = ? OR b = ? RETURNING a, b').all(k, k) as { a: number; b: number }[]).map((r) => ({
        a: fromKey(r.a),
        b: fromKey(r.b),
      }));
      this.q('DELETE FROM trust_requests WHERE from_addr = ? OR to_addr = ?').run(k, k);
      const memberships = (this.q('DELETE FROM net_members WHERE key = ? RETURNING address').all(publicKey) as { address: number }[]).map((r) =>
        fromKey(r.address),
      );
      this.q('DELETE FROM nodes WHERE public_key = ?').run(publicKey);
      return { node, pairs, memberships };
    });
  }

  async listEphemeralSeenBefore(seenBefore: number, limit: number): Promise<NodeRecord[]> {
    const rows = this.q('SELECT * FROM nodes WHERE ephemeral = 1 AND last_seen < ? ORDER BY last_seen LIMIT ?').all(seenBefore, limit) as NodeRow[];
    return rows.map(toRecord);
  }

  // ---------------- trust ----------------

  async putTrustPair(pair: TrustPair): Promise<void> {
    const [a, b] = ordered(pair.a, pair.b);
    const swapped = a !== addressKey(pair.a);
    const [stmtA, sigA, stmtB, sigB] = swapped ? [pair.stmtB, pair.sigB, pair.stmtA, pair.sigA] : [pair.stmtA, pair.sigA, pair.stmtB, pair.sigB];
    this.q(
      `INSERT INTO trust_pairs (a, b, stmt_a, sig_a, stmt_b, sig_b, created) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(a, b) DO UPDATE SET stmt_a = excluded.stmt_a, sig_a = excluded.sig_a, stmt_b = excluded.stmt_b, sig_b = excluded.sig_b, created = excluded.created`,
    ).run(a, b, stmtA, sigA, stmtB, sigB, pair.created);
  }

  private pairRow(r: PairRow): TrustPair {
    return { a: fromKey(r.a), b: fromKey(r.b), stmtA: r.stmt_a, sigA: Buffer.from(r.sig_a), stmtB: r.stmt_b, sigB: Buffer.from(r.sig_b), created: r.created };
  }

  async mayRelay(src: Address, dst: Address): Promise<boolean> {
    const d = await this.getByAddress(dst);
    if (!d?.active) return false;
    return d.public || (await this.getTrustPair(src, dst)) !== undefined || this.networks.sharesNetwork(src, dst);
  }

  async getTrustPair(x: Address, y: Address): Promise<TrustPair | undefined> {
    const [a, b] = ordered(x, y);
    const r = this.q('SELECT * FROM trust_pairs WHERE a = ? AND b = ?').get(a, b) as PairRow | undefined;
    return r ? this.pairRow(r) : undefined;
  }

  async deleteTrustPair(x: Address, y: Address): Promise<boolean> {
    const [a, b] = ordered(x, y);
    return this.q('DELETE FROM trust_pairs WHERE a = ? AND b = ?').run(a, b).changes > 0;
  }

  async listTrustPairs(node: Address): Promise<TrustPair[]> {
    const k = addressKey(node);
    const rows = this.q('SELECT * FROM trust_pairs WHERE a = ? OR b = ? ORDER BY created, a, b').all(k, k) as PairRow[];
    return rows.map((r) => this.pairRow(r));
  }

  async putTrustRequest(req: TrustRequest): Promise<void> {
    this.q(
      `INSERT INTO trust_requests (from_addr, to_addr, reason, statement, sig, created) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(from_addr, to_addr) DO UPDATE SET reason = excluded.reason, statement = excluded.statement, sig = excluded.sig, created = excluded.created`,
    ).run(addressKey(req.from), addressKey(req.to), req.reason, req.statement, req.sig, req.created);
  }

  private requestRow(r: RequestRow): TrustRequest {
    return { from: fromKey(r.from_addr), to: fromKey(r.to_addr), reason: r.reason, statement: r.statement, sig: Buffer.from(r.sig), created: r.created };
  }

  async getTrustRequest(from: Address, to: Address): Promise<TrustRequest | undefined> {
    const r = this.q('SELECT * FROM trust_requests WHERE from_addr = ? AND to_addr = ?').get(addressKey(from), addressKey(to)) as RequestRow | undefined;
    return r ? this.requestRow(r) : undefined;
  }

  async listTrustRequestsTo(to: Address): Promise<TrustRequest[]> {
    const rows = this.q('SELECT * FROM trust_requests WHERE to_addr = ? ORDER BY created, from_addr').all(addressKey(to)) as RequestRow[];
    return rows.map((r) => this.requestRow(r));
  }

  async listTrustRequestsFrom(from: Address): Promise<TrustRequest[]> {
    const rows = this.q('SELECT * FROM trust_requests WHERE from_addr = ? ORDER BY created, to_addr').all(addressKey(from)) as RequestRow[];
    return rows.map((r) => this.requestRow(r));
  }

  async deleteTrustRequest(from: Address, to: Address): Promise<boolean> {
    return this.q('DELETE FROM trust_requests WHERE from_addr = ? AND to_addr = ?').run(addressKey(from), addressKey(to)).changes > 0;
  }

  // ---------------- key rotation (sqlite-rotation.ts) ----------------

  async rotateKey(r: KeyRotationRecord, opts: { keep: number; minIntervalMs: number }): Promise<{ status: 'rotated' | 'already'; node: NodeRecord }> {
    // One savepoint in the group commit: all of it or nothing, on disk before the answer.
    const status = await this.group.run(() => rotateSync((sql) => this.q(sql), r, opts));
    return { status, node: this.byKeySync(r.newKey)! };
  }

  async listRotations(address: Address): Promise<KeyRotationRecord[]> {
    return listRotationsSync((sql) => this.q(sql), address);
  }

  async retiredKey(publicKey: Buffer): Promise<Address | undefined> {
    return retiredKeySync((sql) => this.q(sql), publicKey);
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    this.group.flush();
    this.db.close();
  }
}
