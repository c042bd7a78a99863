// PostgreSQL RegistryStore (node-postgres Pool), so several rendezvous
// processes can share one registry. Same data and semantics as the SQLite
// store; what changes is concurrency: other processes write at the same time,
// so every read-modify-write is one transaction that cannot race (node ids come
// from an UPDATE … RETURNING on a counter row, uniqueness from constraints).
import type pg from 'pg';
import { PilotError } from '../../util/errors.ts';
import { addressKey, makeAddress, type Address } from '../../wire/address.ts';
import type { DbStats, KeyRotationRecord, NodeRecord, RegisterInput, RegistryStore, RemovedNode, TouchInput, TrustPair, TrustRequest } from './store.ts';
import { parseLanEndpoints } from './lan-column.ts';
import { rotationErrors } from './rotation-errors.ts';
import { connectPg, inTransaction, migrate, pgUnavailable, poolStats, type Migration } from './postgres-connect.ts';
import { NETWORK_MIGRATIONS, PgNetworks } from './postgres-networks.ts';
import { listRotations, retiredKey, ROTATION_MIGRATIONS, rotateTx } from './postgres-rotation.ts';

/** Append-only: a deployed migration is never edited, a change is a new entry. */
const MIGRATIONS: Migration[] = [
  {
    id: 'registry-1',
    sql: `
CREATE TABLE IF NOT EXISTS registry_counters (
  network INTEGER PRIMARY KEY,
  next_node BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_nodes (
  network INTEGER NOT NULL,
  node BIGINT NOT NULL,
  public_key BYTEA NOT NULL CONSTRAINT registry_nodes_key_unique UNIQUE,
  email TEXT NOT NULL,
  hostname TEXT CONSTRAINT registry_nodes_hostname_unique UNIQUE,
  public BOOLEAN NOT NULL DEFAULT false,
  active BOOLEAN NOT NULL DEFAULT true,
  created BIGINT NOT NULL,
  last_seen BIGINT NOT NULL DEFAULT 0,
  observed TEXT,
  lan_endpoints TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (network, node)
);
CREATE TABLE IF NOT EXISTS registry_trust_pairs (
  a BIGINT NOT NULL,
  b BIGINT NOT NULL,
  stmt_a TEXT NOT NULL,
  sig_a BYTEA NOT NULL,
  stmt_b TEXT NOT NULL,
  sig_b BYTEA NOT NULL,
  created BIGINT NOT NULL,
  PRIMARY KEY (a, b)
);
CREATE INDEX IF NOT EXISTS registry_trust_pairs_b ON registry_trust_pairs (b);
CREATE TABLE IF NOT EXISTS registry_trust_requests (
  from_addr BIGINT NOT NULL,
  to_addr BIGINT NOT NULL,
  reason TEXT NOT NULL,
  statement TEXT NOT NULL,
  sig BYTEA NOT NULL,
  created BIGINT NOT NULL,
  PRIMARY KEY (from_addr, to_addr)
);
CREATE INDEX IF NOT EXISTS registry_trust_requests_to ON registry_trust_requests (to_addr);
`,
  },
  {
    // Ephemeral nodes (issue 18): removed on deregister or after a silence.
    id: 'registry-ephemeral-1',
    sql: `
ALTER TABLE registry_nodes ADD COLUMN IF NOT EXISTS ephemeral BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS registry_nodes_ephemeral ON registry_nodes (last_seen) WHERE ephemeral;
`,
  },
];

interface NodeRow {
  network: number;
  node: string;
  public_key: Buffer;
  email: string;
  hostname: string | null;
  public: boolean;
  active: boolean;
  created: string;
  last_seen: string;
  observed: string | null;
  lan_endpoints: string;
  ephemeral: boolean;
  /** Only in NODE_WITH_ROTATION lookups (null: no rotation). */
  bound_new_key?: Buffer | null;
  bound_statement?: string | null;
  bound_sig?: Buffer | null;
}

