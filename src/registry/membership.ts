// Fleet membership (issue 18): the binary formats a peer verifies ON ITS OWN, so a
// compromised rendezvous cannot make a non-member look like a member.
//
//   cert    = [ver u8 = 1][net u16][admin 32][invKey 32][inviteId 16][iat u32 s][exp u32 s (0 = never)]
//             [uses u32 (0 = unlimited)][flags u8: bit0 ephemeral][ntags u8 <= 8]{[len u8 1..32][tag]}*
//   certSig = Ed25519(admin, "pilot-invite-v1\0" || cert)
//   token   = "pilot-join-1." b64url(cert) "." b64url(certSig) "." b64url(invite seed 32)
//   binding = [ver u8 = 1][net u16][node 32][inviteId 16][ts u32 s]
//   bindingSig = Ed25519(invKey, "pilot-member-v1\0" || binding)
//   ticket  = [ver u8 = 1][net u16][node 32][exp u32 s], sig = Ed25519(rendezvous, "pilot-ticket-v1\0" || ticket)
//   policy sig = Ed25519(admin, "pilot-policy-v1\0" || net u16 || version u64 (ms) || UTF-8 policy text)
//
// All integers big-endian. Decoders are strict: every length is checked, trailing bytes
// and non-canonical tag lists are refused (one byte string per meaning, since peers compare
// signed bytes). The rendezvous never sees an invite seed, so it cannot sign a binding: it
// cannot create members. Signatures use the node identity primitives (src/crypto/identity.ts)
// with a domain-separation prefix per kind, so no signature of one kind verifies as another.
import sodium from 'sodium-native';
import { PilotError } from '../util/errors.ts';
import { randomBytes, sign, verify, type Identity } from './signing.ts';
import { MAX_TAGS, TAG_MAX_LENGTH, validateTags } from './network-policy.ts';

export const MEMBERSHIP_VERSION = 1;
export const INVITE_DOMAIN = Buffer.from('pilot-invite-v1\0', 'latin1');
export const MEMBER_DOMAIN = Buffer.from('pilot-member-v1\0', 'latin1');
export const TICKET_DOMAIN = Buffer.from('pilot-ticket-v1\0', 'latin1');
export const POLICY_DOMAIN = Buffer.from('pilot-policy-v1\0', 'latin1');
export const TOKEN_PREFIX = 'pilot-join-1.';
export const INVITE_ID_BYTES = 16;
/** Fixed part of a certificate (before the tags). */
const CERT_FIXED = 1 + 2 + 32 + 32 + INVITE_ID_BYTES + 4 + 4 + 4 + 1 + 1;
/** Largest certificate: 8 tags of 32 bytes. */
export const CERT_MAX_BYTES = CERT_FIXED + MAX_TAGS * (1 + TAG_MAX_LENGTH);
export const BINDING_BYTES = 1 + 2 + 32 + INVITE_ID_BYTES + 4;
export const TICKET_BYTES = 1 + 2 + 32 + 4;
/** Tickets are signed for this long (s); members refresh them well before. */
export const TICKET_LIFETIME_S = 300;
/** A binding dated further ahead of the verifier's clock than this (s) is refused. */
export const BINDING_FUTURE_S = 300;
/** Largest token text (all parts at their maximum). */
export const TOKEN_MAX_CHARS = TOKEN_PREFIX.length + Math.ceil((CERT_MAX_BYTES * 4) / 3) + 86 + 43 + 3;

const TOKEN_HINT = 'a join token looks like pilot-join-1.<certificate>.<signature>.<secret>, as printed by pilotctl network invite';

export interface InviteCert {
  net: number;
  admin: Buffer;
  invKey: Buffer;
  inviteId: Buffer;
  /** Issued at, unix seconds. */
  iat: number;
  /** Expiry, unix seconds; 0 = never. */
  exp: number;
  /** Joins allowed; 0 = unlimited. */
  uses: number;
  ephemeral: boolean;
  /** Sorted, distinct, valid tags (validateTags). */
  tags: string[];
}

export interface Binding {
  net: number;
  /** The joiner's Ed25519 node key. */
  node: Buffer;
  inviteId: Buffer;
  /** Signed at, unix seconds. */
  ts: number;
}

export interface Ticket {
  net: number;
  node: Buffer;
  /** unix seconds */
  exp: number;
}

/** What a member presents to peers. */
export interface Credential {
  cert: Buffer;
  certSig: Buffer;
  binding: Buffer;
  bindingSig: Buffer;
}

