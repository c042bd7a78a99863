// The daemon's link to its rendezvous over TCP when UDP does not get through:
// plain framed TCP, or a WebSocket on the same port for networks that only let
// HTTP out. Same packets as over UDP (registry, pushes, relay); relayed peer
// traffic stays end-to-end encrypted by the session layer, the rendezvous only
// sees ciphertext. Once up, it stays up: a lost connection is re-opened with
// capped exponential backoff and jitter until close().
import { EventEmitter } from 'node:events';
import { PilotError } from '../util/errors.ts';
import { DEFAULT_MAX_FRAME } from '../wire/tcp-framing.ts';
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
import type { Conn, ConnHandlers, ConnOptions } from './conn.ts';
import { openFramedConn } from './framed-conn.ts';
import type { ProxyConfig } from './proxy-config.ts';
import { openWebSocketConn } from './websocket-conn.ts';
import type { Uplink } from './uplink.ts';

/** wss = WebSocket over TLS to the rendezvous's --tls-listen (host is then the certificate's name), optionally through an HTTP proxy. */
export type TcpUplinkMode = 'tcp' | 'websocket' | 'wss';

export interface TcpUplinkOptions {
  host: string;
  port: number;
  mode: TcpUplinkMode;
  /** WebSocket path on the rendezvous (default /pilot). */
  path?: string;
  /** wss: extra trusted CA certificates (PEM) on top of the system's. */
  ca?: string | Buffer;
  /** websocket/wss: tunnel through this HTTP proxy (CONNECT). */
  proxy?: ProxyConfig;
  /** Per attempt, TCP connect (+ WebSocket handshake). Default 5 s. */
  connectTimeoutMs?: number;
  /** Default: the server's max frame (4096). */
  maxPacket?: number;
  /** Default 1 MiB, like the server's TCP_MAX_BACKLOG. */
  maxBacklog?: number;
  /** TCP keepalive delay / WebSocket ping interval. Default 15 s. */
  keepaliveMs?: number;
  backoff?: BackoffOptions;
}

export interface TcpUplinkCounters {
  connects: number;
  failedConnects: number;
  disconnects: number;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** send() returned false. */
  dropped: number;
  garbage: number;
}

interface Events {
  packet: [pkt: Buffer];
  up: [];
  down: [reason: string];
}

/** Unsent bytes beyond which packets are dropped: congestion = loss, as on UDP, never unbounded memory. */
const DEFAULT_MAX_BACKLOG = 1 << 20;

type State = 'idle' | 'connecting' | 'up' | 'waiting' | 'closed';

export class TcpUplink extends EventEmitter<Events> implements Uplink {
  readonly kind: TcpUplinkMode;
  readonly counters: TcpUplinkCounters = {
    connects: 0,
    failedConnects: 0,
    disconnects: 0,
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    garbage: 0,
  };
  private readonly opts: TcpUplinkOptions;
  private readonly connOpts: ConnOptions;
  private readonly backoff: Backoff;
  private state: State = 'idle';
  private conn: Conn | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The first connect()'s promise, settled by the first attempt. */
  private firstAttempt: { resolve: () => void; reject: (e: PilotError) => void } | undefined;

  constructor(opts: TcpUplinkOptions) {
    super();
    this.opts = opts;
    this.kind = opts.mode;
    this.connOpts = {
      host: opts.host,
      port: opts.port,
      connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
      maxPacket: opts.maxPacket ?? DEFAULT_MAX_FRAME,
      maxBacklog: opts.maxBacklog ?? DEFAULT_MAX_BACKLOG,
      keepaliveMs: opts.keepaliveMs ?? 15_000,
    };
    this.backoff = new Backoff(opts.backoff ?? DEFAULT_BACKOFF);
  }

  /** Connected right now. */
  get isUp(): boolean {
    return this.state === 'up';
  }

  /** "tcp 203.0.113.5:9000" / "websocket ws://203.0.113.5:9000/pilot" / "wss wss://rv.example.com:443/pilot via proxy http://10.0.0.1:3128", for logs and errors (never proxy credentials). */
  describe(): string {
    const { host, port } = this.opts;
    if (this.kind === 'tcp') return `tcp ${host}:${port}`;
    const h = host.includes(':') ? `[${host}]` : host;
    const via = this.opts.proxy ? ` via proxy ${this.opts.proxy.display}` : '';
    return `${this.kind} ${this.kind === 'wss' ? 'wss' : 'ws'}://${h}:${port}${this.opts.path ?? '/pilot'}${via}`;
  }

