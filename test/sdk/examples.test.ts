// Runs every example under examples/ as its own process, the way the docs say
// (PILOT_SOCKET picks the daemon), against real daemons, and checks its output.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT, run, type Agent } from '../helpers/cluster.ts';
import { startNet, trustPair, type Net } from './helpers.ts';

let net: Net;
let alpha: Agent;
let beta: Agent;
const running = new Set<ChildProcess>();

before(async () => {
  net = await startNet();
  alpha = await net.agent('ex-alpha');
  beta = await net.agent('ex-beta');
  await trustPair(alpha, beta);
});

after(async () => {
  for (const p of running) p.kill('SIGKILL');
  await net?.stop();
});

const example = (name: string): string => path.join(ROOT, 'examples', name);
// 'pilot-overlay/sdk' resolves to src/sdk/index.ts under this condition: no build needed.
const SOURCE = '--conditions=pilot-source';

/** A long-running example; resolves once a stdout line matches `ready`. */
function start(agent: Agent, args: string[], ready: RegExp): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(process.execPath, [SOURCE, ...args], { env: { ...process.env, PILOT_SOCKET: agent.socket }, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} not ready: ${out} ${err}`)), 20_000);
    const check = (): void => {
      if (!ready.test(out)) return;
      clearTimeout(timer);
      proc.stdout!.off('data', check);
      resolve({ proc, out: () => out });
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${out} ${err}`)));
  });
}

async function waitFor(out: () => string, re: RegExp, ms = 10_000): Promise<void> {
  for (const t0 = Date.now(); !re.test(out()); ) {
    if (Date.now() - t0 > ms) throw new Error(`no ${re} in: ${out()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.kill('SIGTERM');
  return exited;
}

test('examples/echo.ts: serve on one agent, send from another', async () => {
  const server = await start(alpha, [example('echo.ts'), 'serve', '7000'], /echo listening on 0:\S+ port 7000/);
  try {
    const r = await run([process.execPath, SOURCE, example('echo.ts'), 'ex-alpha', '7000', 'hello', 'echo'], { PILOT_SOCKET: beta.socket }, 30_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `reply from ${alpha.address}: hello echo`);
    await waitFor(server.out, new RegExp(`connection from ${beta.address.replaceAll('.', '\\.')}`));
    // an error is reported with its code
    const bad = await run([process.execPath, SOURCE, example('echo.ts'), 'ex-alpha', '7999'], { PILOT_SOCKET: beta.socket }, 30_000);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error CONNECTION_REFUSED: /);
  } finally {
    assert.equal(await stop(server.proc), 0);
  }
});

test('examples/chat.ts: lines go both ways, Ctrl-D hangs up', async () => {
  const host = await start(alpha, [example('chat.ts'), 'listen', '7001'], /chat listening on/);
  try {
    const guest = await start(beta, [example('chat.ts'), 'ex-alpha', '7001'], /\* connected to/);
    await waitFor(host.out, /joined/);
    guest.proc.stdin!.write('hello from beta\n');
    await waitFor(host.out, new RegExp(`\\[${beta.address.replaceAll('.', '\\.')}\\] hello from beta`));
    host.proc.stdin!.write('hi beta, alpha here\n');
    await waitFor(guest.out, new RegExp(`\\[${alpha.address.replaceAll('.', '\\.')}\\] hi beta, alpha here`));
    const exited = new Promise<number | null>((r) => guest.proc.once('exit', (code) => r(code)));
    guest.proc.stdin!.end(); // Ctrl-D
    assert.equal(await exited, 0);
    assert.match(guest.out(), /\* bye/);
    await waitFor(host.out, /left/);
  } finally {
    assert.equal(await stop(host.proc), 0);
  }
});

test('examples/http.ts: fetch and http.get reach an http.Server on a virtual port', async () => {
  const server = await start(alpha, [example('http.ts'), 'serve', '8080'], /http listening on/);
  try {
    const r = await run([process.execPath, SOURCE, example('http.ts'), 'get', 'ex-alpha', '8080', '/status'], { PILOT_SOCKET: beta.socket }, 30_000);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const expected = JSON.stringify({ hello: 'from ex-alpha', you: beta.address, path: '/status' });
    assert.deepEqual(lines, [`fetch 200: ${expected}`, `http.get 200: ${expected}`]);
  } finally {
    assert.equal(await stop(server.proc), 0);
  }
});

test('examples/mcp.ts: an MCP client calls tools of an MCP server on another agent', async () => {
  const server = await start(alpha, [example('mcp.ts'), 'serve', '3000'], /mcp listening on/);
  try {
    const r = await run([process.execPath, SOURCE, example('mcp.ts'), 'call', 'ex-alpha', '3000'], { PILOT_SOCKET: beta.socket }, 30_000);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['tools: add, whoami', 'add(2, 3) = 5', `whoami = ${beta.address}`]);
  } finally {
    assert.equal(await stop(server.proc), 0);
  }
});
