// Presence writes of one instance (cluster_presence: which instance each online node is at), one
// statement in flight at a time: what arrives meanwhile goes into the next statement, together,
// the last write per address winning. Idle, a write leaves at once; under churn (a fleet's agents
// registering and deregistering 100 times a second over two instances) two statements per
// join-and-leave, each a round trip every caller waited for in turn, become a fraction of one.
// The same pattern as the cluster's NOTIFY batching (pg-cluster.ts) and a database's group commit.
import type pg from 'pg';

export interface PresenceRow {
  /** addressKey(address). */
  address: number;
  observed: string | null;
  /** JSON text of the LAN endpoints. */
  lanEndpoints: string;
  lastSeen: number;
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

export class PresenceWriter {
  private readonly pool: pg.Pool;
  private readonly instance: string;
  /** address -> the row to write, or null to delete ours; bounded by the callers waiting on it. */
  private pending = new Map<number, PresenceRow | null>();
  private waiting: Waiter[] = [];
  private busy = false;
  /** Statements written (tests, and a batch-size figure for benchmarks). */
  statements = 0;

  constructor(pool: pg.Pool, instance: string) {
    this.pool = pool;
    this.instance = instance;
  }

  /** Resolves when a statement carrying this row (or a later write of the same address) committed. */
  put(row: PresenceRow): Promise<void> {
    return this.enqueue(row.address, row);
  }

  /** Deletes this instance's row of `address` (another instance's stays: the node moved there). */
  drop(address: number): Promise<void> {
    return this.enqueue(address, null);
  }

  private enqueue(address: number, op: PresenceRow | null): Promise<void> {
    this.pending.set(address, op);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.busy) this.flush();
    });
  }

  private flush(): void {
    if (this.pending.size === 0) {
      this.busy = false;
      return;
    }
    this.busy = true;
    const batch = this.pending;
    const waiters = this.waiting;
    this.pending = new Map();
    this.waiting = [];
    this.write(batch).then(
      () => {
        for (const w of waiters) w.resolve();
        this.flush();
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
        this.flush();
      },
    );
  }

  private write(batch: Map<number, PresenceRow | null>): Promise<unknown> {
    const up: PresenceRow[] = [];
    const down: number[] = [];
    for (const [address, op] of batch) {
      if (op) up.push(op);
      else down.push(address);
    }
    this.statements++;
    // Each address once per statement (the map), so the upsert never touches a row twice, and a
    // deleted address is not also upserted.
    return this.pool.query(
      `WITH d AS (DELETE FROM cluster_presence WHERE instance = $1 AND address = ANY($2::BIGINT[]))
       INSERT INTO cluster_presence (address, instance, observed, lan_endpoints, last_seen)
       SELECT u.a, $1, u.o, u.l, u.s FROM unnest($3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[]) AS u(a, o, l, s)
       ON CONFLICT (address) DO UPDATE SET instance = excluded.instance, observed = excluded.observed,
         lan_endpoints = excluded.lan_endpoints, last_seen = excluded.last_seen`,
      [this.instance, down, up.map((r) => r.address), up.map((r) => r.observed), up.map((r) => r.lanEndpoints), up.map((r) => r.lastSeen)],
    );
  }
}
