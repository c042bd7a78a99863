// The SDK as another project gets it: npm pack of this checkout (prepack builds
// dist/), then the "new project in 5 commands" recipe of docs/SDK.md, step by
// step, in a fresh directory (mkdir, npm init -y, npm i <the tarball>, a file,
// node file). In that same project (CommonJS: what `npm init -y` makes):
//  (a) the recipe's app.mjs talks to a running node over its socket;
//  (b) a CommonJS file require()s 'pilot-overlay/sdk' (require(esm): the SDK's
//      module graph has no top-level await);
//  then, after `npm i @modelcontextprotocol/sdk zod @types/node` (the MCP SDK is
//  the user's own dependency):
//  (c) a plain .mjs program runs two embedded nodes against a real rendezvous:
//      trust, dial/echo, pilotFetch to the other's serveHttp, MCP over one
//      overlay stream (serveMcp/mcpConnect) and Streamable-HTTP MCP (serveHttp
//      + StreamableHTTPClientTransport with pilotFetch), and exits by itself;
//  (d) tsc --strict type-checks a .mts consumer against the installed .d.ts
//      files, with the default lib (DOM types present) and with node-only libs.
// They would fail if the package shipped only .ts sources (Node does not strip
// types inside node_modules), if dist/ were missing, or if pilotFetch's type did
// not fit a strict project or the MCP SDK's `fetch` option.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { npmEnv, packTarball } from '../helpers/package.ts';
import { startNode, type PilotNode } from '../../src/sdk/index.ts';

// docs/SDK.md's recipe file, as printed there (checked below)
const APP_MJS = `import { connect } from 'pilot-overlay/sdk';

const node = await connect(); // the local daemon: $PILOT_SOCKET, or the default socket
const me = await node.info();
console.log(\`I am \${me.hostname ?? me.address}\`);
for (const p of await node.peers()) console.log(\`peer \${p.hostname ?? p.address} via \${p.path}\`);
await node.close();
`;

const CONSUMER_CJS = `
const { connect, pilotFetch, PilotError } = require('pilot-overlay/sdk');
async function main() {
  const node = await connect();
  const info = await node.info();
  await node.close();
  console.log(JSON.stringify({ address: info.address, pilotFetch: typeof pilotFetch, PilotError: typeof PilotError }));
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
`;

const CONSUMER_MJS = `
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startNode, pilotFetch, serveHttp, serveMcp, mcpConnect, PilotError } from 'pilot-overlay/sdk';
const [registry, dir] = process.argv.slice(2);
const opts = (n) => ({ home: dir + '/' + n, registry, email: n + '@example.com', hostname: 'consumer-' + n, listen: '127.0.0.1:0', logger: 'silent' });
const a = await startNode(opts('a'));
const b = await startNode(opts('b'));
await a.watch();
const approved = new Promise((r) => a.once('trust-approved', r));
await a.handshake(b.address, 'package consumer test');
await b.approve(a.address);
await approved;
const srv = await b.listen(7000, (s) => s.pipe(s));
const sock = await a.dial(b.address, 7000);
sock.end('hello from a package consumer');
let reply = '';
for await (const chunk of sock) reply += chunk;
let refused;
try {
  await a.dial(b.address, 7999);
} catch (err) {
  refused = err instanceof PilotError ? err.code : String(err);
}

// HTTP: b serves, a fetches (an address in a URL is written with dashes)
const web = await serveHttp(b, 8080, (req, res) => res.end(JSON.stringify({ you: req.socket.remoteAddress, path: req.url })));
const fetch = pilotFetch(a);
const base = 'http://' + b.address.replace(/[:.]/g, '-');
const res = await fetch(base + ':8080/hello');
const http = { status: res.status, isResponse: res instanceof Response, body: await res.json() };

// MCP: the same tool server over one overlay stream and over Streamable HTTP
const tools = () => {
  const s = new McpServer({ name: 'consumer-tools', version: '1.0.0' });
  s.registerTool('add', { inputSchema: { a: z.number(), b: z.number() } }, async (x) => ({ content: [{ type: 'text', text: String(x.a + x.b) }] }));
  s.registerTool('whoami', {}, async (extra) => ({ content: [{ type: 'text', text: String(extra.authInfo?.clientId) }] }));
  return s;
};
const text = (r) => r.content[0].text;
const mcp = await serveMcp(b, 3000, () => tools());
const c1 = new Client({ name: 'stream-client', version: '1.0.0' });
await c1.connect(await mcpConnect(a, b.address, 3000));
const viaStream = { add: text(await c1.callTool({ name: 'add', arguments: { a: 2, b: 3 } })), whoami: text(await c1.callTool({ name: 'whoami', arguments: {} })) };
await c1.close();

const httpTools = tools();
const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID() });
await httpTools.connect(transport);
const mcpWeb = await serveHttp(b, 3001, (req, res) => void transport.handleRequest(req, res));
const c2 = new Client({ name: 'http-client', version: '1.0.0' });
await c2.connect(new StreamableHTTPClientTransport(new URL(base + ':3001/mcp'), { fetch }));
const viaHttp = { add: text(await c2.callTool({ name: 'add', arguments: { a: 20, b: 22 } })) };
await c2.close();

await httpTools.close();
await mcpWeb.close();
await mcp.close();
await web.close();
await fetch.close();
console.log(JSON.stringify({ reply, from: sock.remoteAddress, a: a.address, b: b.address, refused, http, viaStream, viaHttp }));
await srv.close();
await a.close();
await b.close();
`;