interface PairRow {
  a: string;
  b: string;
  stmt_a: string;
  sig_a: Buffer;
  stmt_b: string;
  sig_b: Buffer;
  created: string;
}

interface RequestRow {
  from_addr: string;
  to_addr: string;
  reason: string;
  statement: string;
  sig: Buffer;
  created: string;
}

/** BIGINT arrives as a string (node-postgres does not guess at precision); ours fit 2^53. */
const num = (v: string | number): number => Number(v);

function toRecord(r: NodeRow): NodeRecord {
  const lan = parseLanEndpoints(r.lan_endpoints);
  return {
    address: makeAddress(r.network, num(r.node)),
    publicKey: Buffer.from(r.public_key),
    email: r.email,
    hostname: r.hostname,
    public: r.public,
    active: r.active,
    created: num(r.created),
    lastSeen: num(r.last_seen),
    observed: r.observed,
    lanEndpoints: lan,
    ephemeral: r.ephemeral === true,
    ...(r.bound_new_key === undefined
      ? {}
      : {
          boundBy:
            r.bound_new_key !== null && Buffer.from(r.bound_new_key).equals(r.public_key)
              ? { statement: r.bound_statement!, sig: Buffer.from(r.bound_sig!) }
              : null,
        }),
  };
}

/**
 * A node lookup with its newest rotation (boundBy): a resolve answer carries the statement that
 * bound a rotated node's key, and reading it apart was one more round trip per resolve.
 */
const NODE_WITH_ROTATION = `SELECT n.*, r.new_key AS bound_new_key, r.statement AS bound_statement, r.sig AS bound_sig
  FROM registry_nodes n LEFT JOIN LATERAL (
    SELECT k.new_key, k.statement, k.sig FROM registry_key_rotations k
    WHERE k.address = n.network::BIGINT * 4294967296 + n.node ORDER BY k.seq DESC LIMIT 1
  ) r ON true`;

function fromKey(k: string | number): Address {
  const n = num(k);
  return makeAddress(Math.floor(n / 0x100000000), n % 0x100000000);
}

function ordered(x: Address, y: Address): [number, number] {
  const a = addressKey(x);
  const b = addressKey(y);
  return a <= b ? [a, b] : [b, a];
}

/** Which unique constraint a 23505 error broke, if any. */
function uniqueViolation(err: unknown): string | undefined {
  const e = err as { code?: string; constraint?: string };
  return e?.code === '23505' ? (e.constraint ?? '') : undefined;
}

const taken = (h: string) => new PilotError('HOSTNAME_TAKEN', `hostname ${h} is taken`, 'pick another hostname');
const notRegistered = () => new PilotError('NOT_REGISTERED', 'this key is not registered', 'register first');

export interface PostgresStoreOptions {
  /** Network new nodes are allocated on (default 0). */
  network?: number;
  /** Pool size (default 10). */
  max?: number;
}

export class PostgresStore implements RegistryStore {
  readonly pool: pg.Pool;
  readonly networks: PgNetworks;
  private readonly network: number;
  private closed = false;

  private constructor(pool: pg.Pool, network: number) {
    this.pool = pool;
    this.network = network;
    this.networks = new PgNetworks(pool);
  }

  /**
   * Connects and brings the schema up to date. Throws PilotError BAD_ARGUMENT
   * (bad URL), UNREACHABLE (server down) or PERMISSION_DENIED (auth), each with a hint.
   */
  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const pool = await connectPg(url, { max: opts.max ?? 10 });
    try {
      await migrate(pool, [...MIGRATIONS, ...NETWORK_MIGRATIONS, ...ROTATION_MIGRATIONS]);
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
    return new PostgresStore(pool, opts.network ?? 0);
  }

  explainError(err: unknown): PilotError | undefined {
    return pgUnavailable(err);
  }

