// The daemon's IPC contract: every method, its params schema (checked once, in
// src/ipc/server.ts, before the handler runs), its result type and, for the
// streaming methods, the events it sends before the result. The daemon's
// handlers, IpcClient.call and the SDK are typed from this table, so a renamed
// field or a changed bound is one edit here and a type error wherever it is used.
//
// Bounds and messages are those the handlers checked by hand before (see
// api-fields.ts): a request is JSON from the socket's owner, but still checked.
import path from 'node:path';
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { flag, int, loose, num, oneOf, optNum, optStr, port, refuseUnless, required, str, strictNum, text } from './api-fields.ts';
import type * as T from './api-types.ts';

export type * from './api-types.ts';

import { MAX_EVENT_DATA } from '../services/pubsub.ts';

/** Largest pub/sub event payload: the broker's own limit. */
export { MAX_EVENT_DATA };
/** Largest message body as sent over IPC (base64 of a 64 MiB message fits). */
export const MAX_MESSAGE_PARAM = 96 * 1024 * 1024;

const none = v.object({});

/** Tag lists (fleets): the daemon and the rendezvous check each tag (validateTags); here only the shape. */
const tagList = () =>
  v.pipe(
    loose<string[] | null>(),
    refuseUnless(
      (t: string[] | null | undefined) =>
        t === undefined || t === null || (Array.isArray(t) && t.length <= 16 && t.every((x) => typeof x === 'string' && x.length <= 64)),
      'tags must be a list of at most 16 strings',
      'e.g. --tag worker --tag gpu',
    ),
    v.transform((t) => t ?? []),
  );
const TASK_ID = 64;

const gatewayPorts = {
  /** A port spec ("80", "8080:80,443"); parsed by the gateway. */
  ports: v.pipe(
    loose<string | number | null>(),
    v.transform((x) => (x === undefined || x === null ? undefined : String(x))),
  ),
  portOffset: v.pipe(
    loose<number | string | null>(),
    v.transform((x) => (x === undefined || x === null ? 0 : Number(x))),
  ),
};

