// Wire schemas of the registry protocol (see docs/ARCHITECTURE.md "Registry protocol").
// Everything arriving from the network goes through one of these (valibot) schemas
// before it is looked at: sizes, types and lengths are bounded here.
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { int, issuePath, notArray, withMessages, type Issue } from '../util/schema.ts';
import { MAX_ENDPOINT_CHARS, parseEndpoint } from './endpoint.ts';
import { NETWORK_METHODS } from './network-protocol.ts';
import { MAX_ROTATION_STATEMENT } from './rotation.ts';

/** Largest registry packet (type byte + JSON) on UDP and TCP alike. */
export const MAX_REGISTRY_PACKET = 1200;
/** A statement older or newer than this (ms) is refused as stale. */
export const FRESHNESS_MS = 60_000;
/**
 * A signed request dated further ahead of the server clock than this (ms) is
 * refused (issue 15, hole 2). Future-dated nonces outlive honest ones in the
 * replay window, so the allowance is kept to what synced clocks need (NTP keeps
 * them within milliseconds) plus a margin; the past side keeps FRESHNESS_MS for
 * slow paths and retransmissions.
 */
export const MAX_FUTURE_MS = 5_000;
/** A node is online if the rendezvous heard from it within this (ms). */
export const ONLINE_MS = 60_000;
export const MAX_LAN_ENDPOINTS = 8;

export const METHODS = [
  'hello',
  'register',
  'heartbeat',
  'set_hostname',
  'clear_hostname',
  'set_visibility',
  'resolve',
  'deregister',
  'trust_request',
  'trust_pending',
  'trust_approve',
  'trust_reject',
  'trust_revoke',
  'trust_list',
  'offline',
  ...NETWORK_METHODS,
  'rotate_key',
] as const;
export type Method = (typeof METHODS)[number];

function isCanonicalB64(s: string, bytes: number): boolean {
  const b = Buffer.from(s, 'base64');
  return b.length === bytes && b.toString('base64') === s;
}