  private async one(sql: string, args: unknown[]): Promise<NodeRecord | undefined> {
    const r = await this.pool.query<NodeRow>(sql, args);
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  }

  async register(inp: RegisterInput): Promise<NodeRecord> {
    // No explicit transaction: each path is one statement, so the counter row (a lock every new
    // registration of the cluster queues on) is held for one statement's execution inside the
    // server, not across client round trips (at 100 registrations/s over two instances, BEGIN …
    // COMMIT around it made registrations queue behind each other's network latency). Races are
    // settled by the constraints: of two first registrations of one key, one INSERT fails on the key
    // and its retry takes the update path; an UPDATE that finds the row gone retries as an INSERT.
    for (let attempt = 0; ; attempt++) {
      try {
        const existing =
          attempt === 0 && inp.known !== undefined
            ? inp.known
            : (await this.one('SELECT * FROM registry_nodes WHERE public_key = $1', [inp.publicKey])) !== undefined;
        const rec = existing ? await this.updateRegistration(inp) : await this.insertRegistration(inp);
        if (rec) return rec;
        if (attempt >= 3) throw new PilotError('INTERNAL', 'the registration kept changing under a concurrent one', 'retry the registration');
      } catch (err) {
        const broke = uniqueViolation(err);
        if (broke === 'registry_nodes_hostname_unique') throw taken(inp.hostname ?? '');
        if (broke === 'registry_nodes_key_unique' && attempt < 3) continue;
        throw err;
      }
    }
  }

  /** Omitted fields keep their value (COALESCE); the key proves it is the same node. Undefined: the row is gone. */
  private updateRegistration(inp: RegisterInput): Promise<NodeRecord | undefined> {
    const lan = inp.lanEndpoints !== undefined ? JSON.stringify(inp.lanEndpoints) : null;
    return this.one(
      `UPDATE registry_nodes SET email = $1, hostname = COALESCE($2, hostname), public = COALESCE($3, public), active = true,
         last_seen = $4, observed = COALESCE($5, observed), lan_endpoints = COALESCE($6, lan_endpoints), ephemeral = ephemeral OR $8
       WHERE public_key = $7 RETURNING *`,
      [inp.email, inp.hostname ?? null, inp.public ?? null, inp.now, inp.observed ?? null, lan, inp.publicKey, inp.ephemeral === true],
    );
  }

  /**
   * The next id and the row in one statement: concurrent registrations (any instance) get
   * consecutive ids, and one that fails (a taken hostname, a racing first register of the same key)
   * rolls the counter back with it, leaving no gap. A key a rotation retired is refused here
   * (KEY_ROTATED), so it cannot come back as a new node.
   */
  private async insertRegistration(inp: RegisterInput): Promise<NodeRecord> {
    const rec = await this.one(
      `WITH c AS (
         INSERT INTO registry_counters (network, next_node) SELECT $1, 2 WHERE NOT EXISTS (SELECT 1 FROM registry_retired_keys r WHERE r.key = $2)
         ON CONFLICT (network) DO UPDATE SET next_node = registry_counters.next_node + 1
         RETURNING next_node - 1 AS id)
       INSERT INTO registry_nodes (network, node, public_key, email, hostname, public, active, created, last_seen, observed, lan_endpoints, ephemeral)
       SELECT $1, c.id, $2, $3, $4, $5, true, $6, $6, $7, $8, $9 FROM c WHERE c.id <= 4294967295 RETURNING *`,
      [
        this.network,
        inp.publicKey,
        inp.email,
        inp.hostname ?? null,
        inp.public ?? false,
        inp.now,
        inp.observed ?? null,
        inp.lanEndpoints !== undefined ? JSON.stringify(inp.lanEndpoints) : '[]',
        inp.ephemeral === true,
      ],
    );
    if (!rec) {
      // A key retired by a rotation takes no id (checked in the statement: no round trip of its own).
      const retired = await this.retiredKey(inp.publicKey);
      if (retired) throw rotationErrors.retired(retired);
      throw new PilotError('INTERNAL', `network ${this.network} has no free node ids`);
    }
    return rec;
  }

