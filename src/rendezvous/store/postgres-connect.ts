// Opening a PostgreSQL pool from a --store URL, with errors an operator can act
// on (code + hint, never a driver stack trace), and idempotent schema
// migrations that several processes may run at the same moment.
import type pg from 'pg';
import { PilotError } from '../../util/errors.ts';
import { importOptional } from '../../util/optional-dep.ts';
import type { DbStats } from './store.ts';

export interface Migration {
  /** Unique and stable: recorded in pilot_migrations once applied. */
  id: string;
  sql: string;
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@?#]*:)[^@/?#]*@/i, '$1***@');
}

/** Is this a PostgreSQL URL (postgres:// or postgresql://)? */
export function isPostgresUrl(text: string): boolean {
  return /^postgres(ql)?:\/\//i.test(text);
}

/** Checks the URL, connects once (so a wrong URL fails now, not at the first request) and returns the pool. */
export async function connectPg(url: string, opts: { max?: number; connectTimeoutMs?: number } = {}): Promise<pg.Pool> {
  if (!isPostgresUrl(url)) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `unsupported --store URL ${redactUrl(url).slice(0, 80)}`,
      'use postgres://USER:PASSWORD@HOST:PORT/DATABASE (or postgres://USER@/DATABASE?host=/socket/dir)',
    );
  }
  // pg is an optional peer dependency; isPostgresUrl/redactUrl above must not load it.
  const { default: driver } = await importOptional('pg', 'the PostgreSQL store (--store postgres://...)', () => import('pg'));
  let pool: pg.Pool;
  try {
    pool = new driver.Pool({ connectionString: url, max: opts.max ?? 10, connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000, idleTimeoutMillis: 30_000 });
  } catch (err) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `bad --store URL: ${(err as Error).message}`,
      'use postgres://USER:PASSWORD@HOST:PORT/DATABASE (or postgres://USER@/DATABASE?host=/socket/dir)',
    );
  }
  // An idle connection dropped by the server is replaced on the next query; without a
  // listener the pool's 'error' event would kill the process.
  pool.on('error', () => {});
  preparePoolQueries(pool);
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => {});
    throw describePgError(err, url);
  }
  return pool;
}

const statementCounts = new WeakMap<pg.Pool, { n: number }>();