/** Params schema per method. Object keys are in the order the handlers used to check them (the first bad one is reported). */
export const PARAMS = {
  // ---- this node ----
  info: none,
  status: none,
  stop: none,
  set_hostname: v.object({ hostname: str() }),
  clear_hostname: none,
  set_visibility: v.object({ public: flag() }),
  find: v.object({ target: str() }),
  peers: none,
  stats: none,

  // ---- datagrams, streams, measurements ----
  ping: v.object({ target: str(), count: num(4, 1, 10000), intervalMs: num(1000, 0, 60000), timeoutMs: num(3000, 10, 60000) }),
  connect: v.object({ target: str(), port: port(1000), message: optStr(), timeoutMs: num(5000, 10, 600000) }),
  send: v.object({
    target: str(),
    port: port(),
    data: str(),
    encoding: loose<'utf8' | 'base64'>(),
    /** Default: the destination port, except for echo (the handler decides). */
    srcPort: optNum(0, 65535),
  }),
  /** count 0 = until the timeout or the client leaves; timeoutMs 0 = none. */
  recv: v.object({ port: port(), count: num(1, 0, 1e9), timeoutMs: num(0, 0, 86400000) }),
  bench: v.object({ target: str(), sizeMb: num(10, 0.001, 4096) }),
  /** Open streams with every peer (upstream `pilotctl connections`). */
  connections: none,
  /** Closes one stream by its id from `connections`: both ends fail with CONNECTION_RESET, saying why. */
  disconnect: v.object({ id: int(1, Number.MAX_SAFE_INTEGER) }),
  /** The path to a peer and the RTT of each leg; count probes per leg. */
  traceroute: v.object({ target: str(), count: num(3, 1, 20), timeoutMs: num(3000, 10, 60000) }),
  /** A datagram to every online member of a network the policy lets us reach on `port` (bounded: src/daemon/broadcast.ts). */
  broadcast: v.object({ net: str(63), port: port(), data: str(4096), encoding: loose<'utf8' | 'base64'>() }),

  // ---- trust ----
  handshake: v.object({
    reason: v.pipe(
      optStr(),
      refuseUnless((r: string | undefined) => r === undefined || r.length <= 256, 'reason is limited to 256 characters'),
    ),
    target: str(),
  }),
  pending: none,
  approve: v.object({ node: str() }),
  reject: v.object({ node: str(), reason: optStr() }),
  trust: none,
  untrust: v.object({ node: str() }),

  // ---- fleets (issue 18; src/daemon/network-ipc.ts). `net` is a network id or name. ----
  network_create: v.object({ name: str(63) }),
  network_list: none,
  network_members: v.object({ net: str(63) }),
  /** expires: seconds or "30m", "24h", "7d"; uses 0 = unlimited. */
  network_invite: v.object({
    net: str(63),
    tags: tagList(),
    uses: num(0, 0, 0xffffffff),
    expires: optStr(32),
    ephemeral: flag(),
  }),
  network_invites: v.object({ net: str(63) }),
  network_revoke_invite: v.object({ net: str(63), inviteId: str(64) }),
  network_join: v.object({ token: str(4096) }),
  network_leave: v.object({ net: str(63) }),
  network_kick: v.object({ net: str(63), node: str(256) }),
  network_delete: v.object({ net: str(63) }),
  /** Without text: get; with text: set (checked by the policy parser, errors with line:column). */
  network_policy: v.object({ net: str(63), text: optStr(16 * 1024), source: optStr(4096) }),
  network_audit: v.object({ net: str(63), statements: flag() }),
  set_tags: v.object({
    tags: tagList(),
  }),
  clear_tags: none,
  network_find: v.object({ tag: str(64), net: optStr(63), online: flag() }),
  /** pilotctl deregister (issue 18): the signed deregister, then the daemon stops. */
  deregister: none,

  // ---- raw stream pipes (pilotctl, tests) ----
  dial: v.object({ target: str(), port: port() }),
  listen: v.object({ port: port() }),
  accept: v.object({ id: str() }),

  // ---- the SDK (src/daemon/sdk-handlers.ts) ----
  sdk_dial: v.object({ port: port(), target: text(), timeoutMs: strictNum(10_000, 10, 600_000) }),
  sdk_accept: v.object({ id: text() }),
  sdk_pipe_error: v.object({ pipe: text() }),
  /** code and message are the application's: a bad one falls back to a default. */
  sdk_reset: v.object({ pipe: text(), code: loose<string>(), message: loose<string>() }),
  sdk_cancel: v.object({ token: text() }),
  sdk_listen: v.object({ port: port() }),
  sdk_recv: v.object({ port: port() }),
  events: none,

  // ---- gateway, expose ----
  gateway_start: v.object({
    targets: required<string[]>(
      (t) => Array.isArray(t) && t.length > 0 && t.length <= 256 && t.every((x: unknown) => typeof x === 'string'),
      'give at least one target (address or hostname)',
      'e.g. pilotctl gateway start --ports 80 0:0000.0000.037D',
    ),
    ...gatewayPorts,
    subnet: optStr(1000),
  }),
  gateway_map: v.object({ ...gatewayPorts, ip: optStr(1000), target: str(1000) }),
  gateway_unmap: v.object({ ip: str(1000) }),
  gateway_list: none,
  gateway_stop: none,
  expose: v.object({ port: port(), target: str(1000) }),
  expose_list: none,
  expose_remove: v.object({ port: port() }),

  // ---- built-in services ----
  /** count 0 = until the timeout or the client leaves (lines are then only streamed). */
  stdio_recv: v.object({ from: optStr(256), count: num(0, 0, 1e9), timeoutMs: num(0, 0, 86_400_000) }),
  stdio_status: none,
  send_message: v.object({
    target: str(),
    type: v.pipe(
      oneOf(['text', 'json', 'binary'] as const, (t) => `unknown message type ${JSON.stringify(t)}`, 'use --type text, json or binary'),
      v.transform((t) => t ?? 'text'),
    ),
    /** text or json as UTF-8, binary as base64 (the handler checks those). */
    data: str(MAX_MESSAGE_PARAM),
  }),
  inbox: v.object({ clear: flag() }),
  send_file: v.object({
    target: str(),
    path: v.pipe(
      str(4096),
      refuseUnless((p: string) => path.isAbsolute(p), 'path must be absolute (pilotctl resolves it)'),
    ),
  }),
  received: v.object({ clear: flag() }),
  publish: v.object({
    target: str(),
    topic: str(256),
    data: v.pipe(
      optStr(MAX_EVENT_DATA),
      v.transform((d) => d ?? ''),
    ),
  }),
  /** topic is a pattern (the broker checks it); count 0 = until the timeout or the client leaves. */
  subscribe: v.object({ target: str(), topic: str(256), count: num(0, 0, 1e9), timeoutMs: num(0, 0, 86_400_000) }),
  pubsub_status: none,
  task_submit: v.object({ target: str(), description: str(1 << 20) }),
  task_list: v.object({ type: oneOf(['received', 'submitted'] as const, () => '--type must be received or submitted') }),
  task_accept: v.object({ id: str(TASK_ID) }),
  task_decline: v.object({ id: str(TASK_ID), reason: optStr(1024) }),
  /** No id: the oldest accepted task. */
  task_execute: v.object({ id: optStr(TASK_ID) }),
  task_send_results: v.object({ id: str(TASK_ID), results: str(4 << 20) }),
  set_webhook: v.object({ url: str(4096) }),
  clear_webhook: none,
  webhook_status: none,

  // ---- key rotation (issue 18) ----
  rotate_key: none,
} satisfies Record<string, v.GenericSchema<Record<string, unknown>, Record<string, unknown>>>;