  private tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  getByKey(publicKey: Buffer): Promise<NodeRecord | undefined> {
    return this.one(`${NODE_WITH_ROTATION} WHERE n.public_key = $1`, [publicKey]);
  }

  getByAddress(address: Address): Promise<NodeRecord | undefined> {
    return this.one(`${NODE_WITH_ROTATION} WHERE n.network = $1 AND n.node = $2`, [address.network, address.node]);
  }

  getByHostname(hostname: string): Promise<NodeRecord | undefined> {
    return this.one(`${NODE_WITH_ROTATION} WHERE n.hostname = $1 AND n.active`, [hostname]);
  }

  async setHostname(publicKey: Buffer, hostname: string | null): Promise<NodeRecord> {
    let rec: NodeRecord | undefined;
    try {
      rec = await this.one('UPDATE registry_nodes SET hostname = $1 WHERE public_key = $2 AND active RETURNING *', [hostname, publicKey]);
    } catch (err) {
      if (uniqueViolation(err) === 'registry_nodes_hostname_unique') throw taken(hostname ?? '');
      throw err;
    }
    if (!rec) throw notRegistered();
    return rec;
  }

  async setVisibility(publicKey: Buffer, pub: boolean): Promise<NodeRecord> {
    const rec = await this.one('UPDATE registry_nodes SET public = $1 WHERE public_key = $2 AND active RETURNING *', [pub, publicKey]);
    if (!rec) throw notRegistered();
    return rec;
  }

  async touch(publicKey: Buffer, input: TouchInput): Promise<NodeRecord> {
    const lan = input.lanEndpoints !== undefined ? JSON.stringify(input.lanEndpoints) : null;
    const rec = await this.one(
      'UPDATE registry_nodes SET last_seen = $1, observed = $2, lan_endpoints = COALESCE($3, lan_endpoints) WHERE public_key = $4 AND active RETURNING *',
      [input.now, input.observed, lan, publicKey],
    );
    if (!rec) throw notRegistered();
    return rec;
  }

  async releaseLapsedHostnames(seenBefore: number): Promise<number> {
    const r = await this.pool.query('UPDATE registry_nodes SET hostname = NULL WHERE hostname IS NOT NULL AND last_seen < $1', [seenBefore]);
    return r.rowCount ?? 0;
  }

  async deregister(publicKey: Buffer): Promise<void> {
    const r = await this.pool.query(
      "UPDATE registry_nodes SET active = false, hostname = NULL, observed = NULL, lan_endpoints = '[]' WHERE public_key = $1 AND active",
      [publicKey],
    );
    if (r.rowCount === 0) throw notRegistered();
  }

  // ---------------- ephemeral nodes ----------------

  async markEphemeral(publicKey: Buffer): Promise<void> {
    const r = await this.pool.query('UPDATE registry_nodes SET ephemeral = true WHERE public_key = $1', [publicKey]);
    if (r.rowCount === 0) throw notRegistered();
  }

