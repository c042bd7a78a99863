// MCP over the overlay: a Transport (Model Context Protocol TypeScript SDK)
// carrying newline-delimited JSON-RPC on one overlay stream, the framing of the
// MCP stdio transport. The overlay authenticates the peer, so each message
// reaches the server with authInfo.clientId = the caller's Pilot address.
import type { Duplex } from 'node:stream';
import type { ReadBuffer } from '@modelcontextprotocol/sdk/shared/stdio.js';
import { importOptional } from '../util/optional-dep.ts';
import type { PilotNode } from './node.ts';
import type { PilotServer } from './server.ts';
import type { PilotSocket } from './socket.ts';

// The MCP types this file's public surface uses, declared structurally rather
// than imported: the MCP SDK is an optional peer dependency, and the shipped
// .d.ts must type-check (skipLibCheck off) in a project that does not have it.
// A PilotMcpTransport is still an MCP Transport (test/sdk/mcp*.test.ts pass one
// to Client/Server.connect, which checks it against the SDK's own interface).

/** A JSON-RPC 2.0 message as MCP frames it (the MCP SDK's JSONRPCMessage is one). */
export interface McpMessage {
  jsonrpc: '2.0';
}

/** What reaches the MCP server with each message: the caller's Pilot address as authInfo.clientId. */
export interface McpMessageExtra {
  authInfo?: { token: string; clientId: string; scopes: string[]; extra?: Record<string, unknown> };
}

type StdioFraming = typeof import('@modelcontextprotocol/sdk/shared/stdio.js');
let framing: StdioFraming | undefined;

/**
 * The MCP SDK's stdio framing, loaded on the first start(): the MCP SDK is an
 * optional peer dependency (whoever runs MCP has it; other SDK users do not
 * download it), so importing 'pilot-overlay/sdk' must not load it.
 */
async function loadFraming(): Promise<StdioFraming> {
  framing ??= await importOptional('@modelcontextprotocol/sdk', 'MCP over Pilot', () => import('@modelcontextprotocol/sdk/shared/stdio.js'));
  return framing;
}

/** An MCP Transport (pass it to Client/Server.connect()) over one overlay stream. */
export class PilotMcpTransport {
  readonly socket: Duplex;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: McpMessage, extra?: McpMessageExtra) => void;
  sessionId?: string;
  private buffer: ReadBuffer | undefined;
  private readonly extra: McpMessageExtra | undefined;
  private started = false;
  private closed = false;

  constructor(socket: Duplex) {
    this.socket = socket;
    const peer = (socket as Partial<PilotSocket>).remoteAddress;
    if (peer) {
      const s = socket as PilotSocket;
      this.sessionId = `${peer}:${s.remotePort}/${s.localPort}`;
      this.extra = { authInfo: { token: '', clientId: peer, scopes: [], extra: { pilotAddress: peer, pilotHostname: s.remoteHostname } } };
    }
  }

  async start(): Promise<void> {
    if (this.started) throw new Error('PilotMcpTransport already started (Client/Server.connect() starts it)');
    this.started = true;
    const buffer = new (await loadFraming()).ReadBuffer();
    this.buffer = buffer;
    this.socket.on('data', (chunk: Buffer) => {
      try {
        buffer.append(chunk);
      } catch (err) {
        this.onerror?.(err as Error);
        void this.close();
        return;
      }
      for (;;) {
        let msg: McpMessage | null;
        try {
          msg = buffer.readMessage();
        } catch (err) {
          this.onerror?.(err as Error); // one bad line, the stream goes on
          continue;
        }
        if (msg === null) break;
        this.onmessage?.(msg, this.extra);
      }
    });
    this.socket.on('error', (err: Error) => this.onerror?.(err));
    this.socket.on('end', () => void this.close());
    this.socket.on('close', () => this.finish());
    if (this.socket.destroyed) this.finish(); // closed while the framing loaded: 'close' was missed
  }

  send(message: McpMessage, _opts?: unknown): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed || this.socket.destroyed) return reject(new Error('the overlay stream is closed'));
      if (!framing) return reject(new Error('PilotMcpTransport not started (Client/Server.connect() starts it)'));
      // McpMessage is the structural view of the SDK's JSONRPCMessage; the framing only JSON-encodes it.
      if (this.socket.write(framing.serializeMessage(message as Parameters<StdioFraming['serializeMessage']>[0]))) return resolve();
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  async close(): Promise<void> {
    if (!this.socket.writableEnded) this.socket.end();
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer?.clear();
    this.onclose?.();
  }
}

/** What serveMcp hands each connection to: an MCP Server or McpServer. */
export interface McpEndpoint {
  connect(transport: PilotMcpTransport): Promise<void>;
  close(): Promise<void>;
}

/** Dial an MCP server on `target`:`port`; pass the transport to Client.connect(). */
export async function mcpConnect(node: PilotNode, target: string, port: number): Promise<PilotMcpTransport> {
  return new PilotMcpTransport(await node.dial(target, port));
}

export interface McpService {
  readonly listener: PilotServer;
  close(): Promise<void>;
}

/** Serve MCP on a virtual port: `create` makes a fresh server per connection (an MCP server serves one transport). */
export async function serveMcp(node: PilotNode, port: number, create: (socket: PilotSocket) => McpEndpoint): Promise<McpService> {
  const live = new Set<McpEndpoint>();
  const listener = await node.listen(port, (sock) => {
    const server = create(sock);
    live.add(server);
    const transport = new PilotMcpTransport(sock);
    sock.once('close', () => {
      live.delete(server);
      void server.close().catch(() => {});
    });
    server.connect(transport).catch(() => sock.destroy());
  });
  return {
    listener,
    close: async () => {
      await listener.close();
      for (const s of live) await s.close().catch(() => {});
    },
  };
}