export const b64Key = v.pipe(
  v.string(),
  v.length(44),
  v.check((s) => isCanonicalB64(s, 32), 'must be a base64 32-byte key'),
);
export const b64Sig = v.pipe(
  v.string(),
  v.length(88),
  v.check((s) => isCanonicalB64(s, 64), 'must be a base64 64-byte signature'),
);
/** A 16-byte return-routability cookie, base64 (see src/rendezvous/return-routability.ts). */
export const COOKIE_BYTES = 16;
export const cookieSchema = v.pipe(v.string(), v.length(24), v.regex(/^[A-Za-z0-9+/]{22}==$/, 'must be a base64 16-byte cookie'));
export const nonceSchema = v.pipe(v.string(), v.minLength(16), v.maxLength(44), v.regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64'));
const endpointSchema = v.pipe(
  v.string(),
  v.maxLength(MAX_ENDPOINT_CHARS),
  v.check((s) => parseEndpoint(s) !== undefined, 'must be ip:port'),
);
const lanEndpoints = v.pipe(v.array(endpointSchema), v.maxLength(MAX_LAN_ENDPOINTS));
// Hostnames are checked by normalizeHostname for a precise error; here only bounded.
const hostnameText = v.pipe(v.string(), v.maxLength(253));
/** A node address "N:XXXX.YYYY.YYYY" (parsed with parseAddress for the precise error). */
const addressText = v.pipe(v.string(), v.minLength(1), v.maxLength(32));
export const MAX_TRUST_REASON = 256;
/**
 * Reasons are shown to a human on the other node: no control characters, no
 * line/paragraph separators and no bidi overrides (no terminal or display tricks).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const reasonText = v.pipe(
  v.string(),
  v.maxLength(MAX_TRUST_REASON),
  v.check((s) => !UNSAFE_TEXT.test(s), 'must not contain control, separator or bidi characters'),
);
const offset = int(0, 1_000_000);

/** Outer JSON of every registry packet (request, response, push). */
export const EnvelopeSchema = withMessages(
  v.strictObject({
    id: v.pipe(v.string(), v.minLength(1), v.maxLength(64)),
    stmt: v.pipe(v.string(), v.minLength(2), v.maxLength(MAX_REGISTRY_PACKET)),
    sig: v.optional(b64Sig),
  }),
);
export type Envelope = v.InferOutput<typeof EnvelopeSchema>;

/** Signed request statement. */
export const StatementSchema = withMessages(
  v.strictObject({
    method: v.pipe(v.string(), v.maxLength(32)),
    params: v.pipe(notArray(), v.record(v.string(), v.unknown())),
    key: b64Key,
    server: b64Key,
    ts: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
    nonce: nonceSchema,
    /** Return-routability cookie for the UDP source this request is sent from (see COOKIE_BYTES). */
    cookie: v.optional(cookieSchema),
  }),
);
export type Statement = v.InferOutput<typeof StatementSchema>;

/**
 * hello is unsigned: only a nonce to bind the (signed) answer to, and padding:
 * over UDP the server never sends an answer to an unvalidated source that is
 * larger than AMPLIFICATION_FACTOR times the request (no reflection attacks;
 * QUIC allows 3x, we hold 1x), so clients pad hello to MIN_HELLO_PACKET bytes,
 * enough for the largest hello answer (IPv6 observed endpoint, alt port, relayDf, cookie).
 */
export const HelloStatementSchema = withMessages(
  v.strictObject({ method: v.literal('hello'), nonce: nonceSchema, pad: v.optional(v.pipe(v.string(), v.maxLength(MAX_REGISTRY_PACKET))) }),
);
export const MIN_HELLO_PACKET = 720;
export const AMPLIFICATION_FACTOR = 1;

/**
 * Optional self-report in heartbeats, for the rendezvous metrics and dashboard
 * (kept in memory only). Optional so older daemons keep working.
 */
const reportCount = int(0, 2 ** 40);
export const NAT_CLASSES = ['none', 'eim', 'edm', 'unknown'] as const;
export const NodeReportFields = {
  nat: v.optional(v.picklist(NAT_CLASSES)),
  /** Peers currently reached directly / through the relay. */
  paths: v.optional(v.strictObject({ direct: reportCount, relay: reportCount })),
  /** Cumulative since the daemon started: hole-punch attempts and those that reached a direct path. */
  punches: v.optional(v.strictObject({ tried: reportCount, succeeded: reportCount })),
};
export type NodeReport = { nat?: (typeof NAT_CLASSES)[number]; paths?: { direct: number; relay: number }; punches?: { tried: number; succeeded: number } };

export const ParamSchemas = {
  register: withMessages(
    v.strictObject({
      email: v.pipe(v.string(), v.minLength(3), v.maxLength(254), v.regex(/^[^\s@]+@[^\s@]+$/, 'must be an email address')),
      hostname: v.optional(hostnameText),
      lanEndpoints: v.optional(lanEndpoints),
      public: v.optional(v.boolean()),
      /** Invitation token, for a rendezvous that admits new identities by invitation only. */
      invite: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(128))),
      /**
       * Ephemeral node (issue 18; Tailscale's ephemeral nodes): removed, address and hostname
       * released, on deregister (a clean stop) or after the rendezvous's ephemeral timeout of
       * silence. One way: omitted or false never makes an ephemeral node permanent again.
       */
      ephemeral: v.optional(v.boolean()),
    }),
  ),
  heartbeat: withMessages(v.strictObject({ lanEndpoints: v.optional(lanEndpoints), ...NodeReportFields })),
  set_hostname: withMessages(v.strictObject({ hostname: hostnameText })),
  clear_hostname: withMessages(v.strictObject({})),
  set_visibility: withMessages(v.strictObject({ public: v.boolean() })),
  resolve: withMessages(
    v.pipe(
      v.strictObject({ address: v.optional(v.pipe(v.string(), v.maxLength(32))), hostname: v.optional(hostnameText), publicKey: v.optional(b64Key) }),
      v.check((p) => [p.address, p.hostname, p.publicKey].filter((x) => x !== undefined).length === 1, 'give exactly one of address, hostname, publicKey'),
    ),
  ),
  deregister: withMessages(v.strictObject({})),
  trust_request: withMessages(v.strictObject({ to: addressText, reason: v.optional(reasonText) })),
  /** Offsets page through lists too long for one packet (see `more` in the result). */
  trust_pending: withMessages(v.strictObject({ incomingOffset: v.optional(offset), outgoingOffset: v.optional(offset) })),
  trust_approve: withMessages(v.strictObject({ from: addressText })),
  trust_reject: withMessages(v.strictObject({ from: addressText, reason: v.optional(reasonText) })),
  trust_revoke: withMessages(v.strictObject({ peer: addressText })),
  trust_list: withMessages(v.strictObject({ offset: v.optional(offset) })),
  /**
   * Key rotation (issue 18, src/registry/rotation.ts): the envelope is signed by the NEW
   * key (proof of possession), `statement` names address, old key and new key and is
   * signed by the OLD key (`sig`).
   */
  rotate_key: withMessages(v.strictObject({ statement: v.pipe(v.string(), v.minLength(2), v.maxLength(MAX_ROTATION_STATEMENT)), sig: b64Sig })),
  /** A clean stop: "offline from now on" (presence only; the record stays). */
  offline: withMessages(v.strictObject({})),
} as const;
export type SignedMethod = keyof typeof ParamSchemas;

