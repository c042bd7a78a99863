// Splits a byte stream into bounded newline-terminated lines. Works on bytes,
// not strings, because a connection may turn into a binary pipe right after a line.
import { PilotError } from '../util/errors.ts';
import { MAX_LINE } from './protocol.ts';

export class LineReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Feeds a chunk; returns the complete lines. Throws FRAME_TOO_LARGE past MAX_LINE. */
  push(chunk: Buffer): string[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const lines: string[] = [];
    let start = 0;
    for (let nl = this.buf.indexOf(10, start); nl !== -1; nl = this.buf.indexOf(10, start)) {
      const line = this.buf.toString('utf8', start, nl);
      if (line.trim().length > 0) lines.push(line);
      start = nl + 1;
    }
    this.buf = this.buf.subarray(start);
    if (this.buf.length > MAX_LINE) throw new PilotError('FRAME_TOO_LARGE', `IPC line longer than ${MAX_LINE} bytes`);
    return lines;
  }

  /** Take exactly one line (or undefined), leaving the rest buffered untouched. */
  shiftLine(chunk: Buffer): string | undefined {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const nl = this.buf.indexOf(10);
    if (nl === -1) {
      if (this.buf.length > MAX_LINE) throw new PilotError('FRAME_TOO_LARGE', `IPC line longer than ${MAX_LINE} bytes`);
      return undefined;
    }
    const line = this.buf.toString('utf8', 0, nl);
    this.buf = this.buf.subarray(nl + 1);
    return line;
  }

  /** Whatever arrived after the last consumed line (used when a connection turns into a raw pipe). */
  takeRest(): Buffer {
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}
