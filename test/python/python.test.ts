// The Python package (python/pilot) against real daemons: this file starts a
// rendezvous and three daemons with the real pilotctl (as the SDK tests do),
// a TypeScript echo and HTTP server on one of them, and runs the Python tests
// (python/tests, stdlib unittest) with Debian's /usr/bin/python3. The Python
// tests reach back into TypeScript through test/python/ts-peer.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { connect, mcpConnect, serveHttp, type PilotNode, type PilotServer, type HttpService } from '../../src/sdk/index.ts';
import { ROOT, type Agent } from '../helpers/cluster.ts';
import { startNet, trustPair, type Net } from '../sdk/helpers.ts';

/** Debian's python3 (what CI installs); PILOT_TEST_PYTHON runs the same tests with another one (e.g. 3.10, the oldest supported). */
const PYTHON = process.env.PILOT_TEST_PYTHON ?? '/usr/bin/python3';
const skip = fs.existsSync(PYTHON) ? false : `${PYTHON} is not installed (Debian package python3)`;

let net: Net;
let alpha: Agent;
let beta: Agent;
let gamma: Agent;
let na: PilotNode;
let echo: PilotServer;
let web: HttpService;
/** The venv of the quickstart test, made while the other tests run (creating one with pip takes seconds). */
let venv: Promise<{ dir: string; made: { code: number; out: string }; pip?: { code: number; out: string } }>;
const running = new Set<ChildProcess>();

before(async () => {
  if (skip) return;
  net = await startNet();
  venv = (async () => {
    const dir = path.join(net.work, 'v');
    const made = await runPython(['-m', 'venv', dir], {}, 120_000, { cwd: net.work });
    if (made.code !== 0) return { dir, made };
    // No index and no local wheel directory: the install must need nothing from the network.
    const pip = await runPython(['install', path.join(ROOT, 'python')], { PIP_NO_INDEX: '1', PIP_FIND_LINKS: undefined }, 120_000, {
      python: path.join(dir, 'bin/pip'),
      cwd: net.work,
    });
    return { dir, made, pip };
  })();
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
  for (const p of running) p.kill('SIGKILL');
  await venv?.catch(() => {});
  await web?.close();
  await echo?.close();
  await na?.close();
  await net?.stop();
});

function runPython(
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs = 120_000,
  opts: { python?: string; cwd?: string } = {},
): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    const p = spawn(opts.python ?? PYTHON, args, {
      cwd: opts.cwd ?? path.join(ROOT, 'python'),
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let out = '';
    p.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      stdout += c.toString();
    });
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out, stdout });
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

/** A long-running Python process; resolves once its stdout matches `ready`. */
function startPython(args: string[], env: Record<string, string>, ready: RegExp): Promise<ChildProcess> {
  const p = spawn(PYTHON, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(p);
  p.once('exit', () => running.delete(p));
  let out = '';
  p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready: ${out}`)), 20_000);
    p.stdout!.on('data', () => {
      if (!ready.test(out)) return;
      clearTimeout(timer);
      resolve(p);
    });
    p.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
}

test('examples/python/mcp_bridge.py: an MCP host calls a tool of a stdio server on another agent, both ends bridged', { skip }, async () => {
  const bridge = path.join(ROOT, 'examples/python/mcp_bridge.py');
  const server = await startPython(
    [bridge, 'serve', '3300', '--', process.execPath, path.join(ROOT, 'test/python/mcp-stdio-server.ts')],
    { PILOT_SOCKET: alpha.socket, PYTHONPATH: path.join(ROOT, 'python') },
    /mcp bridge: .* port 3300/,
  );
  try {
    // The host launches the bridge as its stdio server (as an MCP host config would).
    const host = new Client({ name: 'py-bridge-host', version: '1.0.0' });
    await host.connect(
      new StdioClientTransport({
        command: PYTHON,
        args: [bridge, 'connect', 'py-alpha', '3300'],
        env: { ...process.env, PILOT_SOCKET: beta.socket, PYTHONPATH: path.join(ROOT, 'python') } as Record<string, string>,
      }),
    );
    assert.deepEqual(
      (await host.listTools()).tools.map((t) => t.name),
      ['add'],
    );
    const r = await host.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
    assert.deepEqual(r.content, [{ type: 'text', text: '5' }]);
    await host.close();
    // The TypeScript SDK's MCP transport reaches the bridged server too.
    const nb = await connect({ socket: beta.socket });
    try {
      const ts = new Client({ name: 'ts-client', version: '1.0.0' });
      await ts.connect(await mcpConnect(nb, 'py-alpha', 3300));
      const r2 = await ts.callTool({ name: 'add', arguments: { a: 40, b: 2 } });
      assert.deepEqual(r2.content, [{ type: 'text', text: '42' }]);
      await ts.close();
    } finally {
      await nb.close();
    }
  } finally {
    server.kill('SIGTERM');
  }
});

test("README's Python quickstart runs after `python3 -m venv v && v/bin/pip install ./python`, offline", { skip }, async (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const block = /## Python[\s\S]*?```python\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'README has a ```python block under ## Python');
  assert.equal(block, fs.readFileSync(path.join(ROOT, 'examples/python/quickstart.py'), 'utf8'), 'the README quickstart is examples/python/quickstart.py');
  assert.ok(block.trim().split('\n').length <= 10, 'ten lines');
  const { dir, made, pip } = await venv;
  if (made.code !== 0 && /ensurepip|python3-venv/.test(made.out)) return t.skip(`no venv with pip here (Debian package python3-venv): ${made.out.trim()}`);
  assert.equal(made.code, 0, made.out);
  assert.equal(pip?.code, 0, pip?.out);
  assert.match(pip!.out, /Successfully installed pilot-overlay-0\.1\.0/);
  // gamma runs the quickstart towards alpha (by address: alpha is private), which asked gamma for trust already.
  const hs = await alpha.ctl(['handshake', gamma.address, 'quickstart test']);
  assert.equal(hs.code, 0, hs.stderr);
  const q = await runPython([path.join(ROOT, 'examples/python/quickstart.py'), alpha.address], { PILOT_SOCKET: gamma.socket }, 60_000, {
    python: path.join(dir, 'bin/python'),
    cwd: net.work, // the installed package, not python/ in the tree
  });
  assert.equal(q.code, 0, q.out);
  assert.match(q.stdout, /'status': 'trusted'/);
  assert.match(q.stdout, /^hello over pilot$/m);
});
