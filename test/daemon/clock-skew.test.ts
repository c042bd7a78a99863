// A daemon whose clock is off still registers, heartbeats and talks to peers. The
// rendezvous refuses signed requests more than 5 s ahead of its clock (so that
// future-dated nonces cannot outlive honest ones in its replay cache) or 60 s old;
// the registry client learns the rendezvous clock from its signed answers and signs
// with it. The skew is real: libfaketime (Debian's faketime) shifts the daemon's clock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

const faketime = spawnSync('faketime', ['-f', '+1s', 'true']).status === 0;
const skip = faketime ? false : 'needs faketime (Debian package faketime; .ci/run installs it)';

let rdv: Rendezvous;
let work: string;
const agents: Agent[] = [];

before(async () => {
  if (!faketime) return;
  work = tmpDir();
  rdv = await startRendezvous();
});

after(async () => {
  for (const a of agents) await a.stop();
  await rdv?.kill();
});

/** `pilotctl daemon start` with the whole daemon running `offset` off (faketime's LD_PRELOAD is inherited). */
async function startSkewed(name: string, offset: string): Promise<Agent> {
  const a = new Agent(name, work);
  agents.push(a);
  const argv = ['faketime', '-f', offset, process.execPath, path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', 'daemon', 'start'];
  const r = await run([...argv, '--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0'], {
    PILOT_HOME: a.home,
    PILOT_SOCKET: a.socket,
  });
  assert.equal(r.code, 0, `daemon start with a clock ${offset} off: ${r.stderr}`);
  a.address = r.json.data.address;
  a.pid = r.json.data.pid;
  return a;
}

test('daemons with clocks 30 s fast and 90 s slow register, trust each other and ping', { skip }, async () => {
  const fast = await startSkewed('skew-fast', '+30s');
  const slow = await startSkewed('skew-slow', '-90s');
  assert.equal((await fast.ctl(['handshake', slow.address, 'clock test'])).code, 0);
  const ap = await slow.ctl(['approve', fast.address]);
  assert.equal(ap.code, 0, ap.stderr);
  const ping = await fast.ctl(['ping', slow.address, '--count', '2']);
  assert.equal(ping.code, 0, ping.stderr);
  // A restart has the rendezvous key pinned and skips hello: its first signed request is
  // refused as stale, and the signed refusal corrects the clock.
  await fast.stop();
  const again = await run(['faketime', '-f', '+30s', process.execPath, path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', 'daemon', 'start'], {
    PILOT_HOME: fast.home,
    PILOT_SOCKET: fast.socket,
  });
  assert.equal(again.code, 0, `restart with a pinned key: ${again.stderr}`);
  assert.equal(again.json.data.address, fast.address);
});
