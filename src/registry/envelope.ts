// Signed registry envelopes: [type byte][UTF-8 JSON {"id","stmt","sig"}].
// The signature covers the exact UTF-8 bytes of `stmt`, so no canonical JSON is needed.
import * as v from 'valibot';
import { PacketType } from '../wire/packet-types.ts';
import { PilotError } from '../util/errors.ts';
import { randomBytes, sign, verify, type Identity } from './signing.ts';
import {
  COOKIE_BYTES,
  EnvelopeSchema,
  FRESHNESS_MS,
  nonceSchema,
  HelloStatementSchema,
  MAX_FUTURE_MS,
  MAX_REGISTRY_PACKET,
  MIN_HELLO_PACKET,
  PushStatementSchema,
  ResponseStatementSchema,
  StatementSchema,
  schemaError,
  type Envelope,
  type PushStatement,
  type ResponseStatement,
  type Statement,
} from './protocol.ts';

export function newNonce(): string {
  return randomBytes(18).toString('base64'); // 24 chars, no padding
}

function frame(type: number, env: Envelope): Buffer {
  const json = Buffer.from(JSON.stringify(env), 'utf8');
  // Unpooled: the server keeps each answer for retransmissions (replay cache,
  // up to 60 s) and a slice of Node's shared 8 KiB pool would pin the whole slab.
  const pkt = Buffer.allocUnsafeSlow(1 + json.length);
  pkt[0] = type;
  json.copy(pkt, 1);
  return pkt;
}

function signed(type: number, id: string, stmtObj: unknown, secretKey: Buffer): Buffer {
  const stmt = JSON.stringify(stmtObj);
  const sig = sign(Buffer.from(stmt, 'utf8'), secretKey).toString('base64');
  return frame(type, { id, stmt, sig });
}

// ---------------- requests (client side) ----------------

export interface BuiltRequest {
  packet: Buffer;
  id: string;
  nonce: string;
}

/** `cookie`: the return-routability cookie the rendezvous gave this UDP source (signed, so it cannot be moved to another request). */
export function buildRequest(
  identity: Identity,
  serverKey: Buffer,
  method: string,
  params: Record<string, unknown>,
  now = Date.now(),
  cookie?: string,
): BuiltRequest {
  const nonce = newNonce();
  const id = randomBytes(6).toString('hex');
  const stmt: Statement = {
    method,
    params,
    key: identity.publicKey.toString('base64'),
    server: serverKey.toString('base64'),
    ts: now,
    nonce,
    ...(cookie !== undefined ? { cookie } : {}),
  };
  return { packet: signed(PacketType.RegistryRequest, id, stmt, identity.secretKey), id, nonce };
}

export function buildHello(): BuiltRequest {
  const nonce = newNonce();
  const id = randomBytes(6).toString('hex');
  const bare = frame(PacketType.RegistryRequest, { id, stmt: JSON.stringify({ method: 'hello', nonce, pad: '' }) });
  // Padded so the server may answer it over UDP (see AMPLIFICATION_FACTOR).
  const pad = '.'.repeat(Math.max(0, MIN_HELLO_PACKET - bare.length));
  return { packet: frame(PacketType.RegistryRequest, { id, stmt: JSON.stringify({ method: 'hello', nonce, pad }) }), id, nonce };
}

// ---------------- requests (server side) ----------------

export type ParsedRequest =
  | { kind: 'hello'; id: string; nonce: string }
  | { kind: 'signed'; id: string; nonce: string; stmt: Statement; stmtText: string; sig: string };

