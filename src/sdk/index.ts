// The Pilot TypeScript SDK: `import { connect } from 'pilot-overlay/sdk'`.
//
//   const node = await connect();                       // the local daemon (PILOT_SOCKET, else its private default socket)
//   const sock = await node.dial('agent-alpha', 1000);  // a net.Socket-like Duplex
//   const srv = await node.listen(7000, (s) => s.pipe(s));
//
// or run the node inside this process, without a daemon:
//
//   const node = await startNode({ home: './agent-home', registry: 'rdv.example:9000', email: 'me@example.com' });
import { configSocket, loadConfig, pilotHome } from '../daemon/config.ts';
import { IpcBackend } from './client.ts';
import { EmbeddedBackend, type StartNodeOptions } from './embedded.ts';
import { PilotNode } from './node.ts';

export interface ConnectOptions {
  /** The daemon's IPC socket; default $PILOT_SOCKET, the socket saved in the home's config, then $XDG_RUNTIME_DIR/pilot/pilot.sock (default home) or HOME/pilot.sock. */
  socket?: string;
  /** The daemon's home (to find its socket); default $PILOT_HOME or ~/.pilot. */
  home?: string;
}

function findSocket(opts: ConnectOptions): string {
  if (opts.socket) return opts.socket;
  if (process.env.PILOT_SOCKET) return process.env.PILOT_SOCKET;
  const home = pilotHome(opts.home);
  try {
    return configSocket(loadConfig(home), home);
  } catch {
    return configSocket(undefined, home); // an unreadable config: the default socket
  }
}

/** Attach to a running daemon over its unix socket (rejects with NO_DAEMON if none answers). */
export function connect(opts: ConnectOptions = {}): Promise<PilotNode> {
  return PilotNode.create(new IpcBackend(findSocket(opts)));
}

/** Run a node in this process with its own identity directory; close() stops it. */
export async function startNode(opts: StartNodeOptions): Promise<PilotNode> {
  return PilotNode.create(await EmbeddedBackend.start(opts));
}

export type { StartNodeOptions } from './embedded.ts';
export { PilotNode, type DialOptions, type PingOptions } from './node.ts';
export { PilotSocket, type PilotSocketInfo } from './socket.ts';
export { PilotServer } from './server.ts';
export { PilotDatagramSocket, type DatagramInfo } from './datagram.ts';
export type * from './types.ts';
export type * from './service-types.ts';
export type { Messages, Files, Tasks, Webhooks, SendFileOptions } from './services.ts';
export type { PubSub } from './pubsub.ts';
export type { Stdio, StdioRecvOptions } from './stdio.ts';
export { ServiceSubscription, type SubscriptionOptions } from './subscription.ts';
export { PilotError, type ErrorCode } from '../util/errors.ts';
export {
  PilotHttpAgent,
  pilotDispatcher,
  pilotFetch,
  serveHttp,
  targetFromHost,
  type HttpService,
  type PilotDispatcherOptions,
  type PilotFetch,
} from './http.ts';
export { PilotMcpTransport, mcpConnect, serveMcp, type McpService } from './mcp.ts';
export type {
  Networks,
  FindQuery,
  FoundMembers,
  InviteOptions,
  NetworkAuditEntry,
  NetworkCreated,
  NetworkInfo,
  NetworkInvite,
  NetworkInviteInfo,
  NetworkJoined,
  NetworkMemberInfo,
  NetworkMembers,
  NetworkPolicy,
  PolicyDocument,
} from './networks.ts';
export { DialAnyError, FAILOVER_CODES, type DialAnyOptions, type DialAttempt, type DiscoverQuery } from './fleet.ts';
