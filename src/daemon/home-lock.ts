// One node per PILOT_HOME: an exclusive lock file, $PILOT_HOME/pilot.lock, held for the whole life of a
// daemon or an embedded startNode(). Two processes with one identity fight over its address (each
// handshake from one makes the peers drop the other's sessions), so the second one is refused.
//
// Why a pid file and not proper-lockfile or flock: Node has no flock/fcntl without a native addon (an
// install script, which this package avoids), and proper-lockfile's mkdir lock is judged stale by its
// mtime alone: a SIGKILLed daemon would block a restart for the stale period, a busy event loop past it
// would have the lock stolen, and it records nothing to name the holder with. This is the pattern of
// PostgreSQL's postmaster.pid: the file is created exclusively (written in full under a temp name, then
// hard-linked into place, so nobody ever reads it half-written), it names its holder, and a holder that
// is gone is detected by its pid. The pid is checked together with the process start time and the
// kernel boot id (Linux), so a pid reused after a reboot or by another process (pid 1 in a container
// restarted on the same volume) does not keep a dead lock alive. A holder on another host (a shared
// volume between containers) cannot be checked by pid: it refreshes the file's mtime, and its lock is
// stale once that stops for REMOTE_STALE_MS.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { PilotError } from '../util/errors.ts';

export const LOCK_FILE = 'pilot.lock';
/** How often a holder touches its lock file (for holders on other hosts that cannot check our pid). */
export const REFRESH_MS = 30_000;
/** A lock of another host not touched for this long is stale. */
export const REMOTE_STALE_MS = 4 * REFRESH_MS;
/** A takeover guard older than this was left by a crash in the middle of a takeover. */
const GUARD_STALE_MS = 10_000;

export type HolderKind = 'daemon' | 'embedded';

/** What the lock file says about its holder. */
export interface LockHolder {
  pid: number;
  kind: HolderKind;
  /** The IPC socket the holder serves, if any (an embedded node may serve none). */
  socket?: string;
  /** ISO time the lock was taken. */
  since: string;
  host: string;
  /** Linux: the kernel boot id and the process start time (clock ticks since boot), against pid reuse. */
  bootId?: string;
  startTime?: string;
}

/** Processes of this one holding a lock, by lock file (a second startNode() in the same process). */
const heldHere = new Set<string>();
/** The locks this process holds now (released together on exit). */
const liveHere = new Set<HomeLock>();
const releaseAllHere = (): void => {
  for (const l of [...liveHere]) l.release();
};

function readProc(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  return readProc('/proc/sys/kernel/random/boot_id')?.trim() || undefined;
}

/** Field 22 of /proc/PID/stat (after the parenthesised command name, which may hold spaces). */
function startTime(pid: number): string | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