const ErrorBody = v.object({
  code: v.pipe(v.string(), v.maxLength(64)),
  message: v.pipe(v.string(), v.maxLength(500)),
  hint: v.optional(v.pipe(v.string(), v.maxLength(500))),
});

/** Server statement inside a response (0x02). */
// Roomier than MAX_ENDPOINT_CHARS: a link-local source may carry a zone id (fe80::1%eth0).
const observedField = v.optional(v.pipe(v.string(), v.maxLength(128)));
export const ResponseStatementSchema = v.variant('ok', [
  v.object({
    ok: v.literal(true),
    result: v.unknown(),
    server: b64Key,
    ts: v.number(),
    reqNonce: v.nullable(nonceSchema),
    observed: observedField,
    cookie: v.optional(cookieSchema),
  }),
  v.object({
    ok: v.literal(false),
    error: ErrorBody,
    server: b64Key,
    ts: v.number(),
    reqNonce: v.nullable(nonceSchema),
    observed: observedField,
    cookie: v.optional(cookieSchema),
  }),
]);
export type ResponseStatement = v.InferOutput<typeof ResponseStatementSchema>;

/** Server statement inside a push (0x03). */
export const PushStatementSchema = v.object({
  push: v.object({ event: v.pipe(v.string(), v.minLength(1), v.maxLength(64)), data: v.unknown() }),
  server: b64Key,
  ts: v.number(),
  nonce: nonceSchema,
});
export type PushStatement = v.InferOutput<typeof PushStatementSchema>;
export interface Push {
  event: string;
  data: unknown;
}

// ---- results (validated by the client too: a server bug should fail loudly, not leak undefined) ----

/**
 * The rotation that bound a resolved node's key, compact (src/registry/rotation.ts
 * expandRotation: the address and new key are the answer's own); peers verify it themselves.
 */
export const RotationProof = v.object({ old: b64Key, ts: v.pipe(v.number(), v.safeInteger(), v.minValue(0)), sig: b64Sig });