  /**
   * Opens the first connection. Rejects (UNREACHABLE) if that attempt fails,
   * leaving the uplink idle so the caller can try another mode; once it has
   * been up, losses are repaired in the background until close().
   */
  connect(): Promise<void> {
    if (this.state !== 'idle') {
      return Promise.reject(new PilotError('BAD_ARGUMENT', `uplink is ${this.state}`, 'call connect() once; the uplink reconnects by itself'));
    }
    return new Promise<void>((resolve, reject) => {
      this.firstAttempt = { resolve, reject };
      this.attempt();
    });
  }

  send(pkt: Buffer): boolean {
    if (this.state !== 'up' || pkt.length === 0 || pkt.length > this.connOpts.maxPacket || !this.conn?.send(pkt)) {
      // An oversized packet would make the server hang up on us: never send it.
      this.counters.dropped++;
      return false;
    }
    this.counters.packetsOut++;
    this.counters.bytesOut += pkt.length;
    return true;
  }

  /** Drops the current connection and opens a new one (e.g. the daemon's heartbeats stopped being answered). */
  reconnect(reason = 'reconnect requested'): void {
    if (this.state === 'up' || this.state === 'connecting') this.conn?.destroy(reason);
    else if (this.state === 'waiting') {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.attempt();
    }
  }

  close(): void {
    if (this.state === 'closed') return;
    const wasUp = this.state === 'up';
    this.state = 'closed';
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.conn?.destroy('closed');
    this.conn = undefined;
    this.firstAttempt?.reject(new PilotError('UNREACHABLE', `uplink to ${this.describe()} closed before it connected`));
    this.firstAttempt = undefined;
    if (wasUp) this.emit('down', 'closed');
  }

  private attempt(): void {
    this.state = 'connecting';
    let opened = false;
    let gotPacket = false;
    const handlers: ConnHandlers = {
      onOpen: () => {
        if (this.conn !== conn) return;
        opened = true;
        this.state = 'up';
        this.counters.connects++;
        this.firstAttempt?.resolve();
        this.firstAttempt = undefined;
        this.emit('up');
      },
      onPacket: (pkt) => {
        if (this.conn !== conn || this.state !== 'up') return;
        // The rendezvous answers: this connection works, so the next loss starts the backoff over.
        if (!gotPacket) {
          gotPacket = true;
          this.backoff.reset();
        }
        this.counters.packetsIn++;
        this.counters.bytesIn += pkt.length;
        this.emit('packet', pkt);
      },
      onGarbage: () => {
        this.counters.garbage++;
      },
      onClose: (reason, cause) => {
        if (this.conn !== conn) return;
        this.conn = undefined;
        if (this.state === 'closed') return;
        if (!opened) {
          this.counters.failedConnects++;
          const first = this.firstAttempt;
          if (first) {
            this.firstAttempt = undefined;
            this.state = 'idle';
            first.reject(
              new PilotError(
                cause?.code ?? 'UNREACHABLE',
                `cannot reach the rendezvous over ${this.describe()}: ${reason}`,
                cause?.hint ??
                  (this.kind === 'tcp'
                    ? 'check --registry HOST:PORT and that outgoing TCP to it is allowed'
                    : this.kind === 'wss'
                      ? 'check the --wss URL, that pilot-rendezvous serves --tls-listen there, and that HTTPS to it (or --proxy) is allowed'
                      : 'check --registry HOST:PORT and that HTTP (WebSocket) to it is allowed'),
              ),
            );
            return;
          }
        }
        this.state = 'waiting';
        if (opened) {
          this.counters.disconnects++;
          this.emit('down', reason);
        }
        // A 'down' listener may have closed or reconnected us already.
        if (this.state === 'waiting' && !this.conn && !this.retryTimer) this.scheduleRetry();
      },
    };
    const conn =
      this.kind === 'tcp'
        ? openFramedConn(this.connOpts, handlers)
        : openWebSocketConn(
            {
              ...this.connOpts,
              path: this.opts.path ?? '/pilot',
              tls: this.kind === 'wss',
              ...(this.opts.ca !== undefined ? { ca: this.opts.ca } : {}),
              ...(this.opts.proxy ? { proxy: this.opts.proxy } : {}),
            },
            handlers,
          );
    this.conn = conn;
  }

  private scheduleRetry(): void {
    this.state = 'waiting';
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.state === 'waiting') this.attempt();
    }, this.backoff.next());
    this.retryTimer.unref();
  }
}
