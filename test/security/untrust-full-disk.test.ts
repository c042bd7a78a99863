// Hole 9, trust: with the disk filled to the last byte by something else,
// `untrust` still works: the peer is cut at once (its open stream ends, its
// messages are refused), and trust.json catches up when space comes back.
// Real daemons, the revoking node's PILOT_HOME on a real 16 MiB tmpfs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Agent } from '../helpers/cluster.ts';
import { ask, fillDisk, freeBytes, message, type QuotaSetup, startQuotaSetup } from './quota-helpers.ts';

let setup: QuotaSetup;
let a: Agent;
let b: Agent;

before(async () => {
  setup = await startQuotaSetup('uf', { tmpfsMiB: 16 });
  ({ a, b } = setup);
});

after(async () => {
  await setup?.stop();
});

const trustFileLists = (peer: string): boolean =>
  JSON.parse(fs.readFileSync(path.join(b.home, 'trust.json'), 'utf8')).trusted.some((t: { peer: string }) => t.peer === peer);

test('untrust on a full disk cuts the peer at once; trust.json follows once there is room', async () => {
  // alpha holds a subscription (an open stream) to beta
  const { answer, stream } = await ask(a, b, 1002, { op: 'subscribe', topic: 'x.*' }, false);
  assert.equal(answer.ok, true, JSON.stringify(answer));
  assert.equal(trustFileLists(a.address), true);
  const filler = path.join(b.home, 'filler.bin');
  const n = fillDisk(filler);
  console.log(`# filled beta's disk with ${(n / 1024 / 1024).toFixed(1)} MiB: ${freeBytes(b.home)} bytes free`);
  assert.equal(freeBytes(b.home), 0);
  const cut = stream.reader.next(1).then(
    (v) => (v === null ? 'ended' : 'data'),
    () => 'reset',
  );
  const t0 = Date.now();
  const u = await b.ctl(['untrust', a.address]);
  assert.equal(u.code, 0, `untrust must work on a full disk: ${u.stdout} ${u.stderr}`);
  assert.equal(u.json.data.status, 'revoked');
  assert.notEqual(await Promise.race([cut, new Promise((res) => setTimeout(() => res('still open'), 15_000))]), 'still open', "alpha's open stream is cut");
  console.log(`# untrust answered and the stream was cut after ${Date.now() - t0} ms`);
  stream.socket.destroy();
  const m = await message(a, b, 'after untrust');
  assert.equal(m.code, 1, 'alpha cannot reach beta any more');
  const t = await b.ctl(['trust']);
  assert.equal(
    t.json.data.trusted.some((x: { peer: string }) => x.peer === a.address),
    false,
  );
  // the revocation was written in place (same blocks) or is retried: either way the file is valid JSON, and it says so once room is back
  fs.rmSync(filler);
  for (let i = 0; i < 100 && trustFileLists(a.address); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(trustFileLists(a.address), false, 'trust.json no longer lists alpha');
  console.log(
    `# trust.json ${/trust.json not written/.test(fs.readFileSync(path.join(b.home, 'pilot.log'), 'utf8')) ? 'was written by the retry once room came back' : 'was rewritten in place on the full disk'}`,
  );
  // the daemon kept running through it
  assert.equal((await b.ctl(['info'])).code, 0);
});
