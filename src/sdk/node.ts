// PilotNode: what an agent holds, whether the node is the local daemon
// (connect()) or embedded in this process (startNode()).
import { EventEmitter } from 'node:events';
import { PilotError } from '../util/errors.ts';
import type { Backend, Subscription } from './backend.ts';
import { PilotSocket } from './socket.ts';
import { PilotServer } from './server.ts';
import { PilotDatagramSocket } from './datagram.ts';
import { Files, Messages, Tasks, Webhooks } from './services.ts';
import { PubSub } from './pubsub.ts';
import { Stdio } from './stdio.ts';
import { Networks, type FindQuery, type FoundMembers } from './networks.ts';
import { FailureMemory, checkAttempts, dialFirst, orderMembers, type DialAnyOptions, type DialAttempt, type DiscoverQuery } from './fleet.ts';
import type { NetworkMemberInfo } from '../ipc/api-types.ts';
import type {
  BroadcastResult,
  ConnectionInfo,
  FoundNode,
  NodeInfo,
  PeerInfo,
  PendingTrust,
  PilotNodeEvents,
  PingResult,
  TraceResult,
  TrustAnswer,
  TrustedPeer,
} from './types.ts';

export interface DialOptions {
  /** How long to wait for the peer to take the stream (default 10 s). */
  timeoutMs?: number;
}

export interface PingOptions {
  count?: number;
  intervalMs?: number;
  timeoutMs?: number;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PilotError('BAD_ARGUMENT', `virtual port must be 0..65535, got ${port}`);
  return port;
}

const EVENTS = new Set(['peer-up', 'peer-down', 'path', 'trust-request', 'trust-approved', 'trust-rejected', 'trust-revoked']);

export class PilotNode extends EventEmitter<PilotNodeEvents> {
  /** 'ipc': the local daemon; 'embedded': a node running in this process. */
  readonly mode: 'ipc' | 'embedded';
  /** This node's virtual address. */
  readonly address: string;
  readonly hostname: string | null;
  // ---- the daemon's built-in services (each needs mutual trust with the peer) ----
  /** Messages into peers' inboxes (port 1001), and this node's inbox. */
  readonly messages: Messages;
  /** Files to peers (port 1001), and the files received. */
  readonly files: Files;
  /** Publish / subscribe on topics of a node's broker (port 1002). */
  readonly pubsub: PubSub;
  /** Tasks between agents (port 1003): submit, accept / decline, execute, send results. */
  readonly tasks: Tasks;
  /** Text lines to peers' stdio queues, and from this node's (port 1000). */
  readonly stdio: Stdio;
  /** This node's webhook for events. */
  readonly webhooks: Webhooks;
  /** Fleets: networks this node administers or belongs to, invites, policy, audit. */
  readonly networks: Networks;
  private readonly backend: Backend;
  private events: Subscription | undefined;
  private watching: Promise<void> | undefined;
  private peersUp: string[] = [];
  /** Members dialAny found down lately (bounded, expiring): tried last for a while. */
  private readonly downLately = new FailureMemory();

  private constructor(backend: Backend, info: NodeInfo) {
    super();
    this.backend = backend;
    this.mode = backend.kind;
    this.address = info.address;
    this.hostname = info.hostname;
    this.messages = new Messages(backend);
    this.files = new Files(backend);
    this.pubsub = new PubSub(backend);
    this.tasks = new Tasks(backend);
    this.stdio = new Stdio(backend);
    this.webhooks = new Webhooks(backend);
    this.networks = new Networks(backend);
  }

