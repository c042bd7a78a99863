// Wire schemas of the registry protocol (see docs/ARCHITECTURE.md "Registry protocol").
// Everything arriving from the network goes through one of these zod schemas
// before it is looked at: sizes, types and lengths are bounded here.
import { z } from 'zod';
import { PilotError } from '../util/errors.ts';
import { MAX_ENDPOINT_CHARS, parseEndpoint } from './endpoint.ts';
import { NETWORK_METHODS } from './network-protocol.ts';

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
  ...NETWORK_METHODS,
] as const;
export type Method = (typeof METHODS)[number];

function isCanonicalB64(s: string, bytes: number): boolean {
  const b = Buffer.from(s, 'base64');
  return b.length === bytes && b.toString('base64') === s;
}

export const b64Key = z
  .string()
  .length(44)
  .refine((s) => isCanonicalB64(s, 32), 'must be a base64 32-byte key');
export const b64Sig = z
  .string()
  .length(88)
  .refine((s) => isCanonicalB64(s, 64), 'must be a base64 64-byte signature');
/** A 16-byte return-routability cookie, base64 (see src/rendezvous/return-routability.ts). */
export const COOKIE_BYTES = 16;
export const cookieSchema = z
  .string()
  .length(24)
  .regex(/^[A-Za-z0-9+/]{22}==$/, 'must be a base64 16-byte cookie');
export const nonceSchema = z
  .string()
  .min(16)
  .max(44)
  .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64');
const endpointSchema = z
  .string()
  .max(MAX_ENDPOINT_CHARS)
  .refine((s) => parseEndpoint(s) !== undefined, 'must be ip:port');
const lanEndpoints = z.array(endpointSchema).max(MAX_LAN_ENDPOINTS);
// Hostnames are checked by normalizeHostname for a precise error; here only bounded.
const hostnameText = z.string().max(253);
/** A node address "N:XXXX.YYYY.YYYY" (parsed with parseAddress for the precise error). */
const addressText = z.string().min(1).max(32);
export const MAX_TRUST_REASON = 256;
/**
 * Reasons are shown to a human on the other node: no control characters, no
 * line/paragraph separators and no bidi overrides (no terminal or display tricks).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const reasonText = z
  .string()
  .max(MAX_TRUST_REASON)
  .refine((s) => !UNSAFE_TEXT.test(s), 'must not contain control, separator or bidi characters');
const offset = z.number().int().nonnegative().max(1_000_000);

/** Outer JSON of every registry packet (request, response, push). */
export const EnvelopeSchema = z
  .object({
    id: z.string().min(1).max(64),
    stmt: z.string().min(2).max(MAX_REGISTRY_PACKET),
    sig: b64Sig.optional(),
  })
  .strict();
export type Envelope = z.infer<typeof EnvelopeSchema>;

/** Signed request statement. */
export const StatementSchema = z
  .object({
    method: z.string().max(32),
    params: z.record(z.string(), z.unknown()),
    key: b64Key,
    server: b64Key,
    ts: z.number().int().nonnegative(),
    nonce: nonceSchema,
    /** Return-routability cookie for the UDP source this request is sent from (see COOKIE_BYTES). */
    cookie: cookieSchema.optional(),
  })
  .strict();
export type Statement = z.infer<typeof StatementSchema>;

/**
 * hello is unsigned: only a nonce to bind the (signed) answer to, and padding:
 * over UDP the server never sends an answer to an unvalidated source that is
 * larger than AMPLIFICATION_FACTOR times the request (no reflection attacks;
 * QUIC allows 3x, we hold 1x), so clients pad hello to MIN_HELLO_PACKET bytes,
 * enough for the largest hello answer (IPv6 observed endpoint, alt port, cookie).
 */
export const HelloStatementSchema = z.object({ method: z.literal('hello'), nonce: nonceSchema, pad: z.string().max(MAX_REGISTRY_PACKET).optional() }).strict();
export const MIN_HELLO_PACKET = 720;
export const AMPLIFICATION_FACTOR = 1;

/**
 * Optional self-report in heartbeats, for the rendezvous metrics and dashboard
 * (kept in memory only). Optional so older daemons keep working.
 */
const reportCount = z
  .number()
  .int()
  .nonnegative()
  .max(2 ** 40);
export const NAT_CLASSES = ['none', 'eim', 'edm', 'unknown'] as const;
export const NodeReportFields = {
  nat: z.enum(NAT_CLASSES).optional(),
  /** Peers currently reached directly / through the relay. */
  paths: z.object({ direct: reportCount, relay: reportCount }).strict().optional(),
  /** Cumulative since the daemon started: hole-punch attempts and those that reached a direct path. */
  punches: z.object({ tried: reportCount, succeeded: reportCount }).strict().optional(),
};
export type NodeReport = { nat?: (typeof NAT_CLASSES)[number]; paths?: { direct: number; relay: number }; punches?: { tried: number; succeeded: number } };