/** Field 3 of /proc/PID/stat: R, S, D … or Z (a zombie: exited, not yet reaped by its parent). */
function procState(pid: number): string | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  return stat === undefined ? undefined : stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/** Is `pid` a running process (a zombie is not: it has exited and holds nothing)? */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // kill(0) succeeds on a zombie: a SIGKILLed daemon whose parent (PID 1 of a container that does not
    // reap) has not collected it yet. It holds nothing any more.
    const state = procState(pid);
    return state !== 'Z' && state !== 'X';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // it exists, under another user
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || typeof v.host !== 'string') return undefined;
    return {
      pid: v.pid,
      kind: v.kind === 'embedded' ? 'embedded' : 'daemon',
      since: typeof v.since === 'string' ? v.since : '',
      host: v.host,
      ...(typeof v.socket === 'string' ? { socket: v.socket } : {}),
      ...(typeof v.bootId === 'string' ? { bootId: v.bootId } : {}),
      ...(typeof v.startTime === 'string' ? { startTime: v.startTime } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * Is the holder still there? Same host: its pid runs and is the same process (start time, boot id).
 * Another host: its file was touched recently.
 */
export function holderAlive(file: string, h: LockHolder, now = Date.now()): boolean {
  if (h.host !== os.hostname()) {
    let mtime: number;
    try {
      mtime = fs.statSync(file).mtimeMs;
    } catch {
      return false;
    }
    return now - mtime < REMOTE_STALE_MS;
  }
  if (h.pid === process.pid) return heldHere.has(file); // else a previous life of this pid (a restarted container)
  if (!pidAlive(h.pid)) return false;
  const boot = bootId();
  if (h.bootId !== undefined && boot !== undefined && h.bootId !== boot) return false; // rebooted since
  const st = startTime(h.pid);
  if (h.startTime !== undefined && st !== undefined && h.startTime !== st) return false; // the pid was reused
  return true;
}

export function describeHolder(h: LockHolder): string {
  const what = h.kind === 'embedded' ? `an embedded node (startNode) in pid ${h.pid}` : `a daemon (pid ${h.pid})`;
  const parts = [h.socket !== undefined ? `socket ${h.socket}` : 'no IPC socket', ...(h.since ? [`since ${h.since}`] : [])];
  if (h.host !== os.hostname()) parts.unshift(`on host ${h.host}`);
  return `${what}, ${parts.join(', ')}`;
}

function refusal(home: string, h: LockHolder): PilotError {
  const stop =
    h.kind === 'embedded'
      ? `close() that node${h.socket !== undefined ? ` (or: pilotctl --socket ${h.socket} daemon stop)` : ''}`
      : `stop it: pilotctl${h.socket !== undefined ? ` --socket ${h.socket}` : ''} daemon stop`;
  return new PilotError(
    'DAEMON_RUNNING',
    `${home} is in use by ${describeHolder(h)}: one node per PILOT_HOME`,
    `${stop}; or use it instead (connect() in the SDK); to run a second node, give it its own PILOT_HOME`,
  );
}

export class HomeLock {
  readonly file: string;
  readonly holder: LockHolder;
  private readonly text: string;
  private refresh: NodeJS.Timeout | undefined;
  private released = false;

  private constructor(file: string, holder: LockHolder, text: string) {
    this.file = file;
    this.holder = holder;
    this.text = text;
    heldHere.add(file);
    this.refresh = setInterval(() => {
      const t = new Date();
      fs.utimes(file, t, t, () => {});
    }, REFRESH_MS);
    this.refresh.unref();
    // A process that exits without stop() (process.exit in a script) leaves no lock behind. One
    // listener for all the locks of this process: a program embedding many nodes (startNode) would
    // otherwise add one 'exit' listener per node and trip Node's leak warning at eleven.
    liveHere.add(this);
    if (liveHere.size === 1) process.once('exit', releaseAllHere);
  }

  /** The lock file of `home` (absolute, so two spellings of one home are one lock). */
  static fileOf(home: string): string {
    return path.join(path.resolve(home), LOCK_FILE);
  }

  /** Who holds the lock of `home` now, if anyone alive. */
  static holderOf(home: string): LockHolder | undefined {
    const file = HomeLock.fileOf(home);
    const text = readProc(file);
    const h = text === undefined ? undefined : parseHolder(text);
    return h !== undefined && holderAlive(file, h) ? h : undefined;
  }

  /** Throw DAEMON_RUNNING naming the live holder of `home`'s lock, if any (a check before spawning a daemon; acquire() decides). */
  static refuseIfHeld(home: string): void {
    const h = HomeLock.holderOf(home);
    if (h !== undefined) throw refusal(home, h);
  }

  /** Take the lock of `home`, or throw DAEMON_RUNNING naming its live holder. A dead holder's lock is taken over. */
  static acquire(home: string, who: { kind: HolderKind; socket?: string | undefined }): HomeLock {
    fs.mkdirSync(home, { recursive: true, mode: 0o700 });
    const file = HomeLock.fileOf(home);
    const boot = bootId();
    const st = startTime(process.pid);
    const holder: LockHolder = {
      pid: process.pid,
      kind: who.kind,
      ...(who.socket !== undefined ? { socket: who.socket } : {}),
      since: new Date().toISOString(),
      host: os.hostname(),
      ...(boot !== undefined ? { bootId: boot } : {}),
      ...(st !== undefined ? { startTime: st } : {}),
    };
    const text = JSON.stringify(holder) + '\n';
    for (let attempt = 0; attempt < 5; attempt++) {
      if (createExclusive(file, text)) return new HomeLock(file, holder, text);
      const seen = readProc(file);
      if (seen === undefined) continue; // released meanwhile: try again
      const h = parseHolder(seen);
      if (h !== undefined && holderAlive(file, h)) throw refusal(home, h);
      // dead holder (or garbage): remove it, unless someone else was faster; if another starter is
      // taking over right now, give it a moment before reading the file again
      if (!takeOver(file, seen)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
    throw new PilotError('INTERNAL', `could not take the lock ${file}: it keeps changing`, 'another node is starting on this home at the same time; try again');
  }

  /** Give the lock up (idempotent). Only our own file is removed. */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.refresh);
    liveHere.delete(this);
    if (liveHere.size === 0) process.removeListener('exit', releaseAllHere);
    heldHere.delete(this.file);
    try {
      if (fs.readFileSync(this.file, 'utf8') === this.text) fs.unlinkSync(this.file);
    } catch {
      // already gone
    }
  }
}

/** Create `file` with `text`, atomically and only if it does not exist: write a temp file, hard-link it into place. */
function createExclusive(file: string, text: string): boolean {
  const tmp = path.join(path.dirname(file), `.${LOCK_FILE}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  fs.writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Remove a dead holder's lock. Two starters may both find it dead: only the one holding the takeover
 * guard (a directory: mkdir is atomic) removes it, and only if it still is the file that was judged
 * dead, so a fresh lock that a faster starter just created is never removed.
 */
function takeOver(file: string, deadText: string): boolean {
  const guard = `${file}.takeover`;
  try {
    fs.mkdirSync(guard, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    try {
      if (Date.now() - fs.statSync(guard).mtimeMs > GUARD_STALE_MS) fs.rmSync(guard, { recursive: true, force: true });
    } catch {
      // removed meanwhile
    }
    return false; // someone else is taking over: the caller reads the file again
  }
  try {
    if (readProc(file) === deadText) fs.unlinkSync(file);
  } finally {
    fs.rmSync(guard, { recursive: true, force: true });
  }
  return true;
}
