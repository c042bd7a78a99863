// A plain MCP stdio server (the MCP TypeScript SDK's StdioServerTransport) with
// one tool, for the Python MCP bridge test (examples/python/mcp_bridge.py):
// it knows nothing of Pilot.
import { z } from 'zod';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';

const server = new McpServer({ name: 'stdio-adder', version: '1.0.0' });
server.registerTool('add', { description: 'add two numbers', inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({
  content: [{ type: 'text', text: String(a + b) }],
}));
await server.connect(new StdioServerTransport());