export type Method = keyof typeof PARAMS;
export const METHODS = Object.keys(PARAMS) as Method[];

/** What a handler gets: params checked, defaults filled in. */
export type ParamsOf<M extends Method> = v.InferOutput<(typeof PARAMS)[M]>;
/** What a caller sends: defaults may be left out. */
export type ParamsIn<M extends Method> = v.InferInput<(typeof PARAMS)[M]>;

/** Is `method` one of the contract's? */
export function isMethod(method: string): method is Method {
  return Object.hasOwn(PARAMS, method);
}

/** The result of each method (for pipe methods: the reply before the bytes). */
export interface Results {
  info: T.NodeInfo;
  status: T.NodeInfo;
  stop: { stopping: true; pid: number };
  set_hostname: { hostname: string };
  clear_hostname: { hostname: null };
  set_visibility: { public: boolean };
  find: T.FoundNode;
  peers: { peers: T.PeerInfo[] };
  stats: T.DaemonStats;
  ping: T.PingResult;
  connect: { target: string; port: number; sent: number; reply: string };
  send: { target: string; port: number; bytes: number };
  recv: { port: number; received: number; messages: T.RecvDatagram[] };
  bench: { target: string; bytes: number; seconds: number; mbPerSec: number };
  connections: { connections: T.ConnectionInfo[] };
  disconnect: T.ConnectionInfo;
  traceroute: T.TraceResult;
  broadcast: T.BroadcastResult;
  handshake: T.TrustAnswer;
  pending: T.PendingTrust;
  approve: T.TrustAnswer;
  reject: T.TrustAnswer;
  trust: { trusted: T.TrustedPeer[] };
  untrust: T.TrustAnswer;
  network_create: { net: number; name: string; admin: string };
  network_list: { networks: T.NetworkInfo[] };
  network_members: { net: number; name: string; members: T.NetworkMemberInfo[] };
  network_invite: { net: number; name: string; token: string; inviteId: string; tags: string[]; uses: number; expires: number; ephemeral: boolean };
  network_invites: { net: number; invites: T.NetworkInviteInfo[] };
  network_revoke_invite: { net: number; inviteId: string; revoked: true };
  network_join: { net: number; name: string; address: string; tags: string[]; ephemeral: boolean; already: boolean };
  network_leave: { net: number; left: true };
  network_kick: { net: number; node: string; kicked: true };
  network_delete: { net: number; deleted: true };
  network_policy: { net: number; text: string; updated: number; verified: boolean | null; set: boolean };
  network_audit: { net: number; entries: T.NetworkAuditEntry[] };
  set_tags: { tags: string[] };
  clear_tags: { tags: [] };
  network_find: { tag: string; net: number | null; nodes: T.NetworkMemberInfo[] };
  deregister: T.Deregistered;
  dial: { port: number };
  listen: { port: number };
  accept: { id: string };
  sdk_dial: T.SdkDialed;
  sdk_accept: T.SdkAccepted;
  sdk_pipe_error: T.IpcErrorJson | null;
  sdk_reset: { reset: boolean };
  sdk_cancel: { cancelled: boolean };
  sdk_listen: { port: number };
  sdk_recv: { port: number };
  events: null;
  gateway_start: T.GatewayState;
  gateway_map: T.GatewayMapping;
  gateway_unmap: T.MappingInfo;
  gateway_list: T.GatewayState;
  gateway_stop: { stopped: T.MappingInfo[] };
  expose: T.ExposeInfo;
  expose_list: { exposes: T.ExposeInfo[] };
  expose_remove: T.ExposeInfo;
  stdio_recv: { port: number; from: string | null; received: number; messages?: T.StdioMessage[]; queue: T.StdioStats };
  stdio_status: T.StdioStats;
  send_message: T.SendMessageResult;
  inbox: { count: number; messages: T.InboxEntry[] } | { cleared: number };
  send_file: T.SendFileResult;
  received: T.ReceivedList | { cleared: number };
  /** A local publish names this node as the peer. */
  publish: T.PublishResult;
  subscribe: { target: string; topic: string; received: number; events?: T.PubSubEvent[] };
  pubsub_status: T.PubSubStatus;
  task_submit: { task: T.Task };
  task_list: { count: number; tasks: T.Task[] };
  task_accept: T.TaskChange;
  task_decline: T.TaskChange;
  task_execute: T.TaskChange;
  task_send_results: T.TaskChange;
  set_webhook: T.WebhookSet;
  clear_webhook: { url: null };
  webhook_status: T.WebhookStatus;
  rotate_key: T.KeyRotation;
}

