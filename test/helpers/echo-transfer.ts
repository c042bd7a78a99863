// Run as a process: dial <target>'s echo port (7) through the daemon at
// <socket>, stream <bytes> random bytes, and print both hashes as JSON, with
// firstByteMs = dial to the first echoed byte. ECHO_PROGRESS_BYTES=N also prints
// "progress <bytes echoed>" on stderr every N bytes (to act mid-transfer).
import crypto from 'node:crypto';
import { openPipe } from '../../src/ipc/client.ts';

const [socketPath, target, bytesText] = process.argv.slice(2);
const total = Number(bytesText);
const t0 = Date.now();
const { socket } = await openPipe('dial', { target, port: 7 }, socketPath);
const sent = crypto.createHash('sha256');
const echoed = crypto.createHash('sha256');
let back = 0;
let firstByteMs: number | undefined;
const every = Number(process.env.ECHO_PROGRESS_BYTES ?? 0);
const done = new Promise<void>((resolve, reject) => {
  socket.on('data', (c: Buffer) => {
    firstByteMs ??= Date.now() - t0;
    if (every > 0 && Math.floor((back + c.length) / every) > Math.floor(back / every)) process.stderr.write(`progress ${back + c.length}\n`);
    back += c.length;
    echoed.update(c);
  });
  socket.on('end', () => {
    process.stderr.write(`echo ended after ${back} bytes\n`);
    resolve();
  });
  socket.on('error', (e: Error) => {
    process.stderr.write(`pipe error after ${back} bytes: ${e.message}\n`);
    reject(e);
  });
  socket.on('close', (hadErr: boolean) => {
    process.stderr.write(`pipe closed after ${back} bytes${hadErr ? ' (error)' : ''}\n`);
    resolve();
  });
  socket.resume();
});
const block = crypto.randomBytes(64 * 1024);
for (let n = 0; n < total; n += block.length) {
  const chunk = block.subarray(0, Math.min(block.length, total - n));
  sent.update(chunk);
  if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
}
socket.end();
await done;
console.log(
  JSON.stringify({
    bytes: back,
    sentHash: sent.digest('hex'),
    echoHash: echoed.digest('hex'),
    seconds: (Date.now() - t0) / 1000,
    firstByteMs: firstByteMs ?? null,
  }),
);
process.exit(0);
