// Node key rotation (issue 18): a new key for the same address, authorised by the
// old one (as a WireGuard/Tailscale node key is replaced: the machine's standing
// moves to the new key because the old key said so, not because a server did).
//
// The rotation statement is a small JSON text naming the address, the old key, the
// new key and a time; the OLD key signs it (domain-separated). The rendezvous
// additionally gets proof that the caller holds the NEW key (the rotate_key request
// envelope is signed by it). Peers check the old key's signature themselves, so a
// compromised rendezvous cannot hand an address to a key its owner did not sign for:
// KeyLinks keeps the links a peer verified, and answers "is old linked to new?".
import { PilotError } from '../util/errors.ts';
import { sign, verify, PUBLIC_KEY_BYTES } from '../crypto/identity.ts';
import { formatAddress, parseAddress, type Address } from '../wire/address.ts';

/** Domain separation: a rotation signature can never pass as a registry request, ticket, etc. */
const ROTATION_DOMAIN = Buffer.from('pilot-key-rotation-v1\0', 'utf8');
export const ROTATION_TYPE = 'pilot-key-rotation/1';
/** Longest statement text accepted (a real one is ~170 bytes). */
export const MAX_ROTATION_STATEMENT = 320;
/** Longest old->new chain a peer follows (a node rotating more often than this between two of a peer's looks is resolved afresh). */
export const MAX_ROTATION_CHAIN = 8;
/** Rotation statements the rendezvous keeps per node (newest). */
export const ROTATION_HISTORY = 16;
/** One rotation per node per this many ms (a thief holding the key cannot churn it). */
export const ROTATION_INTERVAL_MS = 60_000;

export interface RotationStatement {
  address: Address;
  oldKey: Buffer;
  newKey: Buffer;
  /** ms */
  ts: number;
}

/** A statement as sent: the exact text and the old key's signature over it. */
export interface SignedRotation {
  statement: string;
  sig: Buffer;
}

function message(text: string): Buffer {
  return Buffer.concat([ROTATION_DOMAIN, Buffer.from(text, 'utf8')]);
}

export function encodeRotation(r: RotationStatement): string {
  return JSON.stringify({
    t: ROTATION_TYPE,
    address: formatAddress(r.address),
    old: r.oldKey.toString('base64'),
    new: r.newKey.toString('base64'),
    ts: r.ts,
  });
}

/** The old key's signature over a statement. */
export function signRotation(r: RotationStatement, oldSecretKey: Buffer): SignedRotation {
  const statement = encodeRotation(r);
  return { statement, sig: sign(message(statement), oldSecretKey) };
}

const bad = (why: string) =>
  new PilotError(
    'BAD_SIGNATURE',
    `key rotation refused: ${why}`,
    "the rotation statement must be made and signed by the node's current key (pilotctl rotate-key does this)",
  );

function key(s: unknown, what: string): Buffer {
  if (typeof s !== 'string') throw bad(`${what} missing`);
  const b = Buffer.from(s, 'base64');
  if (b.length !== PUBLIC_KEY_BYTES || b.toString('base64') !== s) throw bad(`${what} is not a base64 32-byte key`);
  return b;
}

/** Parses a statement text (hostile input: bounded, strict). Throws BAD_SIGNATURE. */
export function parseRotation(text: string): RotationStatement {
  if (typeof text !== 'string' || text.length > MAX_ROTATION_STATEMENT) throw bad('statement too long');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('statement is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('statement is not an object');
  const o = raw as Record<string, unknown>;
  if (o.t !== ROTATION_TYPE) throw bad(`statement type must be ${ROTATION_TYPE}`);
  if (Object.keys(o).length !== 5) throw bad('statement has unknown fields');
  if (typeof o.address !== 'string' || o.address.length > 32) throw bad('address missing');
  let address: Address;
  try {
    address = parseAddress(o.address);
  } catch {
    throw bad('address is malformed');
  }
  const ts = o.ts;
  if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) throw bad('ts must be a time in ms');
  const r = { address, oldKey: key(o.old, 'old key'), newKey: key(o.new, 'new key'), ts };
  if (r.oldKey.equals(r.newKey)) throw bad('the new key is the old key');
  // Canonical text only: a resolve answer carries just (old key, ts, sig) and peers rebuild the text.
  if (encodeRotation(r) !== text) throw bad('statement is not in canonical form');
  return r;
}

/**
 * The compact proof a resolve answer carries (the address and new key are in the answer
 * already), and the statement rebuilt from it.
 */
export interface CompactRotation {
  old: string;
  ts: number;
  sig: string;
}

export function compactRotation(s: SignedRotation): CompactRotation {
  const r = parseRotation(s.statement);
  return { old: r.oldKey.toString('base64'), ts: r.ts, sig: s.sig.toString('base64') };
}

export function expandRotation(c: CompactRotation, address: Address, newKey: Buffer): SignedRotation {
  return { statement: encodeRotation({ address, oldKey: Buffer.from(c.old, 'base64'), newKey, ts: c.ts }), sig: Buffer.from(c.sig, 'base64') };
}

/** Parses and checks the old key's signature. Throws BAD_SIGNATURE; never trusts anything unverified. */
export function verifyRotation(s: SignedRotation): RotationStatement {
  const r = parseRotation(s.statement);
  if (!verify(message(s.statement), s.sig, r.oldKey)) throw bad('the statement is not signed by the old key');
  return r;
}

/**
 * Links old key -> new key that THIS process verified (the old key's signature), for
 * peers and network admins. Bounded (oldest dropped); a chain is followed at most
 * MAX_ROTATION_CHAIN steps and only within one address.
 */
export class KeyLinks {
  private readonly links = new Map<string, { address: string; newKey: Buffer }>();
  private readonly max: number;

  constructor(max = 4096) {
    this.max = max;
  }

  /** Verifies and records a link; returns it, or undefined (logged by the caller) when it does not verify. */
  add(s: SignedRotation): RotationStatement | undefined {
    let r: RotationStatement;
    try {
      r = verifyRotation(s);
    } catch {
      return undefined;
    }
    const k = r.oldKey.toString('base64');
    this.links.delete(k);
    this.links.set(k, { address: formatAddress({ network: 0, node: r.address.node }), newKey: r.newKey });
    while (this.links.size > this.max) this.links.delete(this.links.keys().next().value!);
    return r;
  }

  /** Does a verified chain (same address, at most MAX_ROTATION_CHAIN links) lead from `older` to `current`? */
  linked(older: Buffer, current: Buffer): boolean {
    if (older.equals(current)) return true;
    let k = older.toString('base64');
    let address: string | undefined;
    for (let i = 0; i < MAX_ROTATION_CHAIN; i++) {
      const l = this.links.get(k);
      if (!l || (address !== undefined && l.address !== address)) return false;
      address = l.address;
      if (l.newKey.equals(current)) return true;
      k = l.newKey.toString('base64');
    }
    return false;
  }

  get size(): number {
    return this.links.size;
  }
}
