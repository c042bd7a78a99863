// Persistence interface of the registry, implemented by the SQLite store
// (embedded default) and the PostgreSQL store (several rendezvous, one registry).
// The store is the source of truth for identities; liveness lives in memory.
import type { Address } from '../../wire/address.ts';
import type { PilotError } from '../../util/errors.ts';
import type { NetworkStore } from './network-store.ts';

export interface NodeRecord {
  address: Address;
  publicKey: Buffer; // 32-byte Ed25519
  email: string;
  hostname: string | null;
  public: boolean;
  /** false after deregister: the key keeps its address, but the node is hidden until it registers again. */
  active: boolean;
  created: number; // ms
  lastSeen: number; // ms, 0 = never
  observed: string | null; // last "ip:port" the rendezvous saw
  lanEndpoints: string[];
  /** Ephemeral (issue 18): removed on deregister or after a silence, instead of hidden. */
  ephemeral: boolean;
  /**
   * The rotation statement that bound the current key (the address's newest rotation, when its
   * new key is this one), read with the record where that spares a round trip (PostgreSQL's
   * lookups): null = none; undefined = not read (listRotations has it).
   */
  boundBy?: { statement: string; sig: Buffer } | null;
}

export interface RegisterInput {
  publicKey: Buffer;
  email: string;
  /** undefined = keep the current hostname; a value must already be normalised. */
  hostname?: string;
  public?: boolean;
  lanEndpoints?: string[];
  observed?: string;
  /** true makes the node ephemeral; false/undefined keeps what it was (one way, see protocol.ts). */
  ephemeral?: boolean;
  now: number;
  /**
   * Whether the caller just saw this key registered: spares a store on a shared database its own
   * lookup (a round trip). Only a hint: a wrong one (a concurrent registration) costs a retry.
   */
  known?: boolean;
}

export interface TouchInput {
  observed: string;
  lanEndpoints?: string[];
  now: number;
}

/**
 * A mutual trust pair. It holds one signed statement from EACH side (the
 * request of one node and the approval, or the crossing request, of the
 * other), exactly as received and verified by the server, so anyone can
 * re-check that neither node could have created the pair alone.
 */
export interface TrustPair {
  a: Address; // the lower address of the pair
  b: Address;
  /** Statement text signed by a's key (sigA over its UTF-8 bytes). */
  stmtA: string;
  sigA: Buffer;
  /** Statement text signed by b's key. */
  stmtB: string;
  sigB: Buffer;
  created: number;
}

export interface TrustRequest {
  from: Address;
  to: Address;
  reason: string; // '' = none
  statement: string; // the signed statement text, as received
  sig: Buffer; // the requester's signature over statement
  created: number;
}

/** A node key rotation (issue 18, src/registry/rotation.ts), as the rendezvous verified it. */
export interface KeyRotationRecord {
  address: Address;
  oldKey: Buffer;
  newKey: Buffer;
  /** The statement text and the old key's signature over it, verbatim. */
  statement: string;
  sig: Buffer;
  created: number; // ms
}

/** What removing a node took with it (one statement on PostgreSQL): the callers tell the peers and members. */
export interface RemovedNode {
  node: NodeRecord;
  /** The trust pairs it was in (both ends), now gone. */
  pairs: { a: Address; b: Address }[];
  /** Its addresses as a member of fleet networks (N:<node>), memberships now gone. */
  memberships: Address[];
}

/** A database server's side of a store (PostgreSQL): /metrics (pilot_rendezvous_db_*). */
export interface DbStats {
  /** Statements sent (each a round trip); transactions' BEGIN/COMMIT included. */
  statements: number;
  connections: number;
  idle: number;
  /** Queries waiting for a free connection: round trips, not the database, are then the bound. */
  waiting: number;
}

export interface RegistryStore {
  /** Only stores with a database server (PostgreSQL) have these. */
  dbStats?(): DbStats;
  /**
   * Creates the node (allocating the next node id on `network`) or refreshes it;
   * the same public key always gets the same address back.
   * Throws PilotError HOSTNAME_TAKEN when the hostname belongs to another key.
   */
  register(input: RegisterInput): Promise<NodeRecord>;
  getByKey(publicKey: Buffer): Promise<NodeRecord | undefined>;
  getByAddress(address: Address): Promise<NodeRecord | undefined>;
  /** Active nodes only. */
  getByHostname(hostname: string): Promise<NodeRecord | undefined>;
  /** null clears. Throws HOSTNAME_TAKEN / NOT_REGISTERED. */
  setHostname(publicKey: Buffer, hostname: string | null): Promise<NodeRecord>;
  setVisibility(publicKey: Buffer, pub: boolean): Promise<NodeRecord>;
  /** Records a heartbeat. Throws NOT_REGISTERED. */
  touch(publicKey: Buffer, input: TouchInput): Promise<NodeRecord>;
  /** Marks inactive and releases the hostname; the address stays bound to the key. */
  deregister(publicKey: Buffer): Promise<void>;
  /**
   * Hostname leases: releases the hostnames of nodes last seen before
   * `seenBefore` (ms), so a name squatted or abandoned does not stay taken
   * forever. The nodes keep their keys and addresses. Returns how many.
   */
  releaseLapsedHostnames(seenBefore: number): Promise<number>;