/** Parses the outer shape only. Throws PilotError('BAD_REQUEST'); `nonce` is attached when known so the error can be bound to it. */
export function parseRequest(pkt: Buffer): ParsedRequest {
  if (pkt.length > MAX_REGISTRY_PACKET) throw new PilotError('FRAME_TOO_LARGE', `registry request larger than ${MAX_REGISTRY_PACKET} bytes`);
  if (pkt[0] !== PacketType.RegistryRequest) throw new PilotError('BAD_REQUEST', 'not a registry request');
  const env = parseEnvelope(pkt);
  const stmtJson = parseJson(env.stmt, 'statement');
  if (isRecord(stmtJson) && stmtJson.method === 'hello' && env.sig === undefined) {
    const h = v.safeParse(HelloStatementSchema, stmtJson);
    if (!h.success) throw schemaError(h.issues, 'hello');
    return { kind: 'hello', id: env.id, nonce: h.output.nonce };
  }
  const s = v.safeParse(StatementSchema, stmtJson);
  if (!s.success) throw withNonce(schemaError(s.issues, 'statement'), stmtJson);
  if (env.sig === undefined) throw withNonce(new PilotError('BAD_SIGNATURE', 'request is not signed', 'only hello may be unsigned'), stmtJson);
  return { kind: 'signed', id: env.id, nonce: s.output.nonce, stmt: s.output, stmtText: env.stmt, sig: env.sig };
}

/** Signature, addressee and freshness. Nonce uniqueness is the replay cache's job. */
export function verifyRequest(req: Extract<ParsedRequest, { kind: 'signed' }>, serverKey: Buffer, now = Date.now()): void {
  const key = Buffer.from(req.stmt.key, 'base64');
  if (!verify(Buffer.from(req.stmtText, 'utf8'), Buffer.from(req.sig, 'base64'), key)) {
    throw new PilotError('BAD_SIGNATURE', 'request signature does not verify for its key', 'sign the exact stmt bytes with the key named in stmt.key');
  }
  if (req.stmt.server !== serverKey.toString('base64')) {
    throw new PilotError(
      'BAD_SIGNATURE',
      'request is addressed to a different server key',
      'the pinned rendezvous key is stale: re-learn it with hello (delete serverKey from the config)',
    );
  }
  const age = now - req.stmt.ts;
  if (age > FRESHNESS_MS || -age > MAX_FUTURE_MS) {
    const off = age >= 0 ? `${Math.round(age / 1000)} s behind` : `${Math.round(-age / 1000)} s ahead of`;
    throw new PilotError(
      'STALE_REQUEST',
      `request timestamp is ${off} the server clock`,
      `check the system clock (NTP): requests may be at most ${FRESHNESS_MS / 1000} s old and ${MAX_FUTURE_MS / 1000} s ahead`,
    );
  }
}

// ---------------- responses and pushes (server side) ----------------

export type ResponseBody = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string; hint?: string } };

/**
 * `observed` is the beacon answer (the requester's ip:port as the server saw it),
 * carried by every response, errors included; successful results repeat it.
 */
export function buildResponse(
  server: Identity,
  id: string,
  reqNonce: string | null,
  body: ResponseBody,
  observed: string | null = null,
  now = Date.now(),
  cookie?: string,
): Buffer {
  // `cookie`: a fresh return-routability cookie when the one echoed is about to expire.
  const stmt = {
    ...body,
    server: server.publicKey.toString('base64'),
    ts: now,
    reqNonce,
    ...(observed !== null ? { observed } : {}),
    ...(cookie !== undefined ? { cookie } : {}),
  };
  return signed(PacketType.RegistryResponse, id, stmt, server.secretKey);
}

export function errorBody(err: PilotError): ResponseBody {
  return { ok: false, error: err.toJSON() };
}

export function buildPush(server: Identity, event: string, data: unknown, now = Date.now()): Buffer {
  const stmt: PushStatement = { push: { event, data }, server: server.publicKey.toString('base64'), ts: now, nonce: newNonce() };
  return signed(PacketType.RegistryPush, newNonce().slice(0, 12), stmt, server.secretKey);
}

// ---------------- cookie replies (0x04) ----------------

/** [0x04][16-byte cookie][request nonce, ASCII]: unsigned, so it only ever makes a client retry. */
export function encodeCookieReply(cookie: Buffer, reqNonce: string): Buffer {
  const nonce = Buffer.from(reqNonce, 'ascii');
  const pkt = Buffer.alloc(1 + COOKIE_BYTES + nonce.length);
  pkt[0] = PacketType.RegistryCookie;
  cookie.copy(pkt, 1, 0, COOKIE_BYTES);
  nonce.copy(pkt, 1 + COOKIE_BYTES);
  return pkt;
}