const bad = (what: string) => new PilotError('BAD_ARGUMENT', what, TOKEN_HINT);

function u32(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new PilotError('BAD_ARGUMENT', `${what} out of range: ${n}`, 'a 32-bit unsigned number');
  return n;
}

function checkNet(net: number): number {
  if (!Number.isInteger(net) || net < 1 || net > 0xffff) throw new PilotError('BAD_ARGUMENT', `network id out of range: ${net}`, 'networks are 1..65535');
  return net;
}

function checkKey(k: Buffer, what: string): Buffer {
  if (!Buffer.isBuffer(k) || k.length !== 32) throw new PilotError('BAD_ARGUMENT', `${what} must be a 32-byte Ed25519 key`);
  return k;
}

// ---------------- certificate ----------------

export function encodeCert(c: InviteCert): Buffer {
  checkNet(c.net);
  checkKey(c.admin, 'admin key');
  checkKey(c.invKey, 'invite key');
  if (!Buffer.isBuffer(c.inviteId) || c.inviteId.length !== INVITE_ID_BYTES) throw new PilotError('BAD_ARGUMENT', 'invite id must be 16 bytes');
  const tags = validateTags(c.tags);
  const tagBytes = tags.map((t) => Buffer.from(t, 'utf8'));
  const out = Buffer.alloc(CERT_FIXED + tagBytes.reduce((n, t) => n + 1 + t.length, 0));
  let o = 0;
  o = out.writeUInt8(MEMBERSHIP_VERSION, o);
  o = out.writeUInt16BE(c.net, o);
  o += c.admin.copy(out, o);
  o += c.invKey.copy(out, o);
  o += c.inviteId.copy(out, o);
  o = out.writeUInt32BE(u32(c.iat, 'iat'), o);
  o = out.writeUInt32BE(u32(c.exp, 'exp'), o);
  o = out.writeUInt32BE(u32(c.uses, 'uses'), o);
  o = out.writeUInt8(c.ephemeral ? 1 : 0, o);
  o = out.writeUInt8(tags.length, o);
  for (const t of tagBytes) {
    o = out.writeUInt8(t.length, o);
    o += t.copy(out, o);
  }
  return out;
}

/** Strict: throws BAD_ARGUMENT on anything but a canonical certificate. */
export function decodeCert(b: Buffer): InviteCert {
  if (!Buffer.isBuffer(b) || b.length < CERT_FIXED || b.length > CERT_MAX_BYTES) throw bad('invite certificate has a wrong length');
  if (b[0] !== MEMBERSHIP_VERSION) throw bad(`invite certificate version ${b[0]} is not supported`);
  let o = 1;
  const net = b.readUInt16BE(o);
  o += 2;
  if (net === 0) throw bad('invite certificate names network 0');
  const admin = Buffer.from(b.subarray(o, o + 32));
  o += 32;
  const invKey = Buffer.from(b.subarray(o, o + 32));
  o += 32;
  const inviteId = Buffer.from(b.subarray(o, o + INVITE_ID_BYTES));
  o += INVITE_ID_BYTES;
  const iat = b.readUInt32BE(o);
  const exp = b.readUInt32BE(o + 4);
  const uses = b.readUInt32BE(o + 8);
  const flags = b[o + 12]!;
  const ntags = b[o + 13]!;
  o += 14;
  if (flags & ~1) throw bad('invite certificate has unknown flags');
  if (ntags > MAX_TAGS) throw bad('invite certificate has too many tags');
  const tags: string[] = [];
  for (let i = 0; i < ntags; i++) {
    if (o >= b.length) throw bad('invite certificate is truncated');
    const len = b[o]!;
    o++;
    if (len < 1 || len > TAG_MAX_LENGTH || o + len > b.length) throw bad('invite certificate has a malformed tag');
    const raw = b.subarray(o, o + len);
    const t = raw.toString('utf8');
    if (!Buffer.from(t, 'utf8').equals(raw)) throw bad('invite certificate has a malformed tag');
    tags.push(t);
    o += len;
  }
  if (o !== b.length) throw bad('invite certificate has trailing bytes');
  let canonical: string[];
  try {
    canonical = validateTags(tags);
  } catch {
    throw bad('invite certificate has an invalid tag');
  }
  if (canonical.length !== tags.length || canonical.some((t, i) => t !== tags[i])) throw bad('invite certificate tags are not sorted and distinct');
  return { net, admin, invKey, inviteId, iat, exp, uses, ephemeral: (flags & 1) === 1, tags };
}