// Typed use of the public surface; the last line must be a type error (checked below).
const CONSUMER_MTS = `
import { connect, startNode, pilotFetch, PilotError, type PilotNode, type PilotSocket, type ErrorCode, type PilotFetch } from 'pilot-overlay/sdk';

async function echo(node: PilotNode, target: string): Promise<string> {
  const sock: PilotSocket = await node.dial(target, 7000, { timeoutMs: 5000 });
  sock.end('hi');
  let out = '';
  for await (const chunk of sock) out += String(chunk);
  return out;
}

async function status(node: PilotNode): Promise<{ ok: boolean; body: unknown }> {
  const f: PilotFetch = pilotFetch(node, { dialTimeoutMs: 3000 });
  const res = await f('http://agent-alpha:8080/status', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const body: unknown = await res.json();
  await f.close();
  return { ok: res.ok, body };
}

export async function main(): Promise<void> {
  const node = process.env.EMBED ? await startNode({ home: './home', registry: 'rdv.example:9000', email: 'me@example.com' }) : await connect();
  try {
    console.log(await echo(node, 'agent-alpha'), node.address, await status(node));
  } catch (err) {
    if (err instanceof PilotError) {
      const code: ErrorCode = err.code;
      console.error(code, err.hint);
    }
  }
  await node.close();
}
export const wrong: number = (await connect()).address; // TS2322: address is a string
`;

// pilotFetch where a library takes a fetch: the MCP SDK's Streamable HTTP client
const MCP_FETCH_MTS = `
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { connect, pilotFetch } from 'pilot-overlay/sdk';

const node = await connect();
const transport = new StreamableHTTPClientTransport(new URL('http://agent-alpha:3001/mcp'), { fetch: pilotFetch(node) });
await transport.close();
// @ts-expect-error: the options are undici Agent options
pilotFetch(node, { connect: () => {} });
`;

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 180_000): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