/** A heartbeat, so a killed client shows as a failed write (see src/daemon/ipc-wait.ts). */
type Keepalive = { keepalive: Record<string, never> };
/** The SDK subscriptions' heartbeat (sdk-handlers.ts hold()). */
type Alive = { alive: null };
/** A subscription's first event carries the token sdk_cancel takes. */
type Cancel = { cancel: string };

/** Events a streaming method sends before its result. */
export interface Events {
  ping: { probe: T.PingProbe };
  recv: { datagram: T.RecvDatagram } & Keepalive;
  listen: { listening: { port: number }; connection: T.IncomingConnection };
  sdk_listen: { listening: { port: number } & Cancel; connection: T.IncomingConnection } & Alive;
  sdk_recv: { listening: { port: number } & Cancel; datagram: T.SdkDatagram } & Alive;
  events: { subscribed: { peersUp: string[] } & Cancel } & T.NodeEvents & Alive;
  stdio_recv: { message: T.StdioMessage; reading: { port: number; from: string | null } } & Keepalive;
  send_file: { progress: T.FileProgress };
  subscribe: { event: T.PubSubEvent; subscribed: { target: string; peer?: string; topic: string } } & Keepalive;
}

export type ResultOf<M extends Method> = Results[M];
export type EventsOf<M extends Method> = M extends keyof Events ? Events[M] : Record<never, never>;

/** Methods whose success turns the connection into a byte pipe to an overlay stream. */
export type PipeMethod = 'dial' | 'accept' | 'sdk_dial' | 'sdk_accept';

/**
 * The branch of an either-or answer that the request asked for (inbox and
 * received answer the list, or with `clear: true` how many were cleared).
 */
export function answerWith<R extends object, K extends string>(r: R, key: K): Extract<R, Record<K, unknown>> {
  if (!(key in r)) throw new PilotError('INTERNAL', `unexpected answer from the daemon (no "${key}")`);
  return r as Extract<R, Record<K, unknown>>;
}

/**
 * The event names of each streaming method, as values (the Python package's
 * contract table is generated from them, scripts/python-contract.ts).
 * `satisfies` makes an event missing here, or one too many, a type error.
 */
export const EVENT_NAMES = {
  ping: { probe: true },
  recv: { datagram: true, keepalive: true },
  listen: { listening: true, connection: true },
  sdk_listen: { listening: true, connection: true, alive: true },
  sdk_recv: { listening: true, datagram: true, alive: true },
  events: {
    subscribed: true,
    'peer-up': true,
    'peer-down': true,
    path: true,
    'trust-request': true,
    'trust-approved': true,
    'trust-rejected': true,
    'trust-revoked': true,
    alive: true,
  },
  stdio_recv: { message: true, reading: true, keepalive: true },
  send_file: { progress: true },
  subscribe: { event: true, subscribed: true, keepalive: true },
} satisfies { [M in keyof Events]: { [E in keyof Events[M]]: true } };
