// IPC methods of the daemon: what pilotctl and the SDK can ask for.
import { configSocket } from './config.ts';
import crypto from 'node:crypto';
import { formatAddress, type Address } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import { PipeResult, type Handlers } from '../ipc/server.ts';
import type { NodeInfo, RecvDatagram } from '../ipc/api.ts';
import type { Daemon } from './daemon.ts';
import type { IncomingStream } from './ports.ts';
import { park } from './accept-queue.ts';
import { ECHO_PORT } from './services/echo.ts';
import { echoProbe, rttSummary } from './echo-probe.ts';
import { SINK_PORT } from './services/sink.ts';
import { sdkHandlers } from './sdk-handlers.ts';
import { gatewayHandlers } from './gateway-handlers.ts';
import { networkHandlers } from './network-ipc.ts';
import { serviceHandlers } from './service-handlers.ts';
import { connectionHandlers } from './connection-handlers.ts';
import { readUntilDone } from './ipc-wait.ts';

/** Resolve when the stream is fully read (or reject on error / timeout). */
function readAll(stream: IncomingStream, timeoutMs: number, maxBytes = 16 << 20): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      stream.destroy();
      resolve(Buffer.concat(chunks));
    }, timeoutMs);
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        clearTimeout(timer);
        stream.destroy();
        reject(new PilotError('FRAME_TOO_LARGE', `reply larger than ${maxBytes} bytes`));
        return;
      }
      chunks.push(c);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export function daemonInfo(d: Daemon): NodeInfo {
  return {
    // Daemon.start() registers (and so has an address) before any IPC handler can run.
    address: formatAddress(d.address!),
    hostname: d.config.hostname ?? null,
    email: d.config.email,
    public: d.config.public,
    publicKey: d.identity.publicKey.toString('base64'),
    registry: d.config.registry,
    registryOnline: d.registryOnline,
    observed: d.observed ?? null,
    nat: d.natType,
    uplink: d.uplinkKind,
    socket: configSocket(d.config, d.home, 'daemon'),
    home: d.home,
    pid: process.pid,
    version: d.version,
    uptimeSec: Math.round((Date.now() - d.startedAt) / 1000),
    peers: d.listPeers().length,
    portmap: d.portmapStatus(),
    candidates: d.candidates(),
    excludedInterfaces: d.excludedInterfaces(),
  };
}

