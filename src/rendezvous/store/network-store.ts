// Persistence of fleets (issue 18): networks, invites, members, kicks, policy, audit,
// self-declared tags. Part of every RegistryStore (`store.networks`), implemented by
// sqlite-networks.ts and postgres-networks.ts and held to one contract
// (test/rendezvous/store/store-contract.ts). Signed material (certificates, bindings,
// kick and audit statements, the policy signature) is stored verbatim, so anyone can
// re-check it later; the store never interprets it.
import { PilotError } from '../../util/errors.ts';
import { makeAddress, type Address } from '../../wire/address.ts';

export interface NetworkRecord {
  /** 1..65535, never reused (an old credential must not verify in a new network). */
  id: number;
  name: string;
  /** The creator's node key: it signs invites, policy and kicks. */
  admin: Buffer;
  created: number;
}

export interface InviteRecord {
  net: number;
  /** 16 bytes. */
  id: Buffer;
  cert: Buffer;
  certSig: Buffer;
  /** 0 = unlimited. */
  uses: number;
  used: number;
  /** Unix seconds, 0 = never. */
  exp: number;
  /** When the invite was issued (the certificate's iat), unix seconds. */
  iat: number;
  revoked: boolean;
  ephemeral: boolean;
  tags: string[];
  created: number;
}

export interface MemberRecord {
  net: number;
  /** The node's (network-0) registry address. */
  address: Address;
  key: Buffer;
  tags: string[];
  ephemeral: boolean;
  joined: number;
  inviteId: Buffer;
  /** The credential, verbatim. */
  cert: Buffer;
  certSig: Buffer;
  binding: Buffer;
  bindingSig: Buffer;
}

/** A kick: the admin's signed network_kick request, verbatim. */
export interface KickRecord {
  net: number;
  address: Address;
  key: Buffer;
  stmt: string;
  sig: Buffer;
  ts: number;
}

export interface PolicyRecord {
  net: number;
  text: string;
  /** The admin's signature (membership.ts signPolicy). */
  sig: Buffer;
  updated: number;
}

export interface AuditEntry {
  net: number;
  /** 1, 2, 3 … per network. */
  seq: number;
  ts: number;
  actor: Address;
  action: string;
  /** JSON text. */
  detail: string;
  /** The actor's signed registry request, verbatim. */
  stmt: string;
  sig: Buffer;
}

/**
 * Why an invite cannot be used (checked atomically with the use count): unknown (not
 * registered), forged (the certificate differs from the registered one), kicked (the node
 * was kicked from the network after the invite was issued), revoked, expired, used-up, full.
 */
export type JoinRefusal = 'unknown' | 'forged' | 'kicked' | 'revoked' | 'expired' | 'used-up' | 'full';

/** What a join does besides the membership, in the same transaction (one round trip on a shared database). */
export interface JoinOptions {
  now: number;
  maxMembers: number;
  /** Marks the node's record ephemeral too (an ephemeral invite: the node is removed when it stops). */
  markNodeEphemeral?: boolean;
  /** Appended to the network's audit log (keeping the newest `keep`) unless the node was a member already. */
  audit?: { entry: Omit<AuditEntry, 'seq'>; keep: number };
}

export interface NetworkStore {
  /** Allocates the next id. Throws QUOTA_EXCEEDED (admin has maxPerAdmin, or no ids left) / BAD_ARGUMENT (name taken). */
  createNetwork(input: { name: string; admin: Buffer; now: number; maxPerAdmin: number }): Promise<NetworkRecord>;
  getNetwork(id: number): Promise<NetworkRecord | undefined>;
  getNetworkByName(name: string): Promise<NetworkRecord | undefined>;
  /** Deletes the network and everything in it (invites, members, kicks, policy, audit). */
  deleteNetwork(id: number): Promise<boolean>;
  /** Networks `key` administers or is a member of, by id. */
  networksOf(key: Buffer): Promise<NetworkRecord[]>;
  /**
   * networksOf with `key`'s credential tags in each (null where it is only the admin) and each
   * network's member count: `network list` in one query, not 1 + 2 per network.
   */
  networksOfWithMembership(key: Buffer): Promise<{ network: NetworkRecord; tags: string[] | null; members: number }[]>;

