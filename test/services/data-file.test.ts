// --data-file <path|-> for send-message and publish, through the real pilotctl
// and real daemons: files, stdin, binary, and the size cap with its code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, type Agent, type CtlResult } from '../helpers/cluster.ts';
import { startPair, type Pair } from './helpers.ts';

let p: Pair;

before(async () => {
  p = await startPair('dfile');
});

after(async () => {
  await p?.stop();
});

/** pilotctl --json with `input` on its stdin. */
function ctlStdin(agent: Agent, args: string[], input: Buffer): Promise<CtlResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', ...args], {
      env: { ...process.env, PILOT_HOME: agent.home, PILOT_SOCKET: agent.socket },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.stdin!.on('error', () => {}); // a refused oversized input closes stdin early
    proc.stdin!.end(input);
    proc.on('close', (code) => {
      const text = (code === 0 ? stdout : stderr).trim().split('\n').pop() ?? '';
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

test('send-message --data-file: a text file, stdin, and raw bytes with --type binary', async () => {
  const file = path.join(p.work, 'msg.txt');
  fs.writeFileSync(file, 'from a file\nwith two lines\n');
  assert.equal((await p.a.ctl(['send-message', p.b.address, '--data-file', file])).code, 0);
  const viaStdin = await ctlStdin(p.a, ['send-message', p.b.address, '--data-file', '-', '--type', 'json'], Buffer.from('{"from":"stdin"}'));
  assert.equal(viaStdin.code, 0, viaStdin.stderr);
  const bin = crypto.randomBytes(3000);
  const binFile = path.join(p.work, 'blob.bin');
  fs.writeFileSync(binFile, bin);
  assert.equal((await p.a.ctl(['send-message', p.b.address, '--data-file', binFile, '--type', 'binary'])).code, 0);
  const inbox = (await p.b.ctl(['inbox'])).json.data.messages;
  assert.equal(inbox.length, 3);
  assert.equal(inbox[0].data, 'from a file\nwith two lines\n');
  assert.deepEqual(inbox[1].json, { from: 'stdin' });
  assert.equal(inbox[2].encoding, 'base64');
  assert.deepEqual(Buffer.from(inbox[2].data, 'base64'), bin);
});

test('send-message --data-file refuses: not UTF-8 as text, both flags, a missing file, over the cap', async () => {
  const binFile = path.join(p.work, 'garbage.bin');
  fs.writeFileSync(binFile, Buffer.from([0xff, 0xfe, 0xfd]));
  const notText = await p.a.ctl(['send-message', p.b.address, '--data-file', binFile]);
  assert.equal(notText.json.code, 'BAD_ARGUMENT');
  assert.match(notText.json.hint, /--type binary/);
  assert.equal((await p.a.ctl(['send-message', p.b.address, '--data', 'x', '--data-file', binFile])).json.code, 'BAD_ARGUMENT');
  assert.equal((await p.a.ctl(['send-message', p.b.address])).json.code, 'BAD_ARGUMENT');
  assert.equal((await p.a.ctl(['send-message', p.b.address, '--data-file', path.join(p.work, 'nope')])).json.code, 'NOT_FOUND');
  // over the cap (64 MiB): refused from the file size, nothing read
  const big = path.join(p.work, 'big.bin');
  const fd = fs.openSync(big, 'w');
  fs.ftruncateSync(fd, 64 * 1024 * 1024 + 1);
  fs.closeSync(fd);
  const tooBig = await p.a.ctl(['send-message', p.b.address, '--data-file', big, '--type', 'binary']);
  assert.equal(tooBig.json.code, 'FRAME_TOO_LARGE');
  assert.match(tooBig.json.hint, /send-file/);
  fs.rmSync(big);
});

test('publish --data-file: from a file and from stdin; more than 64 KiB on stdin is refused', async () => {
  const sub = p.b.ctl(['subscribe', p.b.address, 'df.*', '--count', '2', '--timeout', '20s']);
  await new Promise((r) => setTimeout(r, 1500));
  const file = path.join(p.work, 'event.json');
  fs.writeFileSync(file, '{"t":21.5}');
  assert.equal((await p.a.ctl(['publish', p.b.address, 'df.file', '--data-file', file])).code, 0);
  const pub = await ctlStdin(p.a, ['publish', p.b.address, 'df.stdin', '--data-file', '-'], Buffer.from('piped event'));
  assert.equal(pub.code, 0, pub.stderr);
  const r = await sub;
  assert.equal(r.code, 0, r.stderr);
  const got = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((x) => x.event)
    .map((x) => x.data);
  assert.deepEqual(
    got.map((e: { topic: string; data: string }) => [e.topic, e.data]),
    [
      ['df.file', '{"t":21.5}'],
      ['df.stdin', 'piped event'],
    ],
  );
  const tooBig = await ctlStdin(p.a, ['publish', p.b.address, 'df.big', '--data-file', '-'], Buffer.alloc(64 * 1024 + 1, 'x'));
  assert.equal(tooBig.code, 1);
  assert.equal(tooBig.json.code, 'FRAME_TOO_LARGE');
});