export function ipcHandlers(d: Daemon, requestStop: () => void): Handlers {
  // Accept queues for IPC listeners: listen() reports ids, accept(id) takes the stream.
  const pendingAccepts = new Map<string, IncomingStream>();

  return {
    info: () => daemonInfo(d),
    status: () => daemonInfo(d),
    stop: () => {
      setTimeout(requestStop, 10);
      return { stopping: true as const, pid: process.pid };
    },
    // Deregistered (or the rendezvous refused: a coded error, and the daemon keeps running), then stopped:
    // a daemon still up would be reachable by its peers and re-register on its next heartbeat.
    deregister: async () => {
      const address = formatAddress(d.address!);
      const r = await d.deregister();
      setTimeout(requestStop, 10);
      return { address, removed: r.removed, stopping: true as const, pid: process.pid };
    },
    set_hostname: async (p) => {
      await d.setHostname(p.hostname);
      return { hostname: p.hostname };
    },
    clear_hostname: async () => {
      await d.setHostname(undefined);
      return { hostname: null };
    },
    set_visibility: async (p) => {
      await d.setVisibility(p.public);
      return { public: p.public };
    },
    rotate_key: async () => {
      const r = await d.rotateKey();
      return { address: formatAddress(r.address), publicKey: r.publicKey.toString('base64'), oldKey: r.oldKey.toString('base64'), already: r.already };
    },
    find: async (p) => {
      const r = await d.resolveTarget(p.target);
      return {
        address: formatAddress(r.address),
        hostname: r.hostname ?? null,
        public: r.public,
        online: r.online,
        publicKey: r.publicKey.toString('base64'),
      };
    },
    peers: () => ({
      peers: d.listPeers().map((peer) => {
        const s = peer.conn.stats();
        return {
          address: formatAddress(peer.address),
          hostname: peer.hostname ?? null,
          ...d.pathInfo(peer),
          rttMs: s.srttMs,
          bytesSent: s.bytesSent,
          bytesReceived: s.bytesReceived,
          streams: s.streamsOpen,
          lastSeenMsAgo: peer.lastSeen ? Date.now() - peer.lastSeen : null,
          ...d.packetSizeInfo(peer),
        };
      }),
    }),
    stats: () => ({ sessions: d.sessionStats(), daemon: d.counters, verifier: d.verifier.stats }),

    ping: async (p, ctx) => {
      const { target, count, intervalMs, timeoutMs } = p;
      const peer = await d.peerFor(target);
      const rtts = await echoProbe(d, peer, {
        count,
        intervalMs,
        timeoutMs,
        stopped: () => ctx.isClosed(),
        onProbe: (seq, rtt) =>
          ctx.emit('probe', { seq, ok: rtt !== null, rttMs: rtt === null ? null : Math.round(rtt * 1000) / 1000, path: d.pathInfo(peer).path }),
      });
      return {
        target: formatAddress(peer.address),
        hostname: peer.hostname ?? null,
        ...d.pathInfo(peer),
        sent: count,
        received: rtts.length,
        lossPct: Math.round(((count - rtts.length) / count) * 1000) / 10,
        ...rttSummary(rtts),
      };
    },

    connect: async (p) => {
      const { target, port, timeoutMs } = p;
      const message = p.message ?? '';
      const stream = await d.dial(target, port);
      stream.end(Buffer.from(message, 'utf8'));
      const reply = await readAll(stream, timeoutMs);
      return { target, port, sent: Buffer.byteLength(message), reply: reply.toString('utf8') };
    },

    send: async (p) => {
      const { target, port } = p;
      const data = Buffer.from(p.data, p.encoding === 'base64' ? 'base64' : 'utf8');
      const peer = await d.peerFor(target);
      // Default source port: the destination port, except for echo (7 is the echo
      // service's own port, never a client's: the reply needs a port of ours to land on).
      const srcPort = p.srcPort ?? (port === ECHO_PORT ? d.ports.ephemeral() : port);
      await d.sendDatagram(peer.address, srcPort, port, data);
      return { target: formatAddress(peer.address), port, bytes: data.length };
    },

    recv: async (p, ctx) => {
      const { port, count, timeoutMs } = p; // count 0 = unbounded (until timeout / client leaves); timeoutMs 0 = none
      const messages: RecvDatagram[] = [];
      await readUntilDone(ctx, timeoutMs, (finish) =>
        d.ports.onDatagram(port, (dg) => {
          const m = { from: formatAddress(dg.from), srcPort: dg.srcPort, data: dg.data.toString('utf8'), dataBase64: dg.data.toString('base64') };
          messages.push(m);
          ctx.emit('datagram', m);
          if (count > 0 && messages.length >= count) finish();
        }),
      );
      return { port, received: messages.length, messages };
    },

    bench: async (p) => {
      const { target, sizeMb } = p;
      const total = Math.round(sizeMb * 1024 * 1024);
      const stream = await d.dial(target, SINK_PORT);
      const chunk = crypto.randomBytes(64 * 1024);
      const t0 = process.hrtime.bigint();
      const replyP = readAll(stream, 600_000);
      let sent = 0;
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!stream.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          // Each wait takes its listeners back: a long bench waits thousands of times
          // (MaxListenersExceededWarning, and a leak, before).
          await new Promise<void>((resolve, reject) => {
            const done = (err?: Error): void => {
              stream.off('drain', done);
              stream.off('error', done);
              if (err) reject(err);
              else resolve();
            };
            stream.on('drain', done);
            stream.on('error', done);
          });
        }
      }
      stream.end();
      const reply = await replyP;
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const acked = reply.length >= 8 ? Number(reply.readBigUInt64BE(0)) : -1;
      if (acked !== total) throw new PilotError('CONNECTION_RESET', `sink confirmed ${acked} of ${total} bytes`);
      return { target, bytes: total, seconds: Math.round(seconds * 1000) / 1000, mbPerSec: Math.round((total / 1e6 / seconds) * 100) / 100 };
    },

    // ---- trust ----
    handshake: (p) => d.mirror.request(p.target, p.reason),
    pending: async () => {
      await d.syncTrust().catch(() => {});
      return { incoming: d.trust.listIncoming(), outgoing: d.trust.listOutgoing() };
    },
    approve: (p) => d.mirror.approve(p.node),
    reject: (p) => d.mirror.reject(p.node, p.reason),
    trust: async () => {
      await d.syncTrust().catch(() => {});
      return { trusted: d.trust.listTrusted() };
    },
    untrust: (p) => d.mirror.revoke(p.node),

    // ---- raw stream pipes (SDK / tests) ----
    dial: async (p) => {
      const stream = await d.dial(p.target, p.port);
      return new PipeResult({ port: stream.remotePort }, stream);
    },

    listen: async (p, ctx) => {
      const port = p.port;
      const off = d.ports.listen(port, (stream: IncomingStream, from: Address) => {
        const id = park(pendingAccepts, stream);
        ctx.emit('connection', { id, from: formatAddress(from), remotePort: stream.remotePort, port });
      });
      ctx.emit('listening', { port });
      await ctx.closed;
      off();
      return { port };
    },

    accept: (p) => {
      const id = p.id;
      const stream = pendingAccepts.get(id);
      if (!stream) throw new PilotError('NOT_FOUND', `no pending connection ${id}`, 'accept ids come from a listen connection event and expire after 30 s');
      pendingAccepts.delete(id);
      return new PipeResult({ id }, stream);
    },
    ...sdkHandlers(d, pendingAccepts), // sdk_* methods and events for src/sdk (see sdk-handlers.ts)
    ...gatewayHandlers(d), // gateway_start/map/unmap/list/stop, expose, expose_list, expose_remove
    ...networkHandlers(d), // fleets: network_*, set_tags, clear_tags
    ...serviceHandlers(d), // built-in services: messages, files, pub/sub, tasks, webhooks
    ...connectionHandlers(d), // connections, disconnect, traceroute (upstream parity, issue 21)
  };
}