export const HelloResult = v.object({
  serverKey: b64Key,
  observed: v.string(),
  altPort: v.optional(int(1, 65535)),
  /** The rendezvous relays with DF set and never fragments (a bigger relayed packet is dropped, not split): the relayed path's MTU may be probed. */
  relayDf: v.optional(v.boolean()),
  cookie: v.optional(cookieSchema),
});
export const RegisterResult = v.object({ address: v.string(), observed: v.string(), hostname: v.nullable(v.string()), public: v.boolean() });
export const HeartbeatResult = v.object({ observed: v.string() });
export const HostnameResult = v.object({ hostname: v.nullable(v.string()), observed: v.string() });
export const VisibilityResult = v.object({ public: v.boolean(), observed: v.string() });
export const ResolveResult = v.object({
  address: v.string(),
  publicKey: b64Key,
  hostname: v.nullable(v.string()),
  public: v.boolean(),
  endpoints: v.array(v.string()),
  online: v.boolean(),
  lastSeen: v.number(),
  observed: v.string(),
  /**
   * Fleets: the networks both the caller and the node are members of, with the node's credential
   * tags there. A hint for the caller's daemon (present its proof, let the node's session in);
   * the node still proves each membership itself. Absent from a rendezvous before issue 18.
   */
  networks: v.optional(v.array(v.object({ net: v.number(), tags: v.array(v.string()) }))),
  /** The statement that bound the current key (absent if the node never rotated): peers verify it themselves. */
  rotation: v.optional(RotationProof),
});
/** `already`: the rendezvous had this rotation (a retry after a lost answer or a crash). */
export const RotateKeyResult = v.object({ address: v.string(), publicKey: b64Key, already: v.boolean(), observed: v.string() });
/** Push to trusted peers and co-members: `address` now speaks with the statement's new key. */
export const KeyRotatedPush = v.object({ address: v.string(), statement: v.pipe(v.string(), v.maxLength(MAX_ROTATION_STATEMENT)), sig: b64Sig });
/** `removed`: the record is gone (an ephemeral node), else it is hidden and keeps its address. Optional: older servers omit it. */
export const DeregisterResult = v.object({ observed: v.string(), removed: v.optional(v.boolean()) });
export const OfflineResult = v.object({ observed: v.string() });

// ---- trust ----

export const TrustRequestResult = v.object({ status: v.picklist(['pending', 'trusted']) });
export const TrustIncoming = v.object({ from: v.string(), hostname: v.nullable(v.string()), reason: v.nullable(v.string()), created: v.number() });
export const TrustOutgoing = v.object({ to: v.string(), hostname: v.nullable(v.string()), reason: v.nullable(v.string()), created: v.number() });
/** One page; `more` = call again with the offsets advanced by what this page held. */
export const TrustPendingPage = v.object({ incoming: v.array(TrustIncoming), outgoing: v.array(TrustOutgoing), more: v.boolean() });
export const TrustApproveResult = v.object({ status: v.literal('trusted') });
export const TrustRejectResult = v.object({ status: v.literal('rejected') });
export const TrustRevokeResult = v.object({ status: v.literal('revoked') });
export const TrustEntry = v.object({ peer: v.string(), hostname: v.nullable(v.string()), since: v.number(), mutual: v.literal(true) });
export const TrustListPage = v.object({ trusted: v.array(TrustEntry), more: v.boolean() });

/** Data of the trust pushes (0x03), by event name. */
export const TrustPushSchemas = {
  /** Someone asks the receiver for trust. */
  trust_request: TrustIncoming,
  /** `peer` approved the receiver's request (or both asked each other). */
  trust_approved: v.object({ peer: v.string(), hostname: v.nullable(v.string()) }),
  /** `peer` rejected the receiver's request. */
  trust_rejected: v.object({ peer: v.string(), reason: v.nullable(v.string()) }),
  /** `peer` ended the trust pair with the receiver. */
  trust_revoked: v.object({ peer: v.string() }),
} as const;

/** A failed check as a short BAD_REQUEST naming the first offending field. */
export function schemaError(issues: readonly Issue[] | undefined, what: string): PilotError {
  const issue = issues?.[0];
  const where = (issue && issuePath(issue)) || what;
  return new PilotError('BAD_REQUEST', `invalid ${what}: ${where}: ${issue?.message ?? 'malformed'}`.slice(0, 300));
}
