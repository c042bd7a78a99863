// Group commit for the SQLite store. With synchronous=FULL every commit is an
// fsync of the WAL, and under load (a burst of registrations) that fsync, not
// the CPU, bounds the rendezvous: ~4 ms each caps it near 250 writes/s. Writes
// queued during one event-loop turn therefore run in ONE transaction, each in
// its own savepoint (a failing write - a taken hostname - is rolled back alone
// and rejects alone), and every caller is answered only after the shared
// commit: still on disk before the client hears about it.
import type Database from 'better-sqlite3';

interface Job {
  fn: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

export class GroupCommit {
  private readonly batch: Database.Transaction<(jobs: Job[], outcomes: Outcome[]) => void>;
  private queue: Job[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  /** Transactions committed and writes they carried (tests, diagnostics). */
  readonly stats = { commits: 0, writes: 0 };

  constructor(db: Database.Database) {
    // Nested db.transaction() calls become savepoints inside the outer one.
    const savepoint = db.transaction((fn: () => unknown) => fn());
    this.batch = db.transaction((jobs: Job[], outcomes: Outcome[]) => {
      for (const j of jobs) {
        try {
          outcomes.push({ ok: true, value: savepoint(j.fn) });
        } catch (err) {
          outcomes.push({ ok: false, err });
        }
      }
    });
  }

  /** Runs `fn` (synchronous SQLite work) in the next group transaction; settles after its commit. */
  run<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      // setImmediate: after the I/O callbacks of this turn, so a burst of
      // datagrams read together shares one commit, without adding a timer's delay.
      this.scheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Commits whatever is queued now (also called before the database closes). */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const jobs = this.queue;
    this.queue = [];
    if (jobs.length === 0) return;
    const outcomes: Outcome[] = [];
    try {
      // IMMEDIATE: the write lock is taken before the first job reads (read-modify-writes such as
      // taking an invite's last use stay exact with another process on the file).
      this.batch.immediate(jobs, outcomes);
    } catch (err) {
      // The commit itself failed (I/O error, disk full): nothing of the batch is stored.
      for (const j of jobs) j.reject(err);
      return;
    }
    this.stats.commits++;
    this.stats.writes += jobs.length;
    jobs.forEach((j, i) => {
      const o = outcomes[i]!;
      if (o.ok) j.resolve(o.value);
      else j.reject(o.err);
    });
  }
}
