// Port 1001 files: a 50 MiB transfer verified by hash, hostile names, no
// overwrite, resume after a broken transfer. Real daemons on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { openPipe } from '../../src/ipc/client.ts';
import { ByteReader, encodeFrame } from '../../src/services/framing.ts';
import { startPair, sleep, type Pair } from './helpers.ts';

let p: Pair;
let src: string;

before(async () => {
  p = await startPair('file');
  src = fs.mkdtempSync(path.join(p.work, 'src-'));
});

after(async () => {
  await p?.stop();
});

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
const shaFile = async (f: string): Promise<string> => {
  const h = crypto.createHash('sha256');
  for await (const c of fs.createReadStream(f)) h.update(c as Buffer);
  return h.digest('hex');
};

/** Send a file the way a hostile peer would: our own header, raw, through a dial pipe. */
async function rawFile(name: unknown, body: Buffer): Promise<Record<string, any>> {
  const { socket } = await openPipe('dial', { target: p.b.address, port: 1001 }, p.a.socket);
  const reader = new ByteReader(socket);
  socket.write(encodeFrame({ type: 'file', name, size: body.length, sha256: sha(body) }));
  const accept = (await reader.readFrame()) as Record<string, unknown>;
  assert.equal(accept.ok, true, JSON.stringify(accept));
  socket.end(body);
  const done = (await reader.readFrame()) as Record<string, any>;
  socket.destroy();
  return done;
}

test('a 50 MiB file arrives intact, verified by sha256, with the sender recorded', async () => {
  const file = path.join(src, 'big.bin');
  const data = crypto.randomBytes(50 * 1024 * 1024);
  fs.writeFileSync(file, data);
  const t0 = Date.now();
  const r = await p.a.ctl(['send-file', p.b.address, file], 300_000);
  const ms = Date.now() - t0;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.data.name, 'big.bin');
  assert.equal(r.json.data.bytes, data.length);
  assert.equal(r.json.data.sha256, sha(data));
  console.log(`# 50 MiB send-file: ${ms} ms end to end (pilotctl included), ${r.json.data.mbPerSec} MB/s transfer`);
  const got = path.join(p.b.home, 'received', 'big.bin');
  assert.equal(await shaFile(got), sha(data));
  const list = await p.b.ctl(['received']);
  assert.equal(list.code, 0, list.stderr);
  const entry = list.json.data.files.find((f: { name: string }) => f.name === 'big.bin');
  assert.equal(entry.from, p.a.address);
  assert.equal(entry.size, data.length);
  assert.equal(entry.sha256, sha(data));
  // nothing left behind in the partials directory
  assert.deepEqual(fs.readdirSync(path.join(p.b.home, 'incoming')), []);
});

