// An embedded node: the daemon runs inside this process with its own identity
// directory, and the SDK calls the very handlers the IPC server would (so both
// modes behave alike), minus the socket. Optionally it also serves IPC, so
// pilotctl can talk to it.
import fs from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import { Daemon } from '../daemon/daemon.ts';
import { DaemonConfigSchema, configError, configSocket, loadConfig, type DaemonConfig } from '../daemon/config.ts';
import { ipcHandlers } from '../daemon/ipc-handlers.ts';
import { PipeResult, invoke, startIpcServer, type HandlerContext, type Handlers, type IpcServer } from '../ipc/server.ts';
import { IpcClient, type AnyEventHandler, type ParamsArg } from '../ipc/client.ts';
import type { Method, ParamsIn, PipeMethod, ResultOf } from '../ipc/api.ts';
import { PilotError, asPilotError } from '../util/errors.ts';
import { fileLogger, silentLogger, type Logger } from '../util/logger.ts';
import type { Backend, EventCallback, OpenedPipe, Subscription } from './backend.ts';

export interface StartNodeOptions {
  /** Identity and state directory (keys, trust, config); created if missing. */
  home: string;
  /** Rendezvous HOST:PORT; needed on the first start, then saved in home/config.json. */
  registry?: string;
  /** Email bound to the identity; needed on the first start. */
  email?: string;
  hostname?: string;
  public?: boolean;
  /** Ephemeral node (issue 18): stop() removes it from the rendezvous (address and hostname released); so does 2 min of silence. */
  ephemeral?: boolean;
  /** UDP address of the node's one socket (default 0.0.0.0:0); 'none' = no UDP socket at all (serverless, sandboxes): it joins over a TCP uplink (e.g. wss) and reaches peers through the relay. */
  listen?: string;
  uplink?: 'auto' | 'udp' | 'tcp' | 'websocket' | 'wss';
  /** The rendezvous's WebSocket-over-TLS URL (its --tls-listen), e.g. wss://rv.example.com/pilot. */
  wss?: string;
  /** PEM file of extra CA certificates for the wss certificate. */
  tlsCa?: string;
  /** HTTP proxy for wss: http://[user:pass@]host:port or 'none'; default $HTTPS_PROXY/$ALL_PROXY minus $NO_PROXY. */
  proxy?: string;
  /** Also serve the daemon IPC on this unix socket (so pilotctl --socket can drive the node). */
  socket?: string;
  /** Where the node logs; default home/pilot.log. */
  logger?: Logger | 'silent';
  /**
   * A join token (fleets): join its network at start, as `pilotctl daemon start --join` does.
   * A member already asks nothing, so restarting with the same token is fine. Never saved
   * (the membership is, in home/networks.json).
   */
  join?: string;
}

function buildConfig(opts: StartNodeOptions): DaemonConfig {
  const saved = loadConfig(opts.home);
  const registry = opts.registry ?? saved?.registry ?? process.env.PILOT_REGISTRY;
  const email = opts.email ?? saved?.email;
  if (!registry) throw new PilotError('BAD_ARGUMENT', 'no rendezvous server configured', 'the first start needs startNode({ registry: "HOST:PORT", ... })');
  if (!email) throw new PilotError('BAD_ARGUMENT', 'no email configured', 'the first start needs startNode({ email: "you@example.com", ... })');
  const parsed = v.safeParse(DaemonConfigSchema, {
    ...(saved ?? {}),
    registry,
    email,
    ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
    ...(opts.public !== undefined ? { public: opts.public } : {}),
    ...(opts.ephemeral !== undefined ? { ephemeral: opts.ephemeral } : {}),
    ...(opts.listen !== undefined ? { listen: opts.listen } : {}),
    ...(opts.uplink !== undefined ? { uplink: opts.uplink } : {}),
    ...(opts.wss !== undefined ? { wss: opts.wss } : {}),
    ...(opts.tlsCa !== undefined ? { tlsCa: opts.tlsCa } : {}),
    ...(opts.proxy !== undefined ? { proxy: opts.proxy } : {}),
    ...(opts.socket !== undefined ? { socket: opts.socket } : {}),
    // a different rendezvous has a different key: learn it again
    ...(saved !== undefined && saved.registry !== registry ? { serverKey: undefined } : {}),
  });
  if (!parsed.success) throw configError(parsed.issues, (f) => `startNode({ ${f} })`); // the hint names the failing option
  return parsed.output;
}

/** Two processes with one identity would fight over its address: refuse if a daemon runs on this home. */
async function refuseIfRunning(home: string, socket: string): Promise<void> {
  const probe = new IpcClient(socket);
  const running = await probe.call('info').catch(() => undefined);
  probe.close();
  if (running && path.resolve(running.home) === path.resolve(home)) {
    throw new PilotError(
      'DAEMON_RUNNING',
      `a daemon (pid ${running.pid}) already runs with home ${home}`,
      'connect() to it instead, or stop it: pilotctl daemon stop',
    );
  }
}

