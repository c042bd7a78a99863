// send-file's progress line and its Ctrl-C. On a terminal, one rewritten line:
//   [###########-------------------]  37%  18.5/50.0 MiB  12.3 MiB/s  ETA 0:03
// The rate is over the last few seconds (not since the start, so a slow start or a
// resumed transfer does not skew it); the ETA is what is left at that rate.
// Ctrl-C (SIGINT) ends the send: the IPC connection closes, the daemon stops sending,
// the receiver keeps what it has (src/services/data-exchange.ts), and we say how far
// it got and that the same command resumes it; exit 130 as after any Ctrl-C.
//
// Hand-written rather than cli-progress: the bar is one line of arithmetic, the
// windowed rate a few more, and this file also owns the SIGINT summary, which a bar
// library does not do; a dependency (and its string-width chain) for that did not pay.
import type { FileProgress } from '../../ipc/api.ts';
import { PilotError } from '../../util/errors.ts';
import { fail, type OutputOptions } from '../output.ts';

const MiB = 1024 * 1024;
/** The rate is measured over this much of the recent past. */
const RATE_WINDOW_MS = 3000;
/** Redraws at most this often (a fast local transfer sends progress far more often). */
const REDRAW_MS = 100;

/** "0:07", "3:05", "1:02:03"; "-" when unknown. */
export function formatEta(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '-:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** "12.3 MiB/s", "850 KiB/s"; "- MiB/s" before the first measurement. */
export function formatRate(bytesPerSec: number | null): string {
  if (bytesPerSec === null || !Number.isFinite(bytesPerSec)) return '- MiB/s';
  if (bytesPerSec < MiB) return `${Math.round(bytesPerSec / 1024)} KiB/s`;
  return `${(bytesPerSec / MiB).toFixed(1)} MiB/s`;
}

/** The whole line: bar, percent, MiB done of total, rate, ETA. */
export function progressLine(sent: number, size: number, bytesPerSec: number | null): string {
  const frac = size > 0 ? Math.min(1, sent / size) : 1;
  const width = 30;
  const full = Math.round(frac * width);
  const eta = bytesPerSec !== null && bytesPerSec > 0 ? (size - sent) / bytesPerSec : null;
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${String(Math.floor(frac * 100)).padStart(3)}%  ${(sent / MiB).toFixed(1)}/${(size / MiB).toFixed(1)} MiB  ${formatRate(bytesPerSec)}  ETA ${formatEta(eta)}`;
}

/** Bytes per second over the last RATE_WINDOW_MS of (time, bytes) samples. */
export class RateMeter {
  private readonly samples: Array<{ t: number; bytes: number }> = [];

  add(t: number, bytes: number): void {
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[1]!.t >= RATE_WINDOW_MS) this.samples.shift();
  }

  /** null until two samples some time apart. */
  rate(): number | null {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t - first.t < 200) return null;
    return ((last.bytes - first.bytes) * 1000) / (last.t - first.t);
  }
}

/** What pilotctl says after Ctrl-C: how far it got, and the command that resumes. */
export function interruptedError(target: string, file: string, last: FileProgress | undefined): PilotError {
  const how = last
    ? `${(last.sent / MiB).toFixed(1)} of ${(last.size / MiB).toFixed(1)} MiB (${last.sent} bytes) sent to ${target}`
    : `nothing sent to ${target} yet`;
  return new PilotError(
    'INTERRUPTED',
    `send-file interrupted: ${how}`,
    `the peer keeps the part it received; the same command resumes from there: pilotctl send-file ${shellWord(target)} ${shellWord(file)}`,
  );
}

/** `s` as one shell word (quoted only when it needs to be). */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface SendFileProgress {
  update(p: FileProgress): void;
  /** Runs the send; Ctrl-C during it prints INTERRUPTED (how far it got, how to resume) and exits 130. */
  run<T>(send: () => Promise<T>): Promise<T>;
}

export function sendFileProgress(o: { out: OutputOptions; target: string; file: string; stream?: NodeJS.WriteStream; now?: () => number }): SendFileProgress {
  const stream = o.stream ?? process.stdout;
  const now = o.now ?? Date.now;
  const tty = !o.out.json && stream.isTTY === true;
  const meter = new RateMeter();
  let last: FileProgress | undefined;
  let drawnAt = 0;
  let drawn = false;
  const draw = (force: boolean): void => {
    if (!tty || !last) return;
    const t = now();
    if (!force && t - drawnAt < REDRAW_MS) return;
    drawnAt = t;
    drawn = true;
    stream.write(`\r${progressLine(last.sent, last.size, meter.rate())}`);
  };
  const endLine = (): void => {
    if (drawn) stream.write('\n');
    drawn = false;
  };
  return {
    update(p) {
      last = p;
      meter.add(now(), p.sent);
      draw(p.sent >= p.size);
    },
    async run(send) {
      // Exit from the handler: closing the IPC connection the polite way (end) leaves the
      // daemon's side open until the send answers, i.e. the whole file; the process
      // going away closes the socket outright, and the daemon aborts the send at once.
      const onSigint = (): void => {
        draw(true);
        endLine();
        process.exit(fail(o.out, interruptedError(o.target, o.file, last)));
      };
      process.once('SIGINT', onSigint);
      try {
        return await send();
      } finally {
        process.off('SIGINT', onSigint);
        endLine();
      }
    },
  };
}