  async remove(publicKey: Buffer, opts: { onlyEphemeral?: boolean } = {}): Promise<RemovedNode | undefined> {
    // One statement (data-modifying CTEs share one snapshot and commit together): the node, its
    // memberships, its trust pairs and requests. DELETE … RETURNING: of two instances removing
    // the same node, one gets the row (and the other removes nothing).
    const r = await this.pool.query<NodeRow & { member_addrs: string[]; pair_a: string[]; pair_b: string[] }>(
      `WITH n AS (DELETE FROM registry_nodes WHERE public_key = $1 AND (ephemeral OR NOT $2) RETURNING *),
         k AS (SELECT n.network::BIGINT * 4294967296 + n.node AS a FROM n),
         m AS (DELETE FROM registry_net_members x USING n WHERE x.key = n.public_key RETURNING x.address),
         p AS (DELETE FROM registry_trust_pairs t USING k WHERE t.a = k.a OR t.b = k.a RETURNING t.a, t.b),
         q AS (DELETE FROM registry_trust_requests t USING k WHERE t.from_addr = k.a OR t.to_addr = k.a RETURNING 1)
       SELECT n.*, ARRAY(SELECT address FROM m) AS member_addrs, ARRAY(SELECT p.a FROM p) AS pair_a, ARRAY(SELECT p.b FROM p) AS pair_b
       FROM n`,
      [publicKey, opts.onlyEphemeral === true],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      node: toRecord(row),
      pairs: row.pair_a.map((a, i) => ({ a: fromKey(a), b: fromKey(row.pair_b[i]!) })),
      memberships: row.member_addrs.map(fromKey),
    };
  }

  async listEphemeralSeenBefore(seenBefore: number, limit: number): Promise<NodeRecord[]> {
    const r = await this.pool.query<NodeRow>('SELECT * FROM registry_nodes WHERE ephemeral AND last_seen < $1 ORDER BY last_seen LIMIT $2', [
      seenBefore,
      limit,
    ]);
    return r.rows.map(toRecord);
  }

  // ---------------- trust ----------------

  async putTrustPair(pair: TrustPair): Promise<void> {
    const [a, b] = ordered(pair.a, pair.b);
    const swapped = a !== addressKey(pair.a);
    const [stmtA, sigA, stmtB, sigB] = swapped ? [pair.stmtB, pair.sigB, pair.stmtA, pair.sigA] : [pair.stmtA, pair.sigA, pair.stmtB, pair.sigB];
    await this.pool.query(
      `INSERT INTO registry_trust_pairs (a, b, stmt_a, sig_a, stmt_b, sig_b, created) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (a, b) DO UPDATE SET stmt_a = excluded.stmt_a, sig_a = excluded.sig_a, stmt_b = excluded.stmt_b, sig_b = excluded.sig_b, created = excluded.created`,
      [a, b, stmtA, sigA, stmtB, sigB, pair.created],
    );
  }

  private pairRow(r: PairRow): TrustPair {
    return {
      a: fromKey(r.a),
      b: fromKey(r.b),
      stmtA: r.stmt_a,
      sigA: Buffer.from(r.sig_a),
      stmtB: r.stmt_b,
      sigB: Buffer.from(r.sig_b),
      created: num(r.created),
    };
  }

  async mayRelay(src: Address, dst: Address): Promise<boolean> {
    const [a, b] = ordered(src, dst);
    const r = await this.pool.query<{ ok: boolean }>(
      `SELECT n.active AND (n.public
         OR EXISTS (SELECT 1 FROM registry_trust_pairs t WHERE t.a = $1 AND t.b = $2)
         OR EXISTS (SELECT 1 FROM registry_net_members x JOIN registry_net_members y ON x.net = y.net WHERE x.address = $3 AND y.address = $4)) AS ok
       FROM registry_nodes n WHERE n.network = $5 AND n.node = $6`,
      [a, b, addressKey(src), addressKey(dst), dst.network, dst.node],
    );
    return r.rows[0]?.ok === true;
  }

  async getTrustPair(x: Address, y: Address): Promise<TrustPair | undefined> {
    const r = (await this.pool.query<PairRow>('SELECT * FROM registry_trust_pairs WHERE a = $1 AND b = $2', ordered(x, y))).rows[0];
    return r ? this.pairRow(r) : undefined;
  }