const domain = (prefix: Buffer, body: Buffer) => Buffer.concat([prefix, body]);

export function signCert(cert: Buffer, admin: Identity): Buffer {
  return sign(domain(INVITE_DOMAIN, cert), admin.secretKey);
}

export function verifyCertSig(cert: Buffer, certSig: Buffer, adminKey: Buffer): boolean {
  return verify(domain(INVITE_DOMAIN, cert), certSig, adminKey);
}

// ---------------- binding ----------------

export function encodeBinding(x: Binding): Buffer {
  checkNet(x.net);
  checkKey(x.node, 'node key');
  if (!Buffer.isBuffer(x.inviteId) || x.inviteId.length !== INVITE_ID_BYTES) throw new PilotError('BAD_ARGUMENT', 'invite id must be 16 bytes');
  const out = Buffer.alloc(BINDING_BYTES);
  let o = out.writeUInt8(MEMBERSHIP_VERSION, 0);
  o = out.writeUInt16BE(x.net, o);
  o += x.node.copy(out, o);
  o += x.inviteId.copy(out, o);
  out.writeUInt32BE(u32(x.ts, 'ts'), o);
  return out;
}

export function decodeBinding(b: Buffer): Binding {
  if (!Buffer.isBuffer(b) || b.length !== BINDING_BYTES) throw bad('membership binding has a wrong length');
  if (b[0] !== MEMBERSHIP_VERSION) throw bad(`membership binding version ${b[0]} is not supported`);
  const net = b.readUInt16BE(1);
  if (net === 0) throw bad('membership binding names network 0');
  return {
    net,
    node: Buffer.from(b.subarray(3, 35)),
    inviteId: Buffer.from(b.subarray(35, 35 + INVITE_ID_BYTES)),
    ts: b.readUInt32BE(35 + INVITE_ID_BYTES),
  };
}

// ---------------- invites and tokens ----------------

export interface InviteOptions {
  net: number;
  tags?: string[];
  /** 0 / absent = unlimited. */
  uses?: number;
  /** Seconds from now; 0 / absent = never expires. */
  expiresIn?: number;
  ephemeral?: boolean;
  /** ms (tests). */
  now?: number;
}

export interface Invite {
  /** The secret token (holds the invite seed): give it to the nodes that should join. */
  token: string;
  cert: Buffer;
  certSig: Buffer;
  /** Hex, 32 characters. */
  inviteId: string;
  invite: InviteCert;
}

/** The admin's side: a fresh invite key pair, a certificate signed by the admin key, the token. */
export function makeInvite(admin: Identity, opts: InviteOptions): Invite {
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const seed = randomBytes(32);
  const inv = deriveFromSeed(seed);
  const expiresIn = opts.expiresIn ?? 0;
  if (!Number.isInteger(expiresIn) || expiresIn < 0) throw new PilotError('BAD_ARGUMENT', `bad expiry ${expiresIn}`, 'seconds from now, 0 = never');
  const invite: InviteCert = {
    net: checkNet(opts.net),
    admin: admin.publicKey,
    invKey: inv.publicKey,
    inviteId: randomBytes(INVITE_ID_BYTES),
    iat: now,
    exp: expiresIn === 0 ? 0 : u32(now + expiresIn, 'expiry'),
    uses: u32(opts.uses ?? 0, 'uses'),
    ephemeral: opts.ephemeral === true,
    tags: validateTags(opts.tags ?? []),
  };
  const cert = encodeCert(invite);
  const certSig = signCert(cert, admin);
  const token = `${TOKEN_PREFIX}${cert.toString('base64url')}.${certSig.toString('base64url')}.${seed.toString('base64url')}`;
  return { token, cert, certSig, inviteId: invite.inviteId.toString('hex'), invite };
}

/** The invite key pair from its 32-byte seed (libsodium's seed derivation). */
function deriveFromSeed(seed: Buffer): Identity {
  const publicKey = Buffer.alloc(32);
  const secretKey = Buffer.alloc(64);
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, seed);
  return { publicKey, secretKey };
}

export interface ParsedToken {
  cert: Buffer;
  certSig: Buffer;
  invite: InviteCert;
  /** The invite key pair (from the seed). */
  inviteKey: Identity;
  /** Hex. */
  inviteId: string;
}

