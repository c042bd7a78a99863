// Wire schemas of the registry protocol (see docs/ARCHITECTURE.md "Registry protocol").
// Everything arriving from the network goes through one of these zod schemas
// before it is looked at: sizes, types and lengths are bounded here.
import { z } from 'zod';
import { PilotError } from '../util/errors.ts';
import { MAX_ENDPOINT_CHARS, parseEndpoint } from './endpoint.ts';

/** Largest registry packet (type byte + JSON) on UDP and TCP alike. */
export const MAX_REGISTRY_PACKET = 1200;
/** A statement older or newer than this (ms) is refused as stale. */
export const FRESHNESS_MS = 60_000;
/** A node is online if the rendezvous heard from it within this (ms). */
export const ONLINE_MS = 60_000;
export const MAX_LAN_ENDPOINTS = 8;

export const METHODS = ['hello', 'register', 'heartbeat', 'set_hostname', 'clear_hostname', 'set_visibility', 'resolve', 'deregister'] as const;
export type Method = (typeof METHODS)[number];

function isCanonicalB64(s: string, bytes: number): boolean {
  const b = Buffer.from(s, 'base64');
  return b.length === bytes && b.toString('base64') === s;
}

export const b64Key = z.string().length(44).refine((s) => isCanonicalB64(s, 32), 'must be a base64 32-byte key');
export const b64Sig = z.string().length(88).refine((s) => isCanonicalB64(s, 64), 'must be a base64 64-byte signature');
export const nonceSchema = z.string().min(16).max(44).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64');
const endpointSchema = z.string().max(MAX_ENDPOINT_CHARS).refine((s) => parseEndpoint(s) !== undefined, 'must be ip:port');
const lanEndpoints = z.array(endpointSchema).max(MAX_LAN_ENDPOINTS);
// Hostnames are checked by normalizeHostname for a precise error; here only bounded.
const hostnameText = z.string().max(253);

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
  })
  .strict();
export type Statement = z.infer<typeof StatementSchema>;

/** hello is unsigned: only a nonce to bind the (signed) answer to. */
export const HelloStatementSchema = z.object({ method: z.literal('hello'), nonce: nonceSchema }).passthrough();

export const ParamSchemas = {
  register: z
    .object({
      email: z.string().min(3).max(254).regex(/^[^\s@]+@[^\s@]+$/, 'must be an email address'),
      hostname: hostnameText.optional(),
      lanEndpoints: lanEndpoints.optional(),
      public: z.boolean().optional(),
    })
    .strict(),
  heartbeat: z.object({ lanEndpoints: lanEndpoints.optional() }).strict(),
  set_hostname: z.object({ hostname: hostnameText }).strict(),
  clear_hostname: z.object({}).strict(),
  set_visibility: z.object({ public: z.boolean() }).strict(),
  resolve: z
    .object({ address: z.string().max(32).optional(), hostname: hostnameText.optional(), publicKey: b64Key.optional() })
    .strict()
    .refine((p) => [p.address, p.hostname, p.publicKey].filter((v) => v !== undefined).length === 1, 'give exactly one of address, hostname, publicKey'),
  deregister: z.object({}).strict(),
} as const;
export type SignedMethod = keyof typeof ParamSchemas;

const ErrorBody = z.object({ code: z.string().max(64), message: z.string().max(500), hint: z.string().max(500).optional() });

/** Server statement inside a response (0x02). */
export const ResponseStatementSchema = z.union([
  z.object({ ok: z.literal(true), result: z.unknown(), server: b64Key, ts: z.number(), reqNonce: nonceSchema.nullable() }),
  z.object({ ok: z.literal(false), error: ErrorBody, server: b64Key, ts: z.number(), reqNonce: nonceSchema.nullable() }),
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

export const HelloResult = z.object({ serverKey: b64Key, observed: z.string() });
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

/** A zod failure as a short BAD_REQUEST naming the first offending field. */
export function zodError(err: z.ZodError, what: string): PilotError {
  const issue = err.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : what;
  return new PilotError('BAD_REQUEST', `invalid ${what}: ${where}: ${issue?.message ?? 'malformed'}`.slice(0, 300));
}
