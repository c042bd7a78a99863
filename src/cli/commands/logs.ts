// pilotctl logs [-f] [-n N] [--level L] [--json]: the daemon's log
// ($PILOT_HOME/pilot.log and its rotated files), one line per record like
// journalctl; -f follows it across rotations the way `tail -F` does.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { pilotHome } from '../../daemon/config-file.ts';
import { PilotError } from '../../util/errors.ts';
import { formatLogLine } from '../../util/log-format.ts';
import { LOG_LEVELS, rotatedPaths } from '../../util/logger.ts';
import { line, parseCount, type OutputOptions } from '../output.ts';
import type { RunWrapper } from '../action.ts';

const LEVEL_NUM: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** The log file of a home. */
export function logPath(home: string): string {
  return path.join(home, 'pilot.log');
}

/** The last `n` lines of a file, read backwards in chunks (a 10 MB log is not read whole for 50 lines). */
export function tailLines(file: string, n: number, end = Number.POSITIVE_INFINITY): string[] {
  if (n === 0) return [];
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return [];
  }
  try {
    const size = Math.min(fs.fstatSync(fd).size, end);
    const chunks: Buffer[] = [];
    let pos = size;
    let newlines = 0;
    while (pos > 0 && newlines <= n) {
      const len = Math.min(64 * 1024, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, pos);
      chunks.unshift(buf);
      for (const b of buf) if (b === 10) newlines++;
    }
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines.slice(-n);
  } finally {
    fs.closeSync(fd);
  }
}

/** The last `n` lines over the live log and its rotated files (oldest first). */
export function lastLines(file: string, n: number, end = Number.POSITIVE_INFINITY, files = 9): string[] {
  const out: string[] = [];
  for (const p of rotatedPaths(file, files)) {
    if (out.length >= n) break;
    if (!fs.existsSync(p)) {
      if (p !== file) break;
      continue;
    }
    out.unshift(...tailLines(p, n - out.length, p === file ? end : Number.POSITIVE_INFINITY));
  }
  return out;
}

/** The minimum pino level a record must have to be shown. */
export function parseLevel(text: string | undefined): number {
  if (text === undefined) return 0;
  const n = LEVEL_NUM[text];
  if (n === undefined)
    throw new PilotError('BAD_ARGUMENT', `unknown --level ${JSON.stringify(text)}`, `use one of ${LOG_LEVELS.filter((l) => l !== 'silent').join(', ')}`);
  return n;
}

function levelOf(text: string): number | undefined {
  const m = /"level":(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Calls `onLine` for each line appended to `file` from `start` on, until the
 * returned stop() is called. Polls (250 ms): fs.watch misses renames on some
 * filesystems, and a log does not need lower latency. A rotation (the path
 * now names another file) or a truncation is noticed: the old file is read
 * to its end, then any file rotated out since, then the new one from its start.
 */
export function followFile(file: string, start: number, onLine: (text: string) => void, intervalMs = 250): () => void {
  let fd: number | undefined;
  let ino = -1;
  let pos = start;
  let rest = '';
  const open = (): void => {
    try {
      fd = fs.openSync(file, 'r');
      ino = fs.fstatSync(fd).ino;
    } catch {
      fd = undefined;
    }
  };
  const drain = (): void => {
    if (fd === undefined) return;
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      rest += buf.subarray(0, n).toString('utf8');
      const parts = rest.split('\n');
      rest = parts.pop()!;
      for (const p of parts) onLine(p);
    }
  };
  open();
  const tick = (): void => {
    if (fd === undefined) {
      open();
      pos = 0;
    }
    drain();
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(file);
    } catch {
      st = undefined; // between the rename and the reopen: next tick
    }
    if (fd !== undefined && st && st.ino !== ino) {
      // rotated: the old file is complete (drained above); continue in the new one
      fs.closeSync(fd);
      if (rest) onLine(rest);
      rest = '';
      // Several rotations since the last look: the files between the old one and the live one, oldest first.
      const paths = rotatedPaths(file, 9);
      const at = paths.findIndex((p) => inodeOf(p) === ino);
      for (let j = at - 1; j >= 1; j--) {
        let text = '';
        try {
          text = fs.readFileSync(paths[j]!, 'utf8');
        } catch {
          continue;
        }
        for (const l of text.split('\n')) if (l) onLine(l);
      }
      open();
      pos = 0;
      drain();
    } else if (fd !== undefined && st && st.size < pos) {
      pos = 0; // truncated in place
      drain();
    }
  };
  const timer = setInterval(tick, intervalMs);
  tick();
  return () => {
    clearInterval(timer);
    if (fd !== undefined) fs.closeSync(fd);
  };
}

function inodeOf(p: string): number | undefined {
  try {
    return fs.statSync(p).ino;
  } catch {
    return undefined;
  }
}

interface LogsOptions {
  follow?: boolean;
  lines?: string;
  level?: string;
}

export function registerLogsCommand(program: Command, run: RunWrapper): void {
  program
    .command('logs')
    .description("the daemon's log, newest last (-f to follow it)")
    .option('-f, --follow', 'keep printing new lines as the daemon writes them (across rotations)')
    .option('-n, --lines <n>', 'lines to show from the end', '50')
    .option('--level <level>', 'only records at this level or above: trace, debug, info, warn, error, fatal')
    .action(
      run(async (g, out: OutputOptions, _c, opts: LogsOptions) => {
        const home = pilotHome(g.home);
        const file = logPath(home);
        const n = parseCount(opts.lines, 50);
        const min = parseLevel(opts.level);
        if (!fs.existsSync(file) && !opts.follow) {
          throw new PilotError(
            'NOT_FOUND',
            `no daemon log at ${file}`,
            fs.existsSync(home)
              ? 'the daemon logs there once it runs; under systemd it logs to the journal instead: journalctl --user -u pilot-daemon (add -f to follow)'
              : `${home} does not exist: no daemon has run with this home (use --home DIR or $PILOT_HOME)`,
          );
        }
        const show = (text: string): void => {
          if (text === '') return;
          if (min > 0) {
            const lv = levelOf(text);
            if (lv !== undefined && lv < min) return;
          }
          if (out.json) {
            let rec: unknown;
            try {
              rec = JSON.parse(text);
            } catch {
              rec = { msg: text }; // a crash trace on the daemon's stderr shares the file
            }
            line(out, rec, '');
          } else process.stdout.write(`${formatLogLine(text)}\n`);
        };
        const start = fs.existsSync(file) ? fs.statSync(file).size : 0;
        // read up to `start` only: what comes later is printed once, by the follower
        for (const l of lastLines(file, n, start)) show(l);
        if (!opts.follow) return;
        await new Promise<void>((resolve) => {
          const stop = followFile(file, start, show);
          const done = (): void => {
            stop();
            resolve();
          };
          process.once('SIGINT', done);
          process.once('SIGTERM', done);
        });
      }),
    );
}
