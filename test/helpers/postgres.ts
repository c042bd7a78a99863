// A real, private PostgreSQL cluster for a test: initdb + pg_ctl in a temp dir,
// listening only on a unix socket inside that dir (reachable from network
// namespaces too: the filesystem is shared). initdb refuses root, so as root the
// cluster runs as the `postgres` user. Stopped and removed by stop().
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface PgCluster {
  /** postgres://… URL for the database `pilot` (unix socket). */
  url: string;
  /** A URL for another (created) database of this cluster. */
  createDatabase(name: string): string;
  /** Stop the server (fast shutdown: sessions are cut), keeping the data. */
  down(): void;
  /** Start it again after down(). */
  up(): void;
  stop(): void;
}

/** The directory holding initdb/pg_ctl, or undefined when PostgreSQL is not installed. */
export function findPgBin(): string | undefined {
  if (process.env.PG_BIN && fs.existsSync(path.join(process.env.PG_BIN, 'initdb'))) return process.env.PG_BIN;
  const base = '/usr/lib/postgresql';
  if (!fs.existsSync(base)) return undefined;
  const versions = fs
    .readdirSync(base)
    .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(base, versions[0], 'bin') : undefined;
}

/** Skip reason for node:test, or false when a cluster can be started here. */
export function pgSkipReason(): string | false {
  if (!findPgBin()) return 'PostgreSQL binaries not found (apt-get install postgresql, or set PG_BIN)';
  if (process.getuid?.() === 0 && spawnSync('id', ['postgres']).status !== 0) return 'running as root without a postgres user to run initdb as';
  return false;
}

export function startPostgres(): PgCluster {
  const bin = findPgBin();
  if (!bin) throw new Error('PostgreSQL binaries not found');
  const asRoot = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-pg-'));
  const data = path.join(dir, 'data');
  let opts = '';
  const as = (cmd: string, args: string[]) =>
    asRoot ? execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'pipe' }) : execFileSync(cmd, args, { stdio: 'pipe' });
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  try {
    as(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    // Unix socket only (no TCP port to collide with), in our own dir; fsync off: test data.
    opts = `-c listen_addresses='' -c unix_socket_directories='${dir}' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
    as(path.join(bin, 'pg_ctl'), ['-D', data, '-o', opts, '-l', path.join(dir, 'log'), '-w', '-t', '30', 'start']);
    as(path.join(bin, 'createdb'), ['-h', dir, '-U', 'postgres', 'pilot']);
  } catch (err) {
    const log = fs.existsSync(path.join(dir, 'log')) ? fs.readFileSync(path.join(dir, 'log'), 'utf8') : '';
    cleanup(dir, data, bin, as);
    throw new Error(`postgres did not start: ${(err as Error).message}\n${log}`);
  }
  const urlFor = (db: string) => `postgres://postgres@/${db}?host=${encodeURIComponent(dir)}`;
  let stopped = false;
  return {
    url: urlFor('pilot'),
    createDatabase(name: string) {
      as(path.join(bin, 'createdb'), ['-h', dir, '-U', 'postgres', name]);
      return urlFor(name);
    },
    down() {
      as(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
    },
    up() {
      as(path.join(bin, 'pg_ctl'), ['-D', data, '-o', opts, '-l', path.join(dir, 'log'), '-w', '-t', '30', 'start']);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      cleanup(dir, data, bin, as);
    },
  };
}

/**
 * One cluster per test file: started before the file's tests (unless skipped),
 * stopped after them; database(prefix) creates a fresh database per test.
 */
export function usePostgresForFile(hooks: { before(fn: () => void): void; after(fn: () => void): void }): {
  skip: string | false;
  cluster(): PgCluster;
  database(prefix: string): string;
} {
  const skip = pgSkipReason();
  let pg: PgCluster | undefined;
  let n = 0;
  hooks.before(() => {
    if (!skip) pg = startPostgres();
  });
  hooks.after(() => pg?.stop());
  const cluster = (): PgCluster => {
    if (!pg) throw new Error('PostgreSQL cluster not started (skipped file?)');
    return pg;
  };
  return { skip, cluster, database: (prefix) => cluster().createDatabase(`${prefix}_${++n}`) };
}

function cleanup(dir: string, data: string, bin: string, as: (cmd: string, args: string[]) => Buffer): void {
  try {
    if (fs.existsSync(path.join(data, 'postmaster.pid'))) as(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
  } catch {
    /* already down */
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
