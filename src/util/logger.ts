// pino loggers. The daemon logs NDJSON to $PILOT_HOME/pilot.log, rotated by
// size (pilot.log -> pilot.log.1 -> … like logrotate, so the live file keeps
// its name for `pilotctl logs -f` and for tools); with --log-stdout it logs to
// stdout instead: NDJSON for container log collectors, or journald's
// `<N>message` lines when stdout is the journal (systemd sets $JOURNAL_STREAM).
//
// Why not pino-roll: it names the live file pilot.1.log, pilot.2.log, … (the
// current file changes name at each rotation), pulls in date-fns, and is built
// to run as a pino transport in a worker thread (a second V8 isolate: more
// start-up time and RSS for every agent). A size cap over pino's own
// destination (SonicBoom.reopen) is a few lines.
import fs from 'node:fs';
import pino from 'pino';
import { PilotError } from './errors.ts';
import { isatty } from 'node:tty';
import { formatLogLine, journalLine } from './log-format.ts';

export type Logger = pino.Logger;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** $PILOT_LOG_LEVEL, checked: a typo must not silently log nothing (or throw deep inside pino). */
export function envLogLevel(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.PILOT_LOG_LEVEL;
  if (v === undefined || v === '') return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(v))
    throw new PilotError('BAD_ARGUMENT', `unknown PILOT_LOG_LEVEL ${JSON.stringify(v)}`, `set PILOT_LOG_LEVEL to one of ${LOG_LEVELS.join(', ')}, or unset it`);
  return v;
}

/** Default size cap of the daemon log: 10 MiB per file, the live one plus 3 rotated (at most 40 MiB). */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_FILES = 3;

/** "10M", "512k", "1G" or bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?$/.exec(text.trim());
  if (!m) throw new PilotError('BAD_ARGUMENT', `invalid size ${JSON.stringify(text)}`, 'a byte count, or e.g. 512k, 10M, 1G');
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.floor(Number(m[1]) * mult);
}

export interface RotateOptions {
  /** Rotate once the live file would grow past this (bytes). */
  maxBytes?: number;
  /** Rotated files kept (path.1 … path.N); 0 = truncate instead of keeping any. */
  files?: number;
}

/** The rotation settings from $PILOT_LOG_MAX_SIZE and $PILOT_LOG_FILES (defaults 10M and 3). */
export function envRotation(env: NodeJS.ProcessEnv = process.env): Required<RotateOptions> {
  const maxBytes = env.PILOT_LOG_MAX_SIZE ? parseSize(env.PILOT_LOG_MAX_SIZE) : DEFAULT_LOG_MAX_BYTES;
  const files = env.PILOT_LOG_FILES ? Number(env.PILOT_LOG_FILES) : DEFAULT_LOG_FILES;
  if (!Number.isInteger(files) || files < 0 || files > 100)
    throw new PilotError('BAD_ARGUMENT', `invalid PILOT_LOG_FILES ${JSON.stringify(env.PILOT_LOG_FILES)}`, 'rotated log files to keep: 0-100 (default 3)');
  if (maxBytes < 4096)
    throw new PilotError('BAD_ARGUMENT', `PILOT_LOG_MAX_SIZE ${JSON.stringify(env.PILOT_LOG_MAX_SIZE)} is too small`, 'at least 4k (default 10M)');
  return { maxBytes, files };
}

/** The paths of a log and its rotated files, newest first: pilot.log, pilot.log.1, … */
export function rotatedPaths(file: string, files: number): string[] {
  return [file, ...Array.from({ length: files }, (_, i) => `${file}.${i + 1}`)];
}

/**
 * A pino destination that writes `file` and rotates it by size. The write that
 * would cross the cap goes to a fresh file: the old one is renamed and
 * SonicBoom reopens the path. Writes are synchronous (one write(2) per record,
 * microseconds at a daemon's log rate): the cap is exact, nothing sits in a
 * buffer across a rotation, and the last records before a crash are on disk.
 */
export function rotatingDestination(
  file: string,
  o: RotateOptions = {},
): pino.DestinationStream & { flush: (cb?: (err?: Error) => void) => void; flushSync: () => void } {
  const maxBytes = o.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
  const files = o.files ?? DEFAULT_LOG_FILES;
  const sonic = pino.destination({ dest: file, mkdir: true, sync: true });
  let size = 0;
  try {
    size = fs.statSync(file).size;
  } catch {
    // a new file
  }
  const rotate = (): void => {
    try {
      const paths = rotatedPaths(file, files);
      if (files === 0) fs.truncateSync(file, 0);
      else for (let i = paths.length - 1; i > 0; i--) if (fs.existsSync(paths[i - 1]!)) fs.renameSync(paths[i - 1]!, paths[i]!);
      sonic.reopen();
      size = 0;
    } catch {
      // A full or read-only disk: keep writing where we are rather than lose the log or crash.
    }
  };
  return {
    write(chunk: string): boolean {
      const n = Buffer.byteLength(chunk);
      if (size > 0 && size + n > maxBytes) rotate();
      size += n;
      return sonic.write(chunk);
    },
    flush: (cb?: (err?: Error) => void) => sonic.flush(cb),
    flushSync: () => sonic.flushSync(),
  };
}

export function fileLogger(path: string, level = envLogLevel(), rotation: RotateOptions = envRotation()): Logger {
  return pino({ level, base: { pid: process.pid } }, rotatingDestination(path, rotation));
}

/** Is this fd (1 or 2) connected to the journal? systemd sets JOURNAL_STREAM=<dev>:<inode> of that stream (systemd.exec(5)). */
export function isJournal(fd: 1 | 2, env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  try {
    const st = fs.fstatSync(fd);
    return js === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/**
 * Logs on stdout or stderr, for a service manager or a container runtime to
 * collect: journald lines (`<4>WARN  message key=value`) when that stream is
 * the journal, pino's NDJSON when it is a pipe or a file, and the same one
 * line per record as `pilotctl logs` when a person watches a terminal.
 */
export function streamLogger(fd: 1 | 2, level = envLogLevel(), journal = isJournal(fd)): Logger {
  const out = pino.destination({ fd, sync: true });
  const tty = !journal && isatty(fd);
  if (!journal && !tty) return pino({ level, base: { pid: process.pid } }, out);
  return pino(
    { level, base: undefined },
    {
      write(chunk: string): void {
        // pino hands over exactly one NDJSON record per write
        const rec = chunk.trimEnd();
        out.write(`${journal ? journalLine(rec) : formatLogLine(rec)}\n`);
      },
    },
  );
}

/** The daemon with --log-stdout. */
export function stdoutLogger(level = envLogLevel()): Logger {
  return streamLogger(1, level);
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