  async deleteTrustPair(x: Address, y: Address): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM registry_trust_pairs WHERE a = $1 AND b = $2', ordered(x, y))).rowCount ?? 0) > 0;
  }

  async listTrustPairs(node: Address): Promise<TrustPair[]> {
    const rows = (await this.pool.query<PairRow>('SELECT * FROM registry_trust_pairs WHERE a = $1 OR b = $1 ORDER BY created, a, b', [addressKey(node)])).rows;
    return rows.map((r) => this.pairRow(r));
  }

  async putTrustRequest(req: TrustRequest): Promise<void> {
    await this.pool.query(
      `INSERT INTO registry_trust_requests (from_addr, to_addr, reason, statement, sig, created) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (from_addr, to_addr) DO UPDATE SET reason = excluded.reason, statement = excluded.statement, sig = excluded.sig, created = excluded.created`,
      [addressKey(req.from), addressKey(req.to), req.reason, req.statement, req.sig, req.created],
    );
  }

  private requestRow(r: RequestRow): TrustRequest {
    return { from: fromKey(r.from_addr), to: fromKey(r.to_addr), reason: r.reason, statement: r.statement, sig: Buffer.from(r.sig), created: num(r.created) };
  }

  async getTrustRequest(from: Address, to: Address): Promise<TrustRequest | undefined> {
    const r = (
      await this.pool.query<RequestRow>('SELECT * FROM registry_trust_requests WHERE from_addr = $1 AND to_addr = $2', [addressKey(from), addressKey(to)])
    ).rows[0];
    return r ? this.requestRow(r) : undefined;
  }

  async listTrustRequestsTo(to: Address): Promise<TrustRequest[]> {
    const rows = (await this.pool.query<RequestRow>('SELECT * FROM registry_trust_requests WHERE to_addr = $1 ORDER BY created, from_addr', [addressKey(to)]))
      .rows;
    return rows.map((r) => this.requestRow(r));
  }

  async listTrustRequestsFrom(from: Address): Promise<TrustRequest[]> {
    const rows = (await this.pool.query<RequestRow>('SELECT * FROM registry_trust_requests WHERE from_addr = $1 ORDER BY created, to_addr', [addressKey(from)]))
      .rows;
    return rows.map((r) => this.requestRow(r));
  }

  async deleteTrustRequest(from: Address, to: Address): Promise<boolean> {
    return (
      ((await this.pool.query('DELETE FROM registry_trust_requests WHERE from_addr = $1 AND to_addr = $2', [addressKey(from), addressKey(to)])).rowCount ?? 0) >
      0
    );
  }

  /**
   * Runs `fn` while holding a cluster-wide lock on the unordered pair {x, y}
   * (a transaction-scoped advisory lock on a connection of its own), so two
   * instances handling crossing trust requests see each other's writes.
   */
  async withPairLock<T>(x: Address, y: Address, fn: () => Promise<T>): Promise<T> {
    const [a, b] = ordered(x, y);
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      // Two int4 keys: pair keys are 48-bit, so hash them into the lock space.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', [`pilot-trust:${a}`, `${b}`]);
      return await fn();
    } finally {
      await c.query('COMMIT').catch(() => {});
      c.release();
    }
  }

  // ---------------- key rotation (postgres-rotation.ts) ----------------

  async rotateKey(r: KeyRotationRecord, opts: { keep: number; minIntervalMs: number }): Promise<{ status: 'rotated' | 'already'; node: NodeRecord }> {
    let status: 'rotated' | 'already';
    try {
      status = await this.tx((c) => rotateTx(c, r, opts));
      this.networks.forgetCachedNetworks();
    } catch (err) {
      // Another node took the new key between the check and the update (unique constraint).
      if (uniqueViolation(err) === 'registry_nodes_key_unique') throw rotationErrors.keyInUse();
      throw err;
    }
    return { status, node: (await this.getByKey(r.newKey))! };
  }

  listRotations(address: Address): Promise<KeyRotationRecord[]> {
    return listRotations(this.pool, address);
  }

  retiredKey(publicKey: Buffer): Promise<Address | undefined> {
    return retiredKey(this.pool, publicKey);
  }

  dbStats(): DbStats {
    return poolStats(this.pool);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