  static async create(backend: Backend): Promise<PilotNode> {
    try {
      return new PilotNode(backend, await backend.call('info'));
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  // ---- this node and its peers ----

  info(): Promise<NodeInfo> {
    return this.backend.call('info');
  }

  /** Registry lookup of a hostname or address (private nodes only for trusted peers). */
  find(target: string): Promise<FoundNode>;
  /** Nodes with a tag: members of `network` (credential or self tag), or without it public nodes with that self tag. */
  find(query: FindQuery): Promise<FoundMembers>;
  find(q: string | FindQuery): Promise<FoundNode | FoundMembers> {
    if (typeof q === 'string') return this.backend.call('find', { target: q });
    return this.backend.call('network_find', {
      tag: q.tag,
      online: q.online ?? false,
      ...(q.network !== undefined ? { net: String(q.network) } : {}),
    });
  }

  /** Self-declared capability tags, for discovery (find / discover); policies never use them. Resolves with the tags set. */
  async setTags(tags: string[]): Promise<string[]> {
    return (await this.backend.call('set_tags', { tags })).tags;
  }

  async clearTags(): Promise<void> {
    await this.backend.call('clear_tags');
  }

  async peers(): Promise<PeerInfo[]> {
    return (await this.backend.call('peers')).peers;
  }

  ping(target: string, opts: PingOptions = {}): Promise<PingResult> {
    return this.backend.call('ping', { target, count: opts.count ?? 1, intervalMs: opts.intervalMs ?? 200, timeoutMs: opts.timeoutMs ?? 3000 });
  }

  /** Open streams with every peer (`pilotctl connections`): ids for disconnect(), bytes, age, path. */
  async connections(): Promise<ConnectionInfo[]> {
    return (await this.backend.call('connections')).connections;
  }

  /**
   * Close one open stream by its id from connections(): both ends fail with CONNECTION_RESET saying
   * it was closed on purpose; NOT_FOUND when it is gone already. Resolves with the stream as it was.
   */
  disconnect(id: number): Promise<ConnectionInfo> {
    return this.backend.call('disconnect', { id });
  }

  /** The path to `target` (direct endpoint, or the relay and rendezvous) and each leg's RTT (`pilotctl traceroute`). */
  traceroute(target: string, opts: { count?: number; timeoutMs?: number } = {}): Promise<TraceResult> {
    return this.backend.call('traceroute', { target, count: opts.count ?? 3, timeoutMs: opts.timeoutMs ?? 3000 });
  }

  // ---- streams ----

  /**
   * Open a stream to `port` on `target` (address, node id or hostname). Resolves
   * once the peer took it; rejects with NOT_TRUSTED, CONNECTION_REFUSED,
   * NOT_FOUND, TIMEOUT, ... (PilotError codes).
   */
  async dial(target: string, port: number, opts: DialOptions = {}): Promise<PilotSocket> {
    const { stream, result } = await this.backend.pipe('sdk_dial', { target, port: checkPort(port), timeoutMs: opts.timeoutMs ?? 10_000 });
    return new PilotSocket(
      stream,
      {
        remoteAddress: result.remoteAddress,
        remoteHostname: result.remoteHostname ?? null,
        remotePort: result.remotePort,
        localAddress: this.address,
        localPort: result.localPort,
      },
      this.backend.pipeControl(result.pipe),
    );
  }

  // ---- fleets: capability discovery ----

  /** Members of `network` with `tag` (credential or self tag), online ones only unless `online: false`; addresses are N:… (in that network). */
  async discover(q: DiscoverQuery): Promise<NetworkMemberInfo[]> {
    return (await this.find({ tag: q.tag, network: q.network, online: q.online ?? true })).nodes;
  }

  /**
   * Open a stream to `port` on some online member of `network` with `tag`:
   * members we already have a session with first (nearer first), the others at
   * random so callers spread over them; on an error another member could fix
   * (unreachable, timeout, refused, PERMISSION_DENIED, ...) the next one is
   * tried, up to `attempts`. Members that just timed out or were unreachable
   * are tried last for 30 s (they may still be listed online). Resolves with
   * the socket, the member that took it and the attempts that failed; rejects
   * with a DialAnyError (code, hint and `attempts`: what each member
   * answered), NOT_FOUND when no member is online.
   */
  async dialAny(
    q: { network: string | number; tag: string },
    port: number,
    opts: DialAnyOptions = {},
  ): Promise<{ socket: PilotSocket; member: NetworkMemberInfo; failed: DialAttempt[] }> {
    checkPort(port);
    const attempts = checkAttempts(opts.attempts ?? 3); // before asking anyone
    const [members, peers] = await Promise.all([
      opts.members ?? this.discover({ network: q.network, tag: q.tag, online: true }),
      this.peers().catch(() => []), // only a preference: without it, random order
    ]);
    const ordered = orderMembers(members, peers, this.address, Math.random, this.downLately);
    const dial = (m: NetworkMemberInfo) => this.dial(m.address, port, { timeoutMs: opts.timeoutMs ?? 5000 });
    const r = await dialFirst(ordered, dial, { network: q.network, tag: q.tag, port }, attempts, this.downLately);
    return { socket: r.value, member: r.member, failed: r.failed };
  }

  /** Accept streams on a virtual port: 'connection' events carry PilotSockets. */
  async listen(port: number, onConnection?: (socket: PilotSocket) => void): Promise<PilotServer> {
    const srv = await PilotServer.open(this.backend, checkPort(port), this.address);
    if (onConnection) srv.on('connection', onConnection);
    return srv;
  }

  // ---- datagrams ----

  /** Receive (and send from) datagrams on a virtual port. */
  bind(port: number): Promise<PilotDatagramSocket> {
    return PilotDatagramSocket.bind(this.backend, checkPort(port));
  }

  /** Send one datagram (at most about 1180 bytes) to `target`:`port`. */
  async send(target: string, port: number, data: Buffer | string, opts: { srcPort?: number } = {}): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await this.backend.call('send', {
      target,
      port: checkPort(port),
      data: buf.toString('base64'),
      encoding: 'base64',
      ...(opts.srcPort !== undefined ? { srcPort: checkPort(opts.srcPort) } : {}),
    }); // the daemon defaults it to port (ephemeral for echo)
  }

  /**
   * One datagram to every online member of `network` (id or name) whose policy lets this node reach
   * `port` (`pilotctl broadcast`); per-member results and counts. Bounded: see SECURITY.md.
   */
  broadcast(network: string | number, port: number, data: Buffer | string): Promise<BroadcastResult> {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.backend.call('broadcast', { net: String(network), port: checkPort(port), data: buf.toString('base64'), encoding: 'base64' });
  }

  // ---- trust (nothing passes between nodes before both agreed) ----

  /** Ask `target` for mutual trust; status 'trusted' if it had asked us too, else 'pending'. */
  handshake(target: string, reason?: string): Promise<TrustAnswer> {
    return this.backend.call('handshake', { target, ...(reason !== undefined ? { reason } : {}) });
  }

  pending(): Promise<PendingTrust> {
    return this.backend.call('pending');
  }

  approve(node: string): Promise<TrustAnswer> {
    return this.backend.call('approve', { node });
  }

  reject(node: string, reason?: string): Promise<TrustAnswer> {
    return this.backend.call('reject', { node, ...(reason !== undefined ? { reason } : {}) });
  }

  async trusted(): Promise<TrustedPeer[]> {
    return (await this.backend.call('trust')).trusted;
  }

  untrust(node: string): Promise<TrustAnswer> {
    return this.backend.call('untrust', { node });
  }

  // ---- events ----

  /**
   * Start receiving events ('peer-up', 'peer-down', 'path', 'trust-request',
   * 'trust-approved', 'trust-rejected', 'trust-revoked'). Resolves once the
   * subscription is live, with the peers that are up at that moment.
   */
  watch(): Promise<string[]> {
    this.watching ??= new Promise<void>((resolve, reject) => {
      const sub = this.backend.subscribe('events', {}, (event, data) => {
        if (event === 'subscribed') {
          this.peersUp = data.peersUp;
          return resolve();
        }
        if (EVENTS.has(event)) (this.emit as (e: string, d: unknown) => boolean)(event, data);
      });
      this.events = sub;
      sub.done.then(
        () => {},
        (err: Error) => {
          this.watching = undefined;
          reject(err);
          if (this.listenerCount('events-lost') > 0) this.emit('events-lost', err);
        },
      );
    });
    return this.watching.then(() => this.peersUp);
  }

  /** Stop events, listeners and subscriptions; an embedded node stops. Open sockets stay usable over IPC. */
  async close(): Promise<void> {
    this.events?.cancel();
    await this.backend.close();
  }
}
