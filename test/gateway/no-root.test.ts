// The gateway without root, for real: the gateway agent's daemon and CLI run
// as `nobody` (setpriv drops root and every capability) in a namespace we
// create. Ports below 1024 give an error naming the fixes; the 127.4.0.0/16
// pool and --port-offset work with no privilege at all; an address outside
// 127/8 is refused with the fix; and `sudo pilotctl gateway start` (root CLI,
// user daemon) makes the subnet local for the daemon and takes it back on stop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir, type CtlResult, type Rendezvous } from '../helpers/cluster.ts';
import { Lab, netnsSupport } from '../helpers/netns.ts';

const support = netnsSupport();
const skip = !support.ok ? support.reason : spawnSync('which', ['setpriv']).status !== 0 ? 'needs setpriv (util-linux)' : false;
const NOBODY = 65534;

let lab: Lab;
let ns: string;
let rdv: Rendezvous;
let work: string;
let server: Agent;
let home: string; // the unprivileged agent's PILOT_HOME
let socket: string;
let address = '';
let fileHash = '';
let http: ChildProcess | undefined;

/** pilotctl --json as the unprivileged user (or as root with `root`, as `sudo` runs it: SUDO_UID names the user), against the unprivileged daemon. */
function ctl(args: string[], root = false): Promise<CtlResult> {
  const drop = root ? [] : ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];
  return run(['ip', 'netns', 'exec', ns, ...drop, process.execPath, path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', ...args], {
    PILOT_HOME: home,
    PILOT_SOCKET: socket,
    ...(root ? { SUDO_UID: String(NOBODY) } : {}),
  });
}

/** curl inside the namespace, body hashed as bytes (pipefail: a failed curl fails the whole thing). */
async function fetchHash(url: string): Promise<{ code: number; hash: string; stderr: string }> {
  const r = await run(['bash', '-c', `set -o pipefail; ip netns exec ${ns} curl -sS --fail --max-time 30 ${url} | sha256sum`], {}, 40_000);
  return { code: r.code, hash: r.stdout.split(' ')[0] ?? '', stderr: r.stderr };
}
const localRoutes = (): string => lab.exec(ns, ['ip', '-4', 'route', 'show', 'table', 'local']);

before(async () => {
  if (skip) return;
  lab = new Lab();
  ns = lab.ns('gwnr');
  work = tmpDir('pilot-gwnr-');
  fs.chmodSync(work, 0o755); // nobody must reach its home below
  const www = path.join(work, 'www');
  fs.mkdirSync(www);
  const data = crypto.randomBytes(1024 * 1024);
  fs.writeFileSync(path.join(www, 'f.bin'), data);
  fileHash = crypto.createHash('sha256').update(data).digest('hex');
  rdv = await startRendezvous({ netns: ns, listen: '127.0.0.1:0' });
  server = new Agent('nr-server', work, ns);
  await server.start(['--registry', rdv.addr, '--email', 'nr-server@example.com', '--hostname', 'nr-server', '--listen', '127.0.0.1:0']);
  http = spawn('ip', ['netns', 'exec', ns, 'python3', '-m', 'http.server', '8080', '--bind', '127.0.0.1', '--directory', www], { stdio: 'ignore' });
  assert.equal((await server.ctl(['expose', '80', '127.0.0.1:8080'])).code, 0);

  home = path.join(work, 'nr-user');
  fs.mkdirSync(home, { mode: 0o700 });
  fs.chownSync(home, NOBODY, NOBODY);
  socket = path.join(home, 'pilot.sock');
  const st = await ctl(['daemon', 'start', '--registry', rdv.addr, '--email', 'nr-user@example.com', '--hostname', 'nr-user', '--listen', '127.0.0.1:0']);
  assert.equal(st.code, 0, st.stderr + st.stdout);
  address = st.json.data.address;
  const pid = st.json.data.pid as number;
  assert.equal(fs.statSync(`/proc/${pid}`).uid, NOBODY, 'the daemon really runs as nobody');
  assert.equal((await ctl(['handshake', server.address])).code, 0);
  assert.equal((await server.ctl(['approve', address])).code, 0);
  for (let i = 0; i < 50 && (await run(['ip', 'netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', 'http://127.0.0.1:8080/f.bin'])).code !== 0; i++)
    await new Promise((r) => setTimeout(r, 100));
});

