// A handshake flood for test/security/handshake-flood.test.ts, run as its own
// process (inside the test's network namespace) so the test runner is not the
// bottleneck. Sends message 1s of the right size with a valid mac1 (the victim
// key is public) and junk inside, from `sources` different IPs (10.66.0.1 ...,
// made local to the namespace by the test), at `rate` packets per second, until
// killed or `seconds` pass. Nothing it receives is read: it never learns a
// cookie, like a spoofer. Prints {"sent":N,"seconds":S} when done.
import dgram from 'node:dgram';
import { junkInitPackets } from './handshake-packets.ts';

const [target, keyB64, rateText, secondsText, sourcesText] = process.argv.slice(2);
const host = target!.slice(0, target!.lastIndexOf(':'));
const port = Number(target!.slice(target!.lastIndexOf(':') + 1));
const rate = Number(rateText);
const seconds = Number(secondsText);
const nSources = Number(sourcesText);

const packets = await junkInitPackets(Buffer.from(keyB64!, 'base64'), 1024);
const socks: dgram.Socket[] = [];
for (let i = 0; i < nSources; i++) {
  const s = dgram.createSocket({ type: 'udp4', sendBufferSize: 1 << 20 });
  await new Promise<void>((r) => s.bind(0, `10.66.0.${1 + i}`, () => r()));
  socks.push(s);
}
let sent = 0;
const t0 = performance.now();
let done = false;
const finish = (): void => {
  if (done) return;
  done = true;
  clearInterval(timer);
  process.stdout.write(JSON.stringify({ sent, seconds: (performance.now() - t0) / 1000 }) + '\n');
  for (const s of socks) s.close();
};
// Every 2 ms, send what the rate owes by now (at most 100 ms worth per tick, so a long stall does not become a huge burst).
const timer = setInterval(() => {
  const elapsed = (performance.now() - t0) / 1000;
  if (elapsed >= seconds) return finish();
  const owed = Math.min(Math.floor(elapsed * rate) - sent, rate / 10);
  for (let i = 0; i < owed; i++) {
    socks[sent % nSources]!.send(packets[sent % packets.length]!, port, host);
    sent++;
  }
}, 2);
process.on('SIGTERM', finish);
process.stdout.write('flooding\n');