  /**
   * Throws QUOTA_EXCEEDED when the network has maxLive live invites (not revoked, not expired,
   * not used up). Dead ones beyond deadInvitesKept(maxLive), oldest first, are dropped.
   */
  putInvite(inv: InviteRecord, opts: { maxLive: number; now: number }): Promise<void>;
  getInvite(net: number, id: Buffer): Promise<InviteRecord | undefined>;
  /** Oldest first. */
  listInvites(net: number): Promise<InviteRecord[]>;
  revokeInvite(net: number, id: Buffer): Promise<boolean>;

  /**
   * Atomically (also across processes): checks the invite is known with this certificate, the
   * node not kicked since the invite was issued (an older kick is dropped), the invite not
   * revoked, not expired at `now` (ms), with a use left and the network room, then counts the
   * use and writes the member (and what `opts` asks). A node that is already a member is
   * updated and uses nothing. A refusal says the invite's use limit (for the hint).
   */
  join(m: MemberRecord, opts: JoinOptions): Promise<{ ok: true; member: MemberRecord; already: boolean } | { ok: false; why: JoinRefusal; uses: number }>;
  getMember(net: number, key: Buffer): Promise<MemberRecord | undefined>;
  /** By join time, then address. */
  listMembers(net: number): Promise<MemberRecord[]>;
  countMembers(net: number): Promise<number>;
  removeMember(net: number, key: Buffer): Promise<boolean>;
  /** Ephemeral memberships (all networks), oldest join first, at most `limit`. */
  listEphemeralMembers(limit: number): Promise<MemberRecord[]>;
  /** Every membership of one node key. */
  membershipsOf(key: Buffer): Promise<MemberRecord[]>;
  /**
   * Discovery's window in one query (one round trip on a shared database): whether `caller` is a
   * member of `net`, and the members of `net` having `tag` as a credential tag or a self tag, by
   * join time then address, from `offset`, at most `limit`, each with its node's summary.
   */
  findPage(net: number, tag: string, opts: { caller: Buffer; offset: number; limit: number }): Promise<FoundPage>;
  /** b's memberships in the networks a is a member of too (by net): one query for a resolve's answer. */
  sharedMemberships(a: Buffer, b: Buffer): Promise<MemberRecord[]>;
  /** Are two nodes members of one network (the relay lets them reach each other)? */
  sharesNetwork(a: Address, b: Address): Promise<boolean>;

  /** Keeps the newest `max` kicks of the network. */
  putKick(k: KickRecord, max: number): Promise<void>;
  getKick(net: number, key: Buffer): Promise<KickRecord | undefined>;
  /** Oldest first. */
  listKicks(net: number): Promise<KickRecord[]>;
  deleteKick(net: number, key: Buffer): Promise<boolean>;

  setPolicy(p: PolicyRecord): Promise<void>;
  getPolicy(net: number): Promise<PolicyRecord | undefined>;

  /** Appends with the next seq and drops entries beyond the newest `keep`; returns the seq. */
  appendAudit(e: Omit<AuditEntry, 'seq'>, keep: number): Promise<number>;
  /** Entries with seq > afterSeq, oldest first, at most `limit`. */
  listAudit(net: number, afterSeq: number, limit: number): Promise<AuditEntry[]>;
  getAudit(net: number, seq: number): Promise<AuditEntry | undefined>;

  /** Self-declared tags of a node (discovery only); [] clears. */
  setSelfTags(key: Buffer, tags: string[]): Promise<void>;
  getSelfTags(key: Buffer): Promise<string[]>;
  /** Keys with this self tag, ordered by key, at most `limit`. */
  findSelfTag(tag: string, limit: number): Promise<Buffer[]>;
  /**
   * Hostname (null unless the node is registered and active) and self tags of each key, in the
   * order given: a page of discovery results in one query, not two per node.
   */
  describeNodes(keys: Buffer[]): Promise<NodeSummary[]>;
}

