// MCP over the overlay: a real MCP client (@modelcontextprotocol/sdk Client)
// calls tools of a real McpServer on another node, through PilotMcpTransport.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { connect, mcpConnect, serveMcp, PilotError, type McpService, type PilotNode } from '../../src/sdk/index.ts';
import type { Agent } from '../helpers/cluster.ts';
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