export class EmbeddedBackend implements Backend {
  readonly kind = 'embedded' as const;
  readonly daemon: Daemon;
  private readonly handlers: Handlers;
  private readonly subs = new Set<Subscription>();
  private ipc: IpcServer | undefined;
  private closing: Promise<void> | undefined;

  private constructor(daemon: Daemon) {
    this.daemon = daemon;
    this.handlers = ipcHandlers(daemon, () => void this.close());
  }

  static async start(opts: StartNodeOptions): Promise<EmbeddedBackend> {
    const config = buildConfig(opts);
    await refuseIfRunning(opts.home, configSocket(config, opts.home));
    fs.mkdirSync(opts.home, { recursive: true, mode: 0o700 });
    const logger = opts.logger === 'silent' ? silentLogger() : (opts.logger ?? fileLogger(path.join(opts.home, 'pilot.log')));
    // Daemon.start takes the home's lock (a running daemon or another startNode() on it: DAEMON_RUNNING)
    // and saves the config only once the node runs.
    const daemon = await Daemon.start({ home: opts.home, config, logger, holder: 'embedded', socket: opts.socket });
    if (opts.join !== undefined) {
      // the code path of `daemon start --join` (src/daemon/main.ts): a failed join stops the node
      const joined = await daemon.networks.join(opts.join).catch(async (err: unknown) => {
        await daemon.stop();
        throw err;
      });
      logger.info({ net: joined.membership.net, name: joined.membership.name, already: joined.already }, 'network joined');
    }
    const b = new EmbeddedBackend(daemon);
    if (opts.socket) {
      try {
        b.ipc = await startIpcServer(opts.socket, b.handlers, (err) => logger.error({ err }, 'ipc handler failed'));
      } catch (err) {
        await daemon.stop();
        throw err;
      }
    }
    return b;
  }

  /** The IPC server's own dispatch (unknown method, params checked against the contract), minus the socket. */
  private async run(method: Method, params: unknown, ctx: HandlerContext): Promise<unknown> {
    try {
      if (this.closing) throw new PilotError('BAD_REQUEST', 'this embedded node is stopped', 'startNode() again');
      return await invoke(this.handlers, method, params, ctx);
    } catch (err) {
      throw asPilotError(err);
    }
  }

  async call<M extends Method>(method: M, ...[params]: ParamsArg<M>): Promise<ResultOf<M>> {
    const r = await this.run(method, params ?? {}, { emit: () => {}, closed: new Promise(() => {}), isClosed: () => false });
    if (r instanceof PipeResult) {
      r.pipe.destroy();
      throw new PilotError('BAD_REQUEST', `${method} answers with a pipe`);
    }
    // Same shapes as over IPC (which carries JSON): the handler's ResultOf<M>.
    return JSON.parse(JSON.stringify(r ?? null));
  }

  subscribe<M extends Method>(method: M, params: ParamsIn<M>, onEvent: EventCallback<M>): Subscription<ResultOf<M> | undefined> {
    // The handler emits the contract's events of `method`.
    const deliver = onEvent as AnyEventHandler;
    let cancelled = false;
    let markClosed!: () => void;
    const closed = new Promise<void>((r) => (markClosed = r));
    const ctx: HandlerContext = {
      emit: (event, data) => {
        if (!cancelled && event !== 'alive') deliver(event, JSON.parse(JSON.stringify(data ?? null)));
      },
      closed,
      isClosed: () => cancelled,
    };
    const sub: Subscription<ResultOf<M> | undefined> = {
      done: this.run(method, params, ctx).then((r) => r as ResultOf<M>),
      cancel: () => {
        cancelled = true;
        markClosed();
      },
    };
    this.subs.add(sub);
    void sub.done.catch(() => {}).finally(() => this.subs.delete(sub));
    return sub;
  }

  async pipe<M extends PipeMethod>(method: M, params: ParamsIn<M>): Promise<OpenedPipe<ResultOf<M>>> {
    const r = await this.run(method, params, { emit: () => {}, closed: new Promise(() => {}), isClosed: () => false });
    if (!(r instanceof PipeResult)) throw new PilotError('BAD_REQUEST', `${method} does not answer with a pipe`);
    // the handler of a pipe method answers PipeResult<ResultOf<M>> (server.ts Reply)
    return { stream: r.pipe, result: r.result as ResultOf<M> };
  }

  /** In-process streams carry their own errors and resets. */
  pipeControl(): undefined {
    return undefined;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const s of this.subs) s.cancel();
      await this.ipc?.close().catch(() => {});
      await this.daemon.stop();
    })();
    return this.closing;
  }
}