function b64urlPart(s: string, bytes: number | [number, number], what: string): Buffer {
  if (!/^[A-Za-z0-9_-]+$/.test(s)) throw bad(`join token ${what} is not base64url`);
  const b = Buffer.from(s, 'base64url');
  const [lo, hi] = typeof bytes === 'number' ? [bytes, bytes] : bytes;
  if (b.length < lo || b.length > hi || b.toString('base64url') !== s) throw bad(`join token ${what} is damaged`);
  return b;
}

/**
 * Reads a join token. Checks its form, that the certificate is signed by the admin key it
 * names and that the secret matches the invite key; with `now` (ms) also its expiry.
 * Errors are BAD_ARGUMENT: "not a join token", "join token … is damaged", "token expired", …
 * Whether the admin key really administers the network is for the rendezvous (and peers).
 */
export function parseToken(token: string, now?: number): ParsedToken {
  if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX)) throw bad('not a join token');
  if (token.length > TOKEN_MAX_CHARS) throw bad('join token is too long');
  const parts = token.trim().slice(TOKEN_PREFIX.length).split('.');
  if (parts.length !== 3) throw bad('join token is damaged (expected 3 parts after the prefix)');
  const cert = b64urlPart(parts[0]!, [CERT_FIXED, CERT_MAX_BYTES], 'certificate');
  const certSig = b64urlPart(parts[1]!, 64, 'signature');
  const seed = b64urlPart(parts[2]!, 32, 'secret');
  const invite = decodeCert(cert);
  if (!verifyCertSig(cert, certSig, invite.admin)) throw bad('join token signature does not verify (token damaged or forged)');
  const inviteKey = deriveFromSeed(seed);
  if (!inviteKey.publicKey.equals(invite.invKey)) throw bad('join token secret does not match its invite key (token damaged)');
  if (now !== undefined && invite.exp !== 0 && Math.floor(now / 1000) >= invite.exp) {
    throw new PilotError('BAD_ARGUMENT', `token expired at ${new Date(invite.exp * 1000).toISOString()}`, 'ask the network admin for a new invite');
  }
  return { cert, certSig, invite, inviteKey, inviteId: invite.inviteId.toString('hex') };
}

/** The joiner's side: binds its node key to the invite, signed with the invite key. */
export function makeBinding(
  token: string | ParsedToken,
  node: Identity | Buffer,
  now = Date.now(),
): { binding: Buffer; bindingSig: Buffer; credential: Credential } {
  const t = typeof token === 'string' ? parseToken(token, now) : token;
  const nodeKey = Buffer.isBuffer(node) ? node : node.publicKey;
  const binding = encodeBinding({ net: t.invite.net, node: nodeKey, inviteId: t.invite.inviteId, ts: Math.floor(now / 1000) });
  const bindingSig = sign(domain(MEMBER_DOMAIN, binding), t.inviteKey.secretKey);
  return { binding, bindingSig, credential: { cert: t.cert, certSig: t.certSig, binding, bindingSig } };
}

export interface VerifiedCredential {
  ok: true;
  tags: string[];
  ephemeral: boolean;
  inviteId: string;
  invite: InviteCert;
  binding: Binding;
}

/**
 * A peer's (and the rendezvous's) check of a membership credential: the certificate is
 * signed by the network's admin key, the binding names this network, this invite and the
 * authenticated node key, is signed by the certificate's invite key and was made before
 * the invite expired. Returns the tags, or `{ok: false, reason}`. `now` in ms.
 */