export const ParamSchemas = {
  register: z
    .object({
      email: z
        .string()
        .min(3)
        .max(254)
        .regex(/^[^\s@]+@[^\s@]+$/, 'must be an email address'),
      hostname: hostnameText.optional(),
      lanEndpoints: lanEndpoints.optional(),
      public: z.boolean().optional(),
      /** Invitation token, for a rendezvous that admits new identities by invitation only. */
      invite: z.string().min(1).max(128).optional(),
    })
    .strict(),
  heartbeat: z.object({ lanEndpoints: lanEndpoints.optional(), ...NodeReportFields }).strict(),
  set_hostname: z.object({ hostname: hostnameText }).strict(),
  clear_hostname: z.object({}).strict(),
  set_visibility: z.object({ public: z.boolean() }).strict(),
  resolve: z
    .object({ address: z.string().max(32).optional(), hostname: hostnameText.optional(), publicKey: b64Key.optional() })
    .strict()
    .refine((p) => [p.address, p.hostname, p.publicKey].filter((v) => v !== undefined).length === 1, 'give exactly one of address, hostname, publicKey'),
  deregister: z.object({}).strict(),
  trust_request: z.object({ to: addressText, reason: reasonText.optional() }).strict(),
  /** Offsets page through lists too long for one packet (see `more` in the result). */
  trust_pending: z.object({ incomingOffset: offset.optional(), outgoingOffset: offset.optional() }).strict(),
  trust_approve: z.object({ from: addressText }).strict(),
  trust_reject: z.object({ from: addressText, reason: reasonText.optional() }).strict(),
  trust_revoke: z.object({ peer: addressText }).strict(),
  trust_list: z.object({ offset: offset.optional() }).strict(),
} as const;
export type SignedMethod = keyof typeof ParamSchemas;

const ErrorBody = z.object({ code: z.string().max(64), message: z.string().max(500), hint: z.string().max(500).optional() });

/** Server statement inside a response (0x02). */
// Roomier than MAX_ENDPOINT_CHARS: a link-local source may carry a zone id (fe80::1%eth0).
const observedField = z.string().max(128).optional();
export const ResponseStatementSchema = z.union([
  z.object({
    ok: z.literal(true),
    result: z.unknown(),
    server: b64Key,
    ts: z.number(),
    reqNonce: nonceSchema.nullable(),
    observed: observedField,
    cookie: cookieSchema.optional(),
  }),
  z.object({
    ok: z.literal(false),
    error: ErrorBody,
    server: b64Key,
    ts: z.number(),
    reqNonce: nonceSchema.nullable(),
    observed: observedField,
    cookie: cookieSchema.optional(),
  }),
]);
export type ResponseStatement = z.infer<typeof ResponseStatementSchema>;

/** Server statement inside a push (0x03). */
export const PushStatementSchema = z.object({
  push: z.object({ event: z.string().min(1).max(64), data: z.unknown() }),
  server: b64Key,
  ts: z.number(),
  nonce: nonceSchema,
});
export type PushStatement = z.infer<typeof PushStatementSchema>;
export interface Push {
  event: string;
  data: unknown;
}

// ---- results (validated by the client too: a server bug should fail loudly, not leak undefined) ----

export const HelloResult = z.object({
  serverKey: b64Key,
  observed: z.string(),
  altPort: z.number().int().min(1).max(65535).optional(),
  cookie: cookieSchema.optional(),
});
export const RegisterResult = z.object({ address: z.string(), observed: z.string(), hostname: z.string().nullable(), public: z.boolean() });
export const HeartbeatResult = z.object({ observed: z.string() });
export const HostnameResult = z.object({ hostname: z.string().nullable(), observed: z.string() });
export const VisibilityResult = z.object({ public: z.boolean(), observed: z.string() });
export const ResolveResult = z.object({
  address: z.string(),
  publicKey: b64Key,
  hostname: z.string().nullable(),
  public: z.boolean(),
  endpoints: z.array(z.string()),
  online: z.boolean(),
  lastSeen: z.number(),
  observed: z.string(),
});
export const DeregisterResult = z.object({ observed: z.string() });

// ---- trust ----

export const TrustRequestResult = z.object({ status: z.enum(['pending', 'trusted']) });
export const TrustIncoming = z.object({ from: z.string(), hostname: z.string().nullable(), reason: z.string().nullable(), created: z.number() });
export const TrustOutgoing = z.object({ to: z.string(), hostname: z.string().nullable(), reason: z.string().nullable(), created: z.number() });
/** One page; `more` = call again with the offsets advanced by what this page held. */
export const TrustPendingPage = z.object({ incoming: z.array(TrustIncoming), outgoing: z.array(TrustOutgoing), more: z.boolean() });
export const TrustApproveResult = z.object({ status: z.literal('trusted') });
export const TrustRejectResult = z.object({ status: z.literal('rejected') });
export const TrustRevokeResult = z.object({ status: z.literal('revoked') });
export const TrustEntry = z.object({ peer: z.string(), hostname: z.string().nullable(), since: z.number(), mutual: z.literal(true) });
export const TrustListPage = z.object({ trusted: z.array(TrustEntry), more: z.boolean() });

/** Data of the trust pushes (0x03), by event name. */
export const TrustPushSchemas = {
  /** Someone asks the receiver for trust. */
  trust_request: TrustIncoming,
  /** `peer` approved the receiver's request (or both asked each other). */
  trust_approved: z.object({ peer: z.string(), hostname: z.string().nullable() }),
  /** `peer` rejected the receiver's request. */
  trust_rejected: z.object({ peer: z.string(), reason: z.string().nullable() }),
  /** `peer` ended the trust pair with the receiver. */
  trust_revoked: z.object({ peer: z.string() }),
} as const;

/** A zod failure as a short BAD_REQUEST naming the first offending field. */
export function zodError(err: z.ZodError, what: string): PilotError {
  const issue = err.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : what;
  return new PilotError('BAD_REQUEST', `invalid ${what}: ${where}: ${issue?.message ?? 'malformed'}`.slice(0, 300));
}