  // Ephemeral nodes (issue 18).
  /** Makes the node ephemeral (it joined with an ephemeral invite). Throws NOT_REGISTERED. */
  markEphemeral(publicKey: Buffer): Promise<void>;
  /**
   * Deletes the node, its fleet memberships and the trust pairs and requests of its address,
   * atomically; returns what went, or undefined if there was no node (another instance was
   * first). The node id is never handed out again: the counter only goes up (SECURITY.md
   * "Ephemeral nodes"). One statement on PostgreSQL: an ephemeral agent's clean stop had cost
   * eight round trips (a transaction and the lookups around it). `onlyEphemeral`: only if the
   * node is ephemeral (an ephemeral agent's stop, without a lookup first).
   */
  remove(publicKey: Buffer, opts?: { onlyEphemeral?: boolean }): Promise<RemovedNode | undefined>;
  /** Ephemeral nodes whose stored last_seen is before `seenBefore` (ms), oldest first, at most `limit`. */
  listEphemeralSeenBefore(seenBefore: number, limit: number): Promise<NodeRecord[]>;

  // Trust. Pairs are unordered: the store keeps them with a < b (and swaps
  // stmt/sig with them).
  putTrustPair(pair: TrustPair): Promise<void>;
  /**
   * May `src` reach `dst` through the relay: dst registered and active, and public, or in a trust
   * pair with src, or sharing a network with it (one query on a shared database, not three).
   */
  mayRelay(src: Address, dst: Address): Promise<boolean>;
  getTrustPair(x: Address, y: Address): Promise<TrustPair | undefined>;
  deleteTrustPair(x: Address, y: Address): Promise<boolean>;
  listTrustPairs(node: Address): Promise<TrustPair[]>;
  putTrustRequest(req: TrustRequest): Promise<void>;
  getTrustRequest(from: Address, to: Address): Promise<TrustRequest | undefined>;
  /** Oldest first. */
  listTrustRequestsTo(to: Address): Promise<TrustRequest[]>;
  /** Oldest first. */
  listTrustRequestsFrom(from: Address): Promise<TrustRequest[]>;
  deleteTrustRequest(from: Address, to: Address): Promise<boolean>;
  /**
   * Runs fn holding a lock on the unordered pair that other processes sharing
   * the store respect (trust mutations of one pair never interleave). Stores
   * used by one process only leave it out: the rendezvous serialises in memory.
   */
  withPairLock?<T>(x: Address, y: Address, fn: () => Promise<T>): Promise<T>;

  /**
   * Key rotation, one atomic step (also across processes sharing the store): rebinds
   * `r.address` from r.oldKey to r.newKey, keeping hostname, trust pairs (by address),
   * network memberships, tags, kicks and network admin rights (they move to the new key),
   * records the statement (newest `keep` per node) and retires the old key for good.
   * Answers 'already' when this exact rotation was done before (a retry).
   * Throws NOT_FOUND (no such address), KEY_ROTATED (oldKey is not the address's key now),
   * BAD_ARGUMENT (newKey belongs to a node or was retired), RATE_LIMITED (the node rotated
   * less than `minIntervalMs` ago).
   */
  rotateKey(r: KeyRotationRecord, opts: { keep: number; minIntervalMs: number }): Promise<{ status: 'rotated' | 'already'; node: NodeRecord }>;
  /** The rotation statements kept for an address, oldest first. */
  listRotations(address: Address): Promise<KeyRotationRecord[]>;
  /** The address a rotated-away key used to speak for, or undefined if it was never retired. */
  retiredKey(publicKey: Buffer): Promise<Address | undefined>;

  /** Fleets (issue 18): networks, invites, members, kicks, policy, audit, self tags. */
  readonly networks: NetworkStore;

  /**
   * A coded error for a backend failure the client should hear about (the
   * database is down), or undefined for anything else (kept INTERNAL).
   */
  explainError?(err: unknown): PilotError | undefined;
  close(): Promise<void>;
}