after(async () => {
  if (skip) return;
  http?.kill('SIGKILL');
  await ctl(['daemon', 'stop']).catch(() => undefined);
  await server?.stop();
  await rdv?.kill();
  lab.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
});

test('without root, a port below 1024 is refused with an error naming the fixes, leaving nothing behind', { skip }, async () => {
  const list0 = await ctl(['gateway', 'list']);
  assert.equal(list0.json.data.privileges.netAdmin, false);
  assert.equal(list0.json.data.privileges.bindLow, false);
  const r = await ctl(['gateway', 'start', '--ports', '80', server.address]);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'PERMISSION_DENIED');
  assert.match(r.json.message, /127\.4\.0\.1:80: ports below 1024 need root or CAP_NET_BIND_SERVICE/);
  assert.match(r.json.hint, /sudo pilotctl daemon start/);
  assert.match(r.json.hint, /setcap cap_net_bind_service/);
  assert.match(r.json.hint, /--port-offset 8000 \(virtual 80 -> local 8080\)/);
  assert.match(r.json.hint, /--ports 8080=80/);
  assert.equal((await ctl(['gateway', 'list'])).json.data.mappings.length, 0);
});

test('without root the gateway maps into 127.4.0.0/16 (no alias) and --port-offset keeps ports unprivileged', { skip }, async () => {
  const r = await ctl(['gateway', 'start', '--port-offset', '8000', '--ports', '80', server.address]);
  assert.equal(r.code, 0, r.stderr);
  const m = r.json.data.mappings[0];
  assert.equal(m.ip, '127.4.0.1');
  assert.deepEqual(m.ports, [{ local: 8080, virtual: 80 }]);
  assert.equal(m.alias, 'none');
  const got = await fetchHash('http://127.4.0.1:8080/f.bin');
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.hash, fileHash);
});

test('without root an address outside 127/8 is refused with the fix', { skip }, async () => {
  const r = await ctl(['gateway', 'map', server.address, '10.4.0.5', '--ports', '8081=80']);
  assert.equal(r.code, 1);
  assert.equal(r.json.code, 'PERMISSION_DENIED');
  assert.match(r.json.message, /cannot make 10\.4\.0\.5 a local address/);
  assert.match(r.json.hint, /sudo/);
  assert.match(r.json.hint, /--subnet 127\.4\.0\.0\/16/);
  assert.doesNotMatch(lab.exec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'lo']), /10\.4\.0\.5/);
});

test('sudo pilotctl gateway start with a user daemon: the root CLI makes 10.4.0.0/16 local; gateway stop takes it back', { skip }, async () => {
  assert.equal((await ctl(['gateway', 'stop'])).code, 0);
  // Port 80 still needs the daemon itself to be privileged: refused, and the route is taken back.
  const low = await ctl(['gateway', 'start', '--ports', '80', server.address], true);
  assert.equal(low.code, 1);
  assert.match(low.json.message, /10\.4\.0\.1:80: ports below 1024/);
  assert.doesNotMatch(localRoutes(), /10\.4\.0\.0\/16/);

  const r = await ctl(['gateway', 'start', '--ports', '8080=80', server.address], true);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.json.data.mappings[0].ip, '10.4.0.1');
  assert.match(localRoutes(), /local 10\.4\.0\.0\/16 dev lo proto 157/);
  const got = await fetchHash('http://10.4.0.1:8080/f.bin');
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.hash, fileHash);
  const stop = await ctl(['gateway', 'stop'], true);
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(stop.json.data.routesRemoved, ['10.4.0.0/16']);
  assert.doesNotMatch(localRoutes(), /10\.4\.0\.0\/16/);
});