test('npm pack, then the 5-command recipe in a fresh CommonJS project: ESM and require() consumers run, fetch and MCP work, strict tsc passes', {
  timeout: 300_000,
}, async () => {
  const work = tmpDir('pilot-consumer-');
  const home = path.join(work, 'home');
  const proj = path.join(work, 'my-agent');
  fs.mkdirSync(home);
  const env = npmEnv(home);
  let rdv: Rendezvous | undefined;
  let daemon: PilotNode | undefined;
  try {
    const t0 = Date.now();
    const tgz = packTarball(work, env);
    const t1 = Date.now();

    // the recipe: mkdir, npm init -y, npm i pilot-overlay (here: the tarball), a file, node file
    fs.mkdirSync(proj);
    sh('npm', ['init', '-y'], proj, env);
    const pkg = JSON.parse(fs.readFileSync(path.join(proj, 'package.json'), 'utf8'));
    assert.notEqual(pkg.type, 'module', 'npm init -y makes a CommonJS project');
    sh('npm', ['i', tgz], proj, env);
    const t2 = Date.now();
    const installed = path.join(proj, 'node_modules', 'pilot-overlay');
    assert.ok(fs.existsSync(path.join(installed, 'dist', 'sdk', 'index.js')), 'dist/ is in the tarball');
    assert.ok(fs.existsSync(path.join(installed, 'dist', 'sdk', 'index.d.ts')), 'declarations are in the tarball');
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'SDK.md'), 'utf8');
    assert.ok(doc.includes(APP_MJS), 'docs/SDK.md shows this app.mjs');
    fs.writeFileSync(path.join(proj, 'app.mjs'), APP_MJS);

    // the "local daemon" the recipe assumes: a node of this checkout serving IPC on a socket
    rdv = await startRendezvous();
    const socket = path.join(work, 'daemon.sock');
    daemon = await startNode({
      home: path.join(work, 'daemon'),
      registry: rdv.addr,
      email: 'recipe@example.com',
      hostname: 'recipe-agent',
      listen: '127.0.0.1:0',
      socket,
      logger: 'silent',
    });
    const app = await run([process.execPath, path.join(proj, 'app.mjs')], { PILOT_SOCKET: socket }, 60_000);
    assert.equal(app.code, 0, `node app.mjs failed:\n${app.stdout}\n${app.stderr}`);
    assert.match(app.stdout, /^I am recipe-agent$/m);

    // (b) CommonJS: require('pilot-overlay/sdk')
    fs.writeFileSync(path.join(proj, 'consumer.cjs'), CONSUMER_CJS);
    const cjs = await run([process.execPath, path.join(proj, 'consumer.cjs')], { PILOT_SOCKET: socket }, 60_000);
    assert.equal(cjs.code, 0, `consumer.cjs failed:\n${cjs.stdout}\n${cjs.stderr}`);
    assert.deepEqual(JSON.parse(cjs.stdout.trim().split('\n').pop()!), { address: daemon.address, pilotFetch: 'function', PilotError: 'function' });
    await daemon.close();
    daemon = undefined;
    const t3 = Date.now();

    // (c) the MCP SDK and types are the consumer's own dependencies
    const dev = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const mcpSdk = (dev.dependencies?.['@modelcontextprotocol/sdk'] ?? dev.devDependencies?.['@modelcontextprotocol/sdk']) as string;
    const zod = (dev.dependencies?.zod ?? dev.devDependencies?.zod) as string;
    sh('npm', ['i', `@modelcontextprotocol/sdk@${mcpSdk}`, `zod@${zod}`, `@types/node@${dev.devDependencies['@types/node']}`], proj, env);
    const t4 = Date.now();
    fs.writeFileSync(path.join(proj, 'consumer.mjs'), CONSUMER_MJS);
    const r = await run([process.execPath, path.join(proj, 'consumer.mjs'), rdv.addr, path.join(work, 'nodes')], {}, 90_000);
    assert.equal(r.code, 0, `consumer.mjs failed (or did not exit by itself):\n${r.stdout}\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /ExperimentalWarning|strip/i, 'no type stripping involved');
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.reply, 'hello from a package consumer');
    assert.equal(out.from, out.b);
    assert.equal(out.refused, 'CONNECTION_REFUSED');
    assert.deepEqual(out.http, { status: 200, isResponse: true, body: { you: out.a, path: '/hello' } });
    assert.deepEqual(out.viaStream, { add: '5', whoami: out.a });
    assert.deepEqual(out.viaHttp, { add: '42' });
    const t5 = Date.now();

    // (d) TypeScript, strict, against the installed declarations (skipLibCheck off: they must check too)
    fs.writeFileSync(path.join(proj, 'consumer.mts'), CONSUMER_MTS);
    fs.writeFileSync(path.join(proj, 'mcp-fetch.mts'), MCP_FETCH_MTS);
    const base = { target: 'es2023', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] };
    const nodeOnly = { lib: ['es2023'] };
    // The MCP SDK's own declarations name the DOM's HeadersInit, so with node-only libs they
    // need skipLibCheck (or "DOM" in lib) whatever Pilot does: checked that way, separately.
    for (const [name, extra, files, planted] of [
      ['default lib (DOM)', {}, ['consumer.mts', 'mcp-fetch.mts'], 1],
      ['node-only lib', nodeOnly, ['consumer.mts'], 1],
      ['node-only lib, MCP SDK (skipLibCheck)', { ...nodeOnly, skipLibCheck: true }, ['mcp-fetch.mts'], 0],
    ] as const) {
      const file = path.join(proj, `tsconfig.${name.replace(/\W+/g, '-')}.json`);
      fs.writeFileSync(file, JSON.stringify({ compilerOptions: { ...base, ...extra }, files }));
      const tsc = await run([process.execPath, path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', file], {}, 90_000);
      const errors = tsc.stdout
        .trim()
        .split('\n')
        .filter((l) => /error TS/.test(l));
      // exactly the planted error (and the @ts-expect-error used): the SDK's types resolved and are precise
      assert.equal(errors.length, planted, `${name}:\n${tsc.stdout}`);
      if (planted) assert.match(errors[0]!, /consumer\.mts\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
    }
    process.stdout.write(
      `# npm pack: ${secs(t1 - t0)}; npm init + npm i <tgz>: ${secs(t2 - t1)}; recipe + cjs: ${secs(t3 - t2)}; ` +
        `npm i mcp sdk: ${secs(t4 - t3)}; consumer.mjs: ${secs(t5 - t4)}; tsc x3: ${secs(Date.now() - t5)}\n`,
    );
  } finally {
    await daemon?.close();
    await rdv?.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