export function verifyCredential(
  c: Credential,
  expect: {
    adminKey: Buffer;
    net: number;
    nodeKey: Buffer;
    now?: number;
    /**
     * Key rotation (src/registry/rotation.ts): does a rotation chain the CALLER verified lead
     * from `older` to `current`? Lets a credential made for (or by) a key that was rotated
     * since still count for its successor. Absent: keys must match exactly.
     */
    linked?: (older: Buffer, current: Buffer) => boolean;
  },
): VerifiedCredential | { ok: false; reason: string } {
  let invite: InviteCert;
  let binding: Binding;
  try {
    invite = decodeCert(c.cert);
    binding = decodeBinding(c.binding);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  if (invite.net !== expect.net) return { ok: false, reason: `certificate is for network ${invite.net}, not ${expect.net}` };
  const same = (older: Buffer, current: Buffer) => older.equals(current) || (expect.linked?.(older, current) ?? false);
  if (!same(invite.admin, expect.adminKey)) return { ok: false, reason: 'certificate names another admin key' };
  // Signed by the admin key the certificate names (the current one, or one it rotated away from).
  if (!verifyCertSig(c.cert, c.certSig, invite.admin)) return { ok: false, reason: 'certificate signature does not verify' };
  if (binding.net !== invite.net) return { ok: false, reason: 'binding is for another network' };
  if (!binding.inviteId.equals(invite.inviteId)) return { ok: false, reason: 'binding is for another invite' };
  if (!same(binding.node, expect.nodeKey)) return { ok: false, reason: 'binding names another node key' };
  if (!verify(domain(MEMBER_DOMAIN, c.binding), c.bindingSig, invite.invKey)) return { ok: false, reason: 'binding signature does not verify' };
  if (invite.exp !== 0 && binding.ts > invite.exp) return { ok: false, reason: 'binding was made after the invite expired' };
  if (expect.now !== undefined && binding.ts > Math.floor(expect.now / 1000) + BINDING_FUTURE_S) return { ok: false, reason: 'binding is dated in the future' };
  return { ok: true, tags: invite.tags, ephemeral: invite.ephemeral, inviteId: invite.inviteId.toString('hex'), invite, binding };
}

// ---------------- member tickets ----------------

export function encodeTicket(t: Ticket): Buffer {
  checkNet(t.net);
  checkKey(t.node, 'node key');
  const out = Buffer.alloc(TICKET_BYTES);
  let o = out.writeUInt8(MEMBERSHIP_VERSION, 0);
  o = out.writeUInt16BE(t.net, o);
  o += t.node.copy(out, o);
  out.writeUInt32BE(u32(t.exp, 'exp'), o);
  return out;
}

export function decodeTicket(b: Buffer): Ticket {
  if (!Buffer.isBuffer(b) || b.length !== TICKET_BYTES || b[0] !== MEMBERSHIP_VERSION) throw bad('malformed member ticket');
  const net = b.readUInt16BE(1);
  if (net === 0) throw bad('member ticket names network 0');
  return { net, node: Buffer.from(b.subarray(3, 35)), exp: b.readUInt32BE(35) };
}

/** The rendezvous's side: a short-lived "still a member" statement. */
export function signTicket(server: Identity, t: { net: number; node: Buffer; now?: number; lifetimeS?: number }): { ticket: Buffer; sig: Buffer; exp: number } {
  const exp = Math.floor((t.now ?? Date.now()) / 1000) + (t.lifetimeS ?? TICKET_LIFETIME_S);
  const ticket = encodeTicket({ net: t.net, node: t.node, exp });
  return { ticket, sig: sign(domain(TICKET_DOMAIN, ticket), server.secretKey), exp };
}

/** A peer's check: signed by the rendezvous key it pinned, for this network and node, not expired. */
export function verifyTicket(ticket: Buffer, sig: Buffer, serverKey: Buffer, expect: { net: number; nodeKey: Buffer; now?: number }): true | string {
  let t: Ticket;
  try {
    t = decodeTicket(ticket);
  } catch (err) {
    return (err as Error).message;
  }
  if (!verify(domain(TICKET_DOMAIN, ticket), sig, serverKey)) return 'ticket signature does not verify';
  if (t.net !== expect.net) return 'ticket is for another network';
  if (!t.node.equals(expect.nodeKey)) return 'ticket is for another node';
  if (Math.floor((expect.now ?? Date.now()) / 1000) >= t.exp) return 'ticket expired';
  return true;
}

// ---------------- policy signature ----------------

function policyMessage(net: number, version: number, text: string): Buffer {
  if (!Number.isSafeInteger(version) || version < 1) throw new PilotError('BAD_ARGUMENT', `bad policy version ${version}`, 'a positive integer (ms)');
  const head = Buffer.alloc(10);
  head.writeUInt16BE(checkNet(net), 0);
  head.writeUInt32BE(Math.floor(version / 0x100000000), 2);
  head.writeUInt32BE(version % 0x100000000, 6);
  return Buffer.concat([POLICY_DOMAIN, head, Buffer.from(text, 'utf8')]);
}

/**
 * The admin's signature over a policy text, bound to the network (it cannot be replayed to
 * another) and to a version (ms, increasing: a peer that saw version v refuses older ones,
 * so a rendezvous cannot roll a policy back).
 */
export function signPolicy(admin: Identity, net: number, text: string, version: number): Buffer {
  return sign(policyMessage(net, version, text), admin.secretKey);
}

export function verifyPolicy(net: number, text: string, sig: Buffer, adminKey: Buffer, version: number): boolean {
  try {
    return verify(policyMessage(net, version, text), sig, adminKey);
  } catch {
    return false;
  }
}