test('the same name twice never overwrites: a numeric suffix', async () => {
  const file = path.join(src, 'report.txt');
  fs.writeFileSync(file, 'first');
  assert.equal((await p.a.ctl(['send-file', p.b.address, file])).code, 0);
  fs.writeFileSync(file, 'second');
  const r = await p.a.ctl(['send-file', p.b.address, file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.data.name, 'report-1.txt');
  const dir = path.join(p.b.home, 'received');
  assert.equal(fs.readFileSync(path.join(dir, 'report.txt'), 'utf8'), 'first');
  assert.equal(fs.readFileSync(path.join(dir, 'report-1.txt'), 'utf8'), 'second');
});

test('hostile names land safely inside received/ and never overwrite', async () => {
  const dir = path.join(p.b.home, 'received');
  const before = new Set(fs.readdirSync(p.b.home));
  const cases: Array<[unknown, RegExp]> = [
    ['../../etc/passwd', /^passwd$/],
    ['../../../../../../../../tmp/pilot-escape', /^pilot-escape$/],
    ['/etc/shadow', /^shadow$/],
    ['C:\\Windows\\System32\\evil.exe', /^evil\.exe$/],
    ['a\u0000b.txt', /^a_b\.txt$/],
    ['..', /^file$/],
    ['.bashrc', /^bashrc$/],
    ['', /^file(-\d+)?$/],
    [undefined, /^file-\d+$/],
    ['x'.repeat(5000) + '.txt', /^x{96}\.txt$/],
    ['spaces and ünïcödé;rm -rf $HOME`.sh', /^spaces_and_[_a-z]+rm_-rf__HOME_\.sh$/],
    ['report.txt', /^report-2\.txt$/], // taken twice already
  ];
  for (const [name, want] of cases) {
    const body = crypto.randomBytes(100);
    const r = await rawFile(name, body);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.match(r.name, want, `name ${JSON.stringify(name)} became ${r.name}`);
    // exactly where it should be, with exactly the bytes sent
    assert.deepEqual(fs.readFileSync(path.join(dir, r.name)), body);
  }
  assert.equal(fs.existsSync('/tmp/pilot-escape'), false);
  assert.equal(fs.readFileSync(path.join(dir, 'report.txt'), 'utf8'), 'first');
  // nothing new next to received/ in $PILOT_HOME
  const added = fs.readdirSync(p.b.home).filter((n) => !before.has(n));
  assert.deepEqual(added, []);
  for (const n of fs.readdirSync(dir)) assert.ok(fs.lstatSync(path.join(dir, n)).isFile(), n);
});

test('a broken transfer resumes where it stopped and is still verified', async () => {
  const file = path.join(src, 'resume.bin');
  const data = crypto.randomBytes(40 * 1024 * 1024);
  fs.writeFileSync(file, data);
  // start through the raw IPC socket and drop the connection mid-way (what Ctrl-C does)
  const sock = net.connect(p.a.socket);
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(JSON.stringify({ id: 1, method: 'send_file', params: { target: p.b.address, path: file } }) + '\n');
  let buf = '';
  const cutAt = await new Promise<number>((resolve, reject) => {
    sock.on('data', (c: Buffer) => {
      buf += c.toString();
      for (const l of buf.split('\n').slice(0, -1)) {
        const m = JSON.parse(l);
        if (m.event === 'progress' && m.data.sent >= 8 * 1024 * 1024) {
          sock.destroy();
          resolve(m.data.sent);
          return;
        }
        if (m.ok !== undefined) reject(new Error(`finished before the cut: ${l}`));
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
  });
  assert.ok(cutAt < data.length);
  // the receiver keeps the partial
  const partDir = path.join(p.b.home, 'incoming');
  let partSize = 0;
  for (let i = 0; i < 50 && partSize === 0; i++) {
    await sleep(100);
    const parts = fs.readdirSync(partDir);
    partSize = parts.length === 1 ? fs.statSync(path.join(partDir, parts[0]!)).size : 0;
  }
  assert.ok(partSize > 0, 'a partial file is kept');
  await sleep(500);
  const r = await p.a.ctl(['send-file', p.b.address, file], 300_000);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.json.data.resumedFrom > 0, `resumed from ${r.json.data.resumedFrom}`);
  console.log(`# cut at ${cutAt} bytes sent, receiver had ${partSize}, resumed from ${r.json.data.resumedFrom}`);
  assert.equal(await shaFile(path.join(p.b.home, 'received', r.json.data.name)), sha(data));
  assert.deepEqual(fs.readdirSync(partDir), []);
});

test('received --clear deletes the files; an untrusted node cannot send one', async () => {
  const c = await p.b.ctl(['received', '--clear']);
  assert.equal(c.code, 0, c.stderr);
  assert.ok(c.json.data.cleared >= 3);
  assert.equal((await p.b.ctl(['received'])).json.data.files.length, 0);
  const s = await p.stranger();
  const file = path.join(src, 'report.txt');
  const r = await s.ctl(['send-file', p.b.address, file]);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'NOT_TRUSTED');
  assert.equal((await p.b.ctl(['received'])).json.data.files.length, 0);
});

test('a missing file or a directory is refused locally with a code', async () => {
  const r = await p.a.ctl(['send-file', p.b.address, path.join(src, 'nope')]);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'NOT_FOUND');
  const d = await p.a.ctl(['send-file', p.b.address, src]);
  assert.equal(d.code, 1);
  assert.equal(d.json.code, 'BAD_ARGUMENT');
});
