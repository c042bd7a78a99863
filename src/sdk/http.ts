// HTTP over the overlay, without root or a gateway: the URL's host names the
// Pilot target and its port the virtual port.
//   http.get('http://agent-alpha:8080/status', { agent: new PilotHttpAgent(node) }, ...)
//   fetch('http://agent-alpha:8080/status', { dispatcher: pilotDispatcher(node) })
//   await serveHttp(node, 8080, (req, res) => res.end('ok'))
// A URL cannot hold an address's colon, so an address is written with dashes
// (0-0000-0000-002a, optionally with a .pilot suffix); http.request options
// may also give host: '0:0000.0000.002A' as is.
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { Agent as UndiciAgent } from 'undici';
import { PilotError } from '../util/errors.ts';
import type { PilotNode } from './node.ts';
import type { PilotServer } from './server.ts';

const DASHED_ADDRESS = /^(\d{1,5})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})$/i;

/** The Pilot target (hostname, node id or address) a URL host names. */
export function targetFromHost(host: string): string {
  let h = host.trim();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  h = h.replace(/\.pilot\.?$/i, '');
  const m = DASHED_ADDRESS.exec(h);
  return m ? `${m[1]}:${m[2]!.toUpperCase()}.${m[3]!.toUpperCase()}.${m[4]!.toUpperCase()}` : h;
}

function portOf(port: string | number | null | undefined, protocol: string | null | undefined): number {
  if (protocol === 'https:') {
    throw new PilotError(
      'BAD_ARGUMENT',
      'https:// is not used over Pilot',
      'use http://: the overlay already encrypts and authenticates every peer (Noise IK)',
    );
  }
  const n = port === undefined || port === null || port === '' ? 80 : Number(port);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new PilotError('BAD_ARGUMENT', `bad virtual port ${String(port)}`);
  return n;
}

/** An http.Agent whose connections are overlay streams (keep-alive on by default). */
export class PilotHttpAgent extends http.Agent {
  readonly node: PilotNode;
  private readonly dialTimeoutMs: number | undefined;

  constructor(node: PilotNode, opts: http.AgentOptions & { dialTimeoutMs?: number } = {}) {
    super({ keepAlive: true, ...opts });
    this.node = node;
    this.dialTimeoutMs = opts.dialTimeoutMs;
  }

  override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const done = callback ?? (() => {});
    let port: number;
    try {
      port = portOf(options.port, options.protocol);
    } catch (err) {
      done(err as Error, undefined as unknown as Duplex);
      return undefined;
    }
    const target = targetFromHost(options.host ?? options.hostname ?? '');
    this.node.dial(target, port, this.dialTimeoutMs === undefined ? {} : { timeoutMs: this.dialTimeoutMs }).then(
      (sock) => done(null, sock),
      (err: Error) => done(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}

/** An undici Dispatcher for fetch(url, { dispatcher }) and undici.request: connections are overlay streams. */
export function pilotDispatcher(node: PilotNode, opts: Omit<UndiciAgent.Options, 'connect'> & { dialTimeoutMs?: number } = {}): UndiciAgent {
  const { dialTimeoutMs, ...agentOpts } = opts;
  return new UndiciAgent({
    ...agentOpts,
    connect: (o, cb) => {
      let port: number;
      try {
        port = portOf(o.port, o.protocol);
      } catch (err) {
        return cb(err as Error, null);
      }
      node.dial(targetFromHost(o.hostname), port, dialTimeoutMs === undefined ? {} : { timeoutMs: dialTimeoutMs }).then(
        // undici only uses the net.Socket surface PilotSocket provides
        (sock) => cb(null, sock as unknown as net.Socket),
        (err: Error) => cb(err, null),
      );
    },
  });
}

export interface HttpService {
  readonly server: http.Server;
  readonly listener: PilotServer;
  readonly port: number;
  /** Stop accepting on the overlay and close idle keep-alive connections; requests in flight finish. */
  close(): Promise<void>;
}

/** Serve an http.Server (or a request handler) on a virtual port; req.socket.remoteAddress is the caller's Pilot address. */
export async function serveHttp(node: PilotNode, port: number, app: http.Server | http.RequestListener): Promise<HttpService> {
  const server = typeof app === 'function' ? http.createServer(app) : app;
  const listener = await node.listen(port, (sock) => server.emit('connection', sock));
  return {
    server,
    listener,
    port,
    close: async () => {
      await listener.close();
      server.closeIdleConnections();
    },
  };
}
