// The Python package (python/pilot) against real daemons: this file starts a
// rendezvous and three daemons with the real pilotctl (as the SDK tests do),
// a TypeScript echo and HTTP server on one of them, and runs the Python tests
// (python/tests, stdlib unittest) with Debian's /usr/bin/python3. The Python
// tests reach back into TypeScript through test/python/ts-peer.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connect, serveHttp, type PilotNode, type PilotServer, type HttpService } from '../../src/sdk/index.ts';
import { ROOT, type Agent } from '../helpers/cluster.ts';
import { startNet, trustPair, type Net } from '../sdk/helpers.ts';

const PYTHON = '/usr/bin/python3';
const skip = fs.existsSync(PYTHON) ? false : `${PYTHON} is not installed (Debian package python3)`;

let net: Net;
let alpha: Agent;
let beta: Agent;
let gamma: Agent;
let na: PilotNode;
let echo: PilotServer;
let web: HttpService;

before(async () => {
  if (skip) return;
  net = await startNet();
  [alpha, beta, gamma] = await Promise.all([net.agent('py-alpha'), net.agent('py-beta'), net.agent('py-gamma')]);
  await trustPair(alpha, beta);
  na = await connect({ socket: alpha.socket });
  echo = await na.listen(7100, (s) => s.pipe(s));
  web = await serveHttp(na, 8100, (req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`ts says hi to ${req.url}`);
  });
});

after(async () => {
  await web?.close();
  await echo?.close();
  await na?.close();
  await net?.stop();
});

function runPython(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(PYTHON, args, { cwd: path.join(ROOT, 'python'), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

test('python/tests (unittest) pass against real daemons', { skip }, async () => {
  const env = {
    PILOT_TEST_A_SOCKET: alpha.socket,
    PILOT_TEST_B_SOCKET: beta.socket,
    PILOT_TEST_C_SOCKET: gamma.socket,
    PILOT_TEST_A_ADDRESS: alpha.address,
    PILOT_TEST_B_ADDRESS: beta.address,
    PILOT_TEST_C_ADDRESS: gamma.address,
    PILOT_TEST_TS_ECHO_PORT: '7100',
    PILOT_TEST_TS_HTTP_PORT: '8100',
    PILOT_TEST_NODE: process.execPath,
    PILOT_TEST_ROOT: ROOT,
    PILOT_TEST_WORK: net.work,
    PYTHONDONTWRITEBYTECODE: '1',
  };
  const r = await runPython(
    process.env.PILOT_PY_ARGS ? process.env.PILOT_PY_ARGS.split(' ') : ['-m', 'unittest', 'discover', '-v', '-s', 'tests', '-t', '.'],
    env,
  );
  console.log(r.out.replace(/^/gm, '# '));
  assert.equal(r.code, 0, r.out);
});
