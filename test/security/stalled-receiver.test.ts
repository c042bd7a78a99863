// Item of 10: a sender must not hang on a receiver that stopped reading. The
// staller is a real daemon whose port 1001 is served by an SDK listener that
// accepts the file header, answers {ok:true} and then never reads again (its
// transport keeps acknowledging packets, it just grants no more credit). The
// sender (stallTimeoutMs 3000 in its services.json) must fail with TIMEOUT
// within a few seconds of the last progress, and keep working afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { connect } from '../../src/sdk/index.ts';
import type { PilotNode } from '../../src/sdk/node.ts';
import { encodeFrame } from '../../src/services/framing.ts';
import { startAgent, trustEachOther } from '../services/helpers.ts';
import { startRendezvous, tmpDir, type Agent, type Rendezvous } from '../helpers/cluster.ts';

const STALL_MS = 3000;
const FILE_MB = 48;
let rdv: Rendezvous;
let work: string;
let sender: Agent;
let receiver: Agent; // the built-in file service: reads everything (baseline)
let staller: Agent; // port 1001 answered by the listener below, which stops reading
let stallerNode: PilotNode;
let file: string;
let headers = 0;

before(async () => {
  work = tmpDir('pilot-stall-');
  rdv = await startRendezvous();
  sender = await startAgent(rdv, work, 'stall-sender', [], { stallTimeoutMs: STALL_MS });
  receiver = await startAgent(rdv, work, 'stall-receiver');
  staller = await startAgent(rdv, work, 'stall-staller', [], { messages: false, files: false });
  await trustEachOther(receiver, sender);
  await trustEachOther(staller, sender);
  stallerNode = await connect({ socket: staller.socket });
  await stallerNode.listen(1001, (s) => {
    s.on('error', () => {});
    s.once('data', () => {
      // the header arrived: accept it like the real service, then never read again
      headers++;
      s.pause();
      s.write(encodeFrame({ ok: true, offset: 0 }));
    });
  });
  file = path.join(work, 'big.bin');
  fs.writeFileSync(file, crypto.randomBytes(FILE_MB * 1024 * 1024));
});

after(async () => {
  await stallerNode?.close();
  for (const a of [sender, receiver, staller]) await a?.stop();
  await rdv?.kill();
  fs.rmSync(work, { recursive: true, force: true });
});

test(`send-file to a receiver that stops reading fails with TIMEOUT ~${STALL_MS / 1000} s after the last progress`, async () => {
  // baseline, same run: the same file to a receiver that reads
  const t0 = Date.now();
  const ok = await sender.ctl(['send-file', receiver.address, file], 120_000);
  const baselineMs = Date.now() - t0;
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.json.data.bytes, FILE_MB * 1024 * 1024);

  const t1 = Date.now();
  const r = await sender.ctl(['send-file', staller.address, file], 60_000);
  const stalledMs = Date.now() - t1;
  assert.equal(headers, 1, 'the staller accepted the header');
  assert.notEqual(r.code, -1, 'pilotctl was still waiting after 60 s (killed)');
  assert.equal(r.code, 1, r.stdout);
  assert.equal(r.json?.code, 'TIMEOUT', r.stderr);
  assert.match(r.json.message, /stopped reading/);
  assert.match(r.json.hint, /stallTimeoutMs/);
  // the stall starts once the receiver's buffers are full (well under a second on loopback)
  assert.ok(stalledMs < STALL_MS + 12_000, `failed only after ${stalledMs} ms`);
  assert.ok(stalledMs >= STALL_MS, `failed before the stall timeout: ${stalledMs} ms`);
  console.log(
    `# stalled-receiver: baseline send-file ${FILE_MB} MiB to a reading receiver ${baselineMs} ms; to a staller: TIMEOUT after ${stalledMs} ms (stallTimeoutMs ${STALL_MS})`,
  );

  // the sender is not stuck: the next send goes through
  const after = await sender.ctl(['send-message', receiver.address, '--data', 'still here'], 60_000);
  assert.equal(after.code, 0, after.stderr);
});
