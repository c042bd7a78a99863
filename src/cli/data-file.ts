// --data-file <path|->: a command's payload from a file or stdin, read with a
// cap so a wrong path (a disk image, /dev/zero) fails fast with a code instead
// of filling memory.
import fs from 'node:fs';
import { PilotError } from '../util/errors.ts';

const tooLarge = (what: string, max: number): PilotError =>
  new PilotError('FRAME_TOO_LARGE', `${what} is larger than ${max} bytes`, 'send large data as a file: pilotctl send-file <target> <path>');

/** The bytes of `file` ("-" = stdin), at most `max` of them. */
export async function readDataFile(file: string, max: number): Promise<Buffer> {
  if (file === '-') return readCapped(process.stdin, 'stdin', max);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new PilotError(
      'NOT_FOUND',
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      'give a readable file, or - for stdin',
    );
  }
  if (st.isDirectory()) throw new PilotError('BAD_ARGUMENT', `${file} is a directory`, 'give a file, or - for stdin');
  if (st.isFile() && st.size > max) throw tooLarge(file, max);
  // not a regular file (a fifo, /dev/stdin): its size is unknown, read with the cap
  return readCapped(fs.createReadStream(file), file, max);
}

async function readCapped(input: NodeJS.ReadableStream, what: string, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > max) {
      (input as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      throw tooLarge(what, max);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** The payload as text: refuses bytes that are not UTF-8 (they would be changed on the way). */
export function utf8Text(data: Buffer, file: string, hint: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(data);
  } catch {
    throw new PilotError('BAD_ARGUMENT', `${file === '-' ? 'stdin' : file} is not UTF-8 text`, hint);
  }
}
