// MCP over the overlay: a tool server on one agent, a client on another.
//   node examples/mcp.ts serve [port]            an MCP server with tools add and whoami (default port 3000)
//   node examples/mcp.ts call <target> [port]    list its tools, call them
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { connect, serveMcp, mcpConnect, type PilotError } from 'pilot-overlay/sdk';

const [cmd, ...args] = process.argv.slice(2);

function toolServer(): McpServer {
  const server = new McpServer({ name: 'pilot-example', version: '1.0.0' });
  server.registerTool('add', { description: 'add two numbers', inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({
    content: [{ type: 'text', text: String(a + b) }],
  }));
  // the overlay authenticated the caller: its Pilot address is the client id
  server.registerTool('whoami', { description: "the caller's Pilot address" }, async (extra) => ({
    content: [{ type: 'text', text: String(extra.authInfo?.clientId) }],
  }));
  return server;
}

try {
  const node = await connect();
  if (cmd === 'serve') {
    const port = Number(args[0] ?? 3000);
    const svc = await serveMcp(node, port, () => toolServer()); // one server per connection
    console.log(`mcp listening on ${node.address} port ${port}`);
    const stop = async (): Promise<void> => {
      await svc.close();
      await node.close();
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } else if (cmd === 'call' && args[0]) {
    const client = new Client({ name: 'pilot-example-client', version: '1.0.0' });
    await client.connect(await mcpConnect(node, args[0], Number(args[1] ?? 3000)));
    const { tools } = await client.listTools();
    console.log(`tools: ${tools.map((t) => t.name).join(', ')}`);
    const sum = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
    console.log(`add(2, 3) = ${(sum.content as Array<{ text: string }>)[0]!.text}`);
    const me = await client.callTool({ name: 'whoami', arguments: {} });
    console.log(`whoami = ${(me.content as Array<{ text: string }>)[0]!.text}`);
    await client.close();
    await node.close();
  } else {
    console.error('usage: mcp.ts serve [port] | mcp.ts call <target> [port]');
    process.exit(2);
  }
} catch (err) {
  const e = err as PilotError;
  console.error(`error ${e.code ?? ''}: ${e.message}${e.hint ? ` (${e.hint})` : ''}`);
  process.exit(1);
}
