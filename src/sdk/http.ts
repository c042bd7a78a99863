// HTTP over the overlay, without root or a gateway: the URL's host names the
// Pilot target and its port the virtual port.
//   http.get('http://agent-alpha:8080/status', { agent: new PilotHttpAgent(node) }, ...)
//   const get = pilotFetch(node); await get('http://agent-alpha:8080/status')
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
    // @types/node asks for a stream even with an error; Node's agent ignores it
    // then (it hands only the error to the request), so there is none to give.
    const done = (callback ?? (() => {})) as (err: Error | null, stream?: Duplex) => void;
    let port: number;
    try {
      port = portOf(options.port, options.protocol);
    } catch (err) {
      done(err as Error);
      return undefined;
    }
    const target = targetFromHost(options.host ?? options.hostname ?? '');
    this.node.dial(target, port, this.dialTimeoutMs === undefined ? {} : { timeoutMs: this.dialTimeoutMs }).then(
      (sock) => done(null, sock),
      (err: Error) => done(err),
    );
    return undefined;
  }
}

/** An undici Dispatcher for undici.request() and friends: connections are overlay streams. For fetch, pilotFetch(node) binds one. */
export function pilotDispatcher(node: PilotNode, opts: PilotDispatcherOptions = {}): UndiciAgent {
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
        // undici's types ask for a net.Socket; it uses only the part of that
        // surface PilotSocket implements (test/sdk/http.test.ts runs it), and a
        // stream of the overlay cannot honestly claim to be a TCP socket.
        (sock) => cb(null, sock as unknown as net.Socket),
        (err: Error) => cb(err, null),
      );
    },
  });
}

export type PilotDispatcherOptions = Omit<UndiciAgent.Options, 'connect'> & { dialTimeoutMs?: number };

/** The Dispatcher type of the global fetch's RequestInit (@types/node's copy of undici's types). */
type GlobalDispatcher = NonNullable<NonNullable<Parameters<typeof fetch>[1]>['dispatcher']>;

/**
 * fetch() over the overlay: the global fetch with a pilotDispatcher(node)
 * bound, typed as the global fetch. So it type-checks in a strict project
 * whatever its lib (the DOM's, or node-only), and it fits every library that
 * takes a `fetch` option (the MCP SDK's StreamableHTTPClientTransport among
 * them). `fetch(url, { dispatcher })` does not: the DOM's RequestInit has no
 * dispatcher, and @types/node's copy of undici's types disagrees with undici's
 * own. undici's own fetch would type-check but answers with undici's Response
 * class, which is not the global Response (`instanceof` fails, and other
 * libraries' fetch types reject it).
 */
export type PilotFetch = typeof fetch & {
  /** The undici Agent the requests go through (also usable with undici.request). */
  readonly dispatcher: UndiciAgent;
  /** Close the keep-alive connections: open ones keep a process alive for a few seconds. */
  close(): Promise<void>;
};

/** A fetch whose connections are overlay streams: `const f = pilotFetch(node); await (await f('http://agent-alpha/')).text()`. */
export function pilotFetch(node: PilotNode, opts: PilotDispatcherOptions = {}): PilotFetch {
  const dispatcher = pilotDispatcher(node, opts);
  // The global fetch drives an undici 7 Agent (checked on Node 20 and 24); only
  // the two copies of the type declarations differ.
  const bound = dispatcher as unknown as GlobalDispatcher;
  const f = (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]): Promise<Response> => fetch(input, { ...init, dispatcher: bound });
  return Object.assign(f, { dispatcher, close: () => dispatcher.close() });
}

export interface HttpServiceCloseOptions {
  /** How long requests in flight may take to finish before their connections are cut (default 5000 ms). */
  graceMs?: number;
}

export interface HttpService {
  readonly server: http.Server;
  readonly listener: PilotServer;
  readonly port: number;
  /** Overlay connections this service accepted and that are still open. */
  readonly connections: number;
  /**
   * Stop accepting on the overlay and end every connection this service
   * accepted: idle keep-alive ones at once, busy ones once their response is
   * done (or after graceMs); resolves when all are closed. The http.Server
   * itself is left alone (it may also listen on TCP).
   */
  close(opts?: HttpServiceCloseOptions): Promise<void>;
}

/** Serve an http.Server (or a request handler) on a virtual port; req.socket.remoteAddress is the caller's Pilot address. */
export async function serveHttp(node: PilotNode, port: number, app: http.Server | http.RequestListener): Promise<HttpService> {
  const server = typeof app === 'function' ? http.createServer(app) : app;
  // Connections are tracked here: http.Server tracks (and closeIdleConnections()
  // closes) only those of a server that listen()ed, which this one need not.
  const busy = new Map<Duplex, number>(); // accepted connection -> responses in flight
  let closing = false;
  const settle = (sock: Duplex): void => {
    if (closing && busy.get(sock) === 0) sock.destroy();
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const sock = req.socket as Duplex;
    const n = busy.get(sock);
    if (n === undefined) return; // one of the server's own TCP connections
    busy.set(sock, n + 1);
    if (closing && !res.headersSent) res.setHeader('connection', 'close');
    res.once('close', () => {
      if (!busy.has(sock)) return;
      busy.set(sock, busy.get(sock)! - 1);
      settle(sock);
    });
  };
  server.on('request', onRequest);
  const listener = await node.listen(port, (sock) => {
    // accepted while close() ran (the daemon had announced it before): not served
    if (closing) return void sock.destroy();
    busy.set(sock, 0);
    sock.once('close', () => busy.delete(sock));
    server.emit('connection', sock);
  });
  let closed: Promise<void> | undefined;
  const close = async (graceMs: number): Promise<void> => {
    closing = true;
    await listener.close();
    const open = [...busy.keys()];
    for (const sock of open) settle(sock);
    const grace = setTimeout(() => {
      for (const sock of busy.keys()) sock.destroy();
    }, graceMs);
    await Promise.all(open.map((s) => (s.destroyed && s.closed ? undefined : new Promise((r) => s.once('close', r)))));
    clearTimeout(grace);
    server.off('request', onRequest);
  };
  return {
    server,
    listener,
    port,
    get connections() {
      return busy.size;
    },
    close: (opts = {}) => (closed ??= close(opts.graceMs ?? 5000)),
  };
}