/** What a pool has done and how full it is (the store's dbStats, /metrics). */
export function poolStats(pool: pg.Pool): DbStats {
  return { statements: statementCounts.get(pool)?.n ?? 0, connections: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
}

/** Statement text -> name; bounded by the statements written in this code (no SQL is built from input). */
const statementNames = new Map<string, string>();

/**
 * Makes every parameterised query of the pool's connections (pool.query and transactions alike)
 * a named (prepared) statement: each connection parses and plans a statement once, then only
 * executes it. Measured with pg_stat_statements on a register+join+find+deregister cycle:
 * planning took more server time than executing (2.1 s vs 1.4 s per 1,000 cycles). A plan cached
 * before another instance changed a table's columns (a rolling upgrade's migration) fails once
 * with 0A000; that query is retried unprepared.
 */
function preparePoolQueries(pool: pg.Pool): void {
  type Callback = (err: Error | null, res?: pg.QueryResult) => void;
  const stalePlan = (err: unknown) => (err as { code?: string }).code === '0A000' && /cached plan/.test((err as Error).message);
  const count = { n: 0 };
  statementCounts.set(pool, count);
  pool.on('connect', (client) => {
    const plain = client.query.bind(client) as (q: unknown, v?: unknown, cb?: Callback) => Promise<pg.QueryResult> | undefined;
    const query = (q: unknown, v?: unknown, cb?: unknown): Promise<pg.QueryResult> | undefined => {
      count.n++;
      if (typeof q !== 'string' || !Array.isArray(v)) return plain(q, v, cb as Callback | undefined);
      let name = statementNames.get(q);
      if (name === undefined) {
        name = `pilot_${statementNames.size}`;
        statementNames.set(q, name);
      }
      const named = { name, text: q, values: v };
      // pg-pool's own pool.query passes a callback; our code awaits the promise form.
      if (typeof cb === 'function')
        return plain(named, undefined, (err, res) => (err && stalePlan(err) ? plain(q, v, cb as Callback) : (cb as Callback)(err, res)));
      return plain(named)!.catch((err: unknown) => (stalePlan(err) ? plain(q, v)! : Promise.reject(err)));
    };
    Object.assign(client, { query });
  });
}

/** Maps connection-time driver errors to PilotErrors with a hint. */
export function describePgError(err: unknown, url: string): PilotError {
  const e = err as { code?: string; message?: string };
  const where = redactUrl(url);
  const msg = e?.message ?? String(err);
  if (err instanceof TypeError || err instanceof URIError)
    return new PilotError('BAD_ARGUMENT', `bad --store URL ${where}: ${msg}`, 'use postgres://USER:PASSWORD@HOST:PORT/DATABASE');
  switch (e?.code) {
    case 'ECONNREFUSED':
    case 'ENOENT':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new PilotError(
        'UNREACHABLE',
        `cannot reach PostgreSQL at ${where}: ${msg}`,
        'is the database server running and reachable? check the host, port (or socket dir) in --store',
      );
    case '28P01':
    case '28000':
      return new PilotError(
        'PERMISSION_DENIED',
        `PostgreSQL refused the login at ${where}: ${msg}`,
        'check the user and password in --store, and pg_hba.conf on the server',
      );
    case '3D000':
      return new PilotError('BAD_ARGUMENT', `database does not exist at ${where}`, 'create it first (createdb NAME) or fix the database name in --store');
    case '57P03':
      return new PilotError('UNREACHABLE', `PostgreSQL at ${where} is starting up or shutting down`, 'retry in a moment');
  }
  if (/timeout/i.test(msg))
    return new PilotError('UNREACHABLE', `PostgreSQL at ${where} did not answer: ${msg}`, 'is the database server running and reachable? check --store');
  return new PilotError('INTERNAL', `PostgreSQL error at ${where}: ${msg}`, 'see the PostgreSQL server log');
}

/** Driver errors that mean "the database is not there right now" (down, restarting, connection cut). */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT',
  'ETIMEDOUT',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08006',
]);

/** A coded error for a query that failed because the database is unavailable; undefined otherwise. */
export function pgUnavailable(err: unknown): PilotError | undefined {
  const e = err as { code?: string; message?: string } | undefined;
  const down = (e?.code !== undefined && UNAVAILABLE_CODES.has(e.code)) || /Connection terminated|connection timeout/i.test(e?.message ?? '');
  return down ? new PilotError('UNREACHABLE', 'the registry database is unavailable', 'retry in a few seconds; the rendezvous log says why') : undefined;
}

/**
 * Applies the migrations not applied yet, in order, in one transaction under an
 * advisory lock: two processes starting together do not both run CREATE TABLE
 * (which can fail on the catalog even with IF NOT EXISTS).
 */
/**
 * Runs fn in one transaction on a pooled connection (rolled back if it throws). With `lock`,
 * the transaction first takes that cluster-wide advisory lock (released at commit), so what it
 * counts cannot be counted at the same time by another instance.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>, lock?: string): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    if (lock !== undefined) await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lock]);
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

export async function migrate(pool: pg.Pool, migrations: Migration[]): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query("SELECT pg_advisory_xact_lock(hashtext('pilot-migrate'))");
    await c.query('CREATE TABLE IF NOT EXISTS pilot_migrations (id TEXT PRIMARY KEY, applied BIGINT NOT NULL)');
    const done = new Set((await c.query<{ id: string }>('SELECT id FROM pilot_migrations')).rows.map((r) => r.id));
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO pilot_migrations (id, applied) VALUES ($1, $2)', [m.id, Date.now()]);
    }
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}
