// MCP over the overlay: a real MCP client (@modelcontextprotocol/sdk Client)
// calls tools of a real McpServer on another node, through PilotMcpTransport;
// an MCP host's stdio server entry `pilotctl connect <agent> <port>` bridges to
// it; Streamable HTTP over serveHttp + pilotFetch closes down cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { connect, mcpConnect, serveMcp, PilotError, type McpService, type PilotNode } from '../../src/sdk/index.ts';
import { ROOT, type Agent } from '../helpers/cluster.ts';
import { startNet, trustPair, type Net } from './helpers.ts';

let net: Net;
let alpha: Agent;
let beta: Agent;
let na: PilotNode;
let nb: PilotNode;
let svc: McpService;
let serversMade = 0;
const closedTransports: string[] = [];

function makeServer(): McpServer {
  serversMade++;
  const s = new McpServer({ name: 'pilot-test', version: '1.0.0' });
  s.registerTool('add', { description: 'add two numbers', inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({
    content: [{ type: 'text', text: String(a + b) }],
  }));
  // the overlay authenticated the caller: its Pilot address arrives as authInfo
  s.registerTool('whoami', { description: 'the caller' }, async (extra) => ({ content: [{ type: 'text', text: String(extra.authInfo?.clientId) }] }));
  s.registerTool('blob', { description: 'a large answer', inputSchema: { kib: z.number() } }, async ({ kib }) => ({
    content: [{ type: 'text', text: 'z'.repeat(kib * 1024) }],
  }));
  return s;
}

before(async () => {
  net = await startNet();
  alpha = await net.agent('mcp-alpha');
  beta = await net.agent('mcp-beta');
  await trustPair(alpha, beta);
  na = await connect({ socket: alpha.socket });
  nb = await connect({ socket: beta.socket });
  svc = await serveMcp(na, 3000, (sock) => {
    sock.once('close', () => closedTransports.push(sock.remoteAddress));
    return makeServer();
  });
});

after(async () => {
  await svc?.close();
  await na?.close();
  await nb?.close();
  await net?.stop();
});

const text = (r: unknown): string => (r as { content: Array<{ text: string }> }).content[0]!.text;

test('an MCP client lists and calls tools on a server on another node', async () => {
  const client = new Client({ name: 'pilot-test-client', version: '1.0.0' });
  await client.connect(await mcpConnect(nb, 'mcp-alpha', 3000));
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(tools, ['add', 'blob', 'whoami']);
  assert.equal(text(await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } })), '42');
  assert.equal(text(await client.callTool({ name: 'whoami', arguments: {} })), beta.address);
  assert.equal(text(await client.callTool({ name: 'blob', arguments: { kib: 2048 } })).length, 2048 * 1024);
  await client.close();
  for (let i = 0; i < 50 && !closedTransports.includes(beta.address); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(closedTransports.includes(beta.address), 'the server side saw the client go');
});

test('two clients at once get a server each; a wrong port is CONNECTION_REFUSED', async () => {
  const before = serversMade;
  const c1 = new Client({ name: 'c1', version: '1.0.0' });
  const c2 = new Client({ name: 'c2', version: '1.0.0' });
  await Promise.all([c1.connect(await mcpConnect(nb, 'mcp-alpha', 3000)), c2.connect(await mcpConnect(nb, alpha.address, 3000))]);
  const [r1, r2] = await Promise.all([c1.callTool({ name: 'add', arguments: { a: 1, b: 1 } }), c2.callTool({ name: 'add', arguments: { a: 2, b: 2 } })]);
  assert.equal(text(r1), '2');
  assert.equal(text(r2), '4');
  assert.equal(serversMade - before, 2);
  await c1.close();
  await c2.close();
  await assert.rejects(mcpConnect(nb, 'mcp-alpha', 3001), (e: unknown) => e instanceof PilotError && e.code === 'CONNECTION_REFUSED');
});

test('an MCP host runs `pilotctl connect <agent> <port>` as its stdio server: a raw bridge both ways', async () => {
  // what an MCP host config says: { "command": "pilotctl", "args": ["connect", "mcp-alpha", "3000"] }
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [path.join(ROOT, 'src/cli/pilotctl.ts'), 'connect', 'mcp-alpha', '3000'],
    env: { PILOT_SOCKET: beta.socket, PILOT_HOME: beta.home, PATH: process.env.PATH ?? '' },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (c: Buffer) => (stderr += c));
  const client = new Client({ name: 'stdio-host', version: '1.0.0' });
  closedTransports.length = 0;
  await client.connect(transport);
  assert.equal(text(await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } })), '42');
  assert.equal(text(await client.callTool({ name: 'whoami', arguments: {} })), beta.address, 'the server sees the bridging node');
  assert.equal(text(await client.callTool({ name: 'blob', arguments: { kib: 512 } })).length, 512 * 1024, 'large replies pass unframed');
  // the host closes stdin; the bridge half-closes the stream, the server hangs up, pilotctl exits by itself
  // (the MCP SDK would SIGTERM it after 2 s)
  const t0 = Date.now();
  await client.close();
  const ms = Date.now() - t0;
  assert.ok(ms < 2000, `pilotctl connect exited ${ms} ms after stdin closed (it was killed?) ${stderr}`);
  for (let i = 0; i < 100 && !closedTransports.includes(beta.address); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(closedTransports.includes(beta.address), 'the server side saw the bridge go');
});

/** Run the both-ends fixture; resolves with how long the process lived after printing "closed". */
function bothEnds(args: string[]): Promise<{ code: number | null; afterCloseMs: number; output: string }> {
  const fixture = path.join(import.meta.dirname, 'fixtures', 'mcp-http-both-ends.ts');
  const child = spawn(process.execPath, [fixture, alpha.socket, alpha.address, beta.socket, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let closedAt = 0;
  child.stdout.on('data', (c: Buffer) => {
    output += c;
    if (!closedAt && output.includes('closed')) {
      closedAt = Date.now();
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref(); // a hang fails in 10 s, not 60
    }
  });
  child.stderr.on('data', (c: Buffer) => (output += c));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, afterCloseMs: closedAt ? Date.now() - closedAt : -1, output });
    });
  });
}

test('Streamable-HTTP MCP over serveHttp + pilotFetch, both ends in one process: it exits right after close()', { timeout: 180_000 }, async () => {
  // Before serveHttp tracked its connections, its close() left them open (http.Server only
  // tracks the connections of a server that listen()ed): this process never exited, or only
  // once undici's keep-alive timer (4 s) closed the client's side.
  for (const [port, mode] of [
    ['3100', 'client closes its fetch'],
    ['3101', '--keep-client-pool'],
  ] as const) {
    const r = await bothEnds([port, '2', ...(mode.startsWith('--') ? [mode] : [])]);
    assert.equal(r.code, 0, `${mode}: ${r.output}`);
    assert.ok(r.afterCloseMs >= 0 && r.afterCloseMs < 3000, `${mode}: exited ${r.afterCloseMs} ms after every close() (want < 3 s)`);
  }
});