export function decodeCookieReply(pkt: Buffer): { cookie: string; reqNonce: string } | undefined {
  if (pkt.length < 1 + COOKIE_BYTES + 16 || pkt.length > 1 + COOKIE_BYTES + 44 || pkt[0] !== PacketType.RegistryCookie) return undefined;
  const reqNonce = pkt.subarray(1 + COOKIE_BYTES).toString('latin1');
  if (!v.is(nonceSchema, reqNonce)) return undefined;
  return { cookie: pkt.subarray(1, 1 + COOKIE_BYTES).toString('base64'), reqNonce };
}

// ---------------- responses and pushes (client side) ----------------

export type ServerMessage = { type: 'response'; stmt: ResponseStatement; id: string } | { type: 'push'; stmt: PushStatement; id: string };

/**
 * Parses and verifies a 0x02/0x03 packet. With `serverKey` the signature must be
 * by that key; without (hello before pinning) it must be by the key the statement
 * names, which is then trust-on-first-use. Returns undefined for anything else.
 */
export function openServerMessage(
  pkt: Buffer,
  serverKey: Buffer | undefined,
): { msg: ServerMessage; signer: Buffer } | { badKey: Buffer; reqNonce: string | null } | undefined {
  if (pkt.length < 2 || pkt.length > MAX_REGISTRY_PACKET) return undefined;
  const type = pkt[0];
  if (type !== PacketType.RegistryResponse && type !== PacketType.RegistryPush) return undefined;
  let env: Envelope;
  let json: unknown;
  try {
    env = parseEnvelope(pkt);
    json = parseJson(env.stmt, 'statement');
  } catch {
    return undefined;
  }
  if (env.sig === undefined || !isRecord(json) || typeof json.server !== 'string') return undefined;
  const named = Buffer.from(json.server, 'base64');
  if (named.length !== 32) return undefined;
  if (!verify(Buffer.from(env.stmt, 'utf8'), Buffer.from(env.sig, 'base64'), named)) return undefined;
  if (serverKey && !named.equals(serverKey)) {
    // Validly signed, but by another server key: remembered by the client so a
    // timeout can say why, yet never acted upon.
    return { badKey: named, reqNonce: typeof json.reqNonce === 'string' ? json.reqNonce : null };
  }
  if (type === PacketType.RegistryResponse) {
    const r = v.safeParse(ResponseStatementSchema, json);
    return r.success ? { msg: { type: 'response', stmt: r.output, id: env.id }, signer: named } : undefined;
  }
  const p = v.safeParse(PushStatementSchema, json);
  return p.success ? { msg: { type: 'push', stmt: p.output, id: env.id }, signer: named } : undefined;
}

// ---------------- helpers ----------------

function parseEnvelope(pkt: Buffer): Envelope {
  const json = parseJson(pkt.subarray(1).toString('utf8'), 'envelope');
  const env = v.safeParse(EnvelopeSchema, json);
  if (!env.success) throw schemaError(env.issues, 'envelope');
  return env.output;
}

function parseJson(text: string, what: string): unknown {
  try {
    // "__proto__" keys are dropped so no parsed object can carry a foreign prototype.
    return JSON.parse(text, (k, v) => (k === '__proto__' ? undefined : v));
  } catch {
    throw new PilotError('BAD_REQUEST', `${what} is not valid JSON`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Error carrying the request nonce (when one could be read) so the answer can be bound to it. */
export class RequestError extends PilotError {
  readonly nonce: string | null;
  constructor(err: PilotError, nonce: string | null) {
    super(err.code, err.message, err.hint);
    this.nonce = nonce;
  }
}

function withNonce(err: PilotError, stmt: unknown): RequestError {
  const n = isRecord(stmt) && typeof stmt.nonce === 'string' && /^[A-Za-z0-9+/]{16,44}={0,2}$/.test(stmt.nonce) ? stmt.nonce : null;
  return new RequestError(err, n);
}