export interface NodeSummary {
  hostname: string | null;
  selfTags: string[];
}

export interface FoundPage {
  callerIsMember: boolean;
  found: { member: MemberRecord; about: NodeSummary }[];
}

export const networkNameTaken = (name: string) =>
  new PilotError('BAD_ARGUMENT', `a network named ${name} already exists`, 'pick another name (names are unique on this rendezvous)');

export const tooManyNetworks = (max: number) =>
  new PilotError(
    'QUOTA_EXCEEDED',
    `this key already administers ${max} networks`,
    `delete one first (pilotctl network delete <name>); at most ${max} per admin key`,
  );

export const noNetworkIds = () => new PilotError('QUOTA_EXCEEDED', 'no network ids left on this rendezvous', 'network ids are never reused; ask the operator');

export const tooManyInvites = (max: number) =>
  new PilotError('QUOTA_EXCEEDED', `the network has ${max} live invites`, 'revoke unused invites first (pilotctl network invites / revoke-invite)');

/** Members' credential tags as one column: ",a,b," (tags are [a-z0-9-], so LIKE '%,t,%' is exact). */
export function tagsColumn(tags: string[]): string {
  return tags.length === 0 ? ',' : `,${tags.join(',')},`;
}

export function parseTagsColumn(s: string): string[] {
  return s.split(',').filter((t) => t.length > 0);
}

/** Is the invite live at `now` (ms)? */
export function inviteLive(inv: InviteRecord, now: number): boolean {
  return !inv.revoked && (inv.exp === 0 || Math.floor(now / 1000) < inv.exp) && (inv.uses === 0 || inv.used < inv.uses);
}

export const NETWORK_ID_MAX = 0xffff;

/** Dead invites (revoked, expired, used up) kept per network for listing: 4x the live limit, newest first. */
export function deadInvitesKept(maxLive: number): number {
  return 4 * maxLive;
}

// ---- rows -> records, for both stores ----
// SQLite gives numbers and 0/1; PostgreSQL gives BIGINT columns as text and booleans.

// biome-ignore lint/suspicious/noExplicitAny: rows come straight from the database; the mappers below give them types.
export type Row = any;

export const num = (v: string | number): number => Number(v);
const flag = (v: boolean | number): boolean => v === true || v === 1;
export const buf = (b: Buffer): Buffer => Buffer.from(b);
/** An address stored as one integer (network << 32 | node). */
export function addressFromKey(k: string | number): Address {
  const n = num(k);
  return makeAddress(Math.floor(n / 0x100000000), n % 0x100000000);
}

export function netRow(r: Row): NetworkRecord {
  return { id: r.id, name: r.name, admin: buf(r.admin), created: num(r.created) };
}
export function inviteRow(r: Row): InviteRecord {
  return {
    net: r.net,
    id: buf(r.id),
    cert: buf(r.cert),
    certSig: buf(r.cert_sig),
    uses: num(r.uses),
    used: num(r.used),
    exp: num(r.exp),
    iat: num(r.iat),
    revoked: flag(r.revoked),
    ephemeral: flag(r.ephemeral),
    tags: parseTagsColumn(r.tags),
    created: num(r.created),
  };
}
export function memberRow(r: Row): MemberRecord {
  return {
    net: r.net,
    address: addressFromKey(r.address),
    key: buf(r.key),
    tags: parseTagsColumn(r.tags),
    ephemeral: flag(r.ephemeral),
    joined: num(r.joined),
    inviteId: buf(r.invite_id),
    cert: buf(r.cert),
    certSig: buf(r.cert_sig),
    binding: buf(r.binding),
    bindingSig: buf(r.binding_sig),
  };
}
export function kickRow(r: Row): KickRecord {
  return { net: r.net, address: addressFromKey(r.address), key: buf(r.key), stmt: r.stmt, sig: buf(r.sig), ts: num(r.ts) };
}
export function auditRow(r: Row): AuditEntry {
  return { net: r.net, seq: num(r.seq), ts: num(r.ts), actor: addressFromKey(r.actor), action: r.action, detail: r.detail, stmt: r.stmt, sig: buf(r.sig) };
}
