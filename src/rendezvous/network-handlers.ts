// Fleet methods of the registry (issue 18): networks, invites, joins, kicks, policy,
// tickets, audit, self tags and discovery. Ordinary signed methods: the envelope,
// signature, freshness, replay and cookie checks ran before (registry-service.ts), and
// the params went through their valibot schema (network-protocol.ts) here.
//
// What the rendezvous is trusted with (SECURITY.md "Fleets"): it counts invite uses,
// enforces expiry and revocation, keeps kicks and serves tickets. What it is NOT trusted
// with: membership itself. It never holds an invite seed, so it cannot sign a binding;
// every credential it stores was signed by the admin key (certificate) and by the invite
// key (binding), and peers re-check both on their own.
import { PilotError } from '../util/errors.ts';
import { addressKey, formatAddress, parseAddress, type Address } from '../wire/address.ts';
import type { Statement } from '../registry/protocol.ts';
import { normalizeHostname } from '../registry/hostname.ts';
import { decodeCert, signTicket, verifyCertSig, verifyCredential, verifyPolicy } from '../registry/membership.ts';
import { parsePolicy, POLICY_MAX_BYTES, validateTag, validateTags } from '../registry/network-policy.ts';
import { isNetworkMethod, parseNetworkParams, type NetworkMethod } from '../registry/network-protocol.ts';
import type { Identity } from '../registry/signing.ts';
import type { NodeRecord, RegistryStore } from './store/store.ts';
import type { MemberRecord, NetworkRecord, NodeSummary } from './store/network-store.ts';
import { isOnline, type OnlineIndex } from './online-index.ts';
import type { Cluster } from './cluster.ts';
import type { Link } from './link.ts';
import { KeyedLimiter, type Rate } from './rate-limit.ts';
import { envelopeCost, PUSH_BUDGET, RESULT_BUDGET, type SignedStatement } from './trust-handlers.ts';

/** Limits (defaults; SECURITY.md "Fleets" has the table). */
export const NETWORK_LIMITS = {
  /** Networks one admin key may administer. */
  networksPerAdmin: 16,
  /** Members of one network (v1). */
  membersPerNetwork: 10_000,
  /** Live (usable) invites per network. */
  liveInvitesPerNetwork: 256,
  /** Audit entries kept per network (oldest dropped). */
  auditPerNetwork: 10_000,
  /** Kicks remembered per network (oldest dropped). */
  kicksPerNetwork: 4_096,
  /** Policy uploads being assembled at once (all admins). */
  policyAssemblies: 256,
  /** An unfinished policy upload is dropped after this (ms). */
  policyAssemblyMs: 60_000,
  /** Matches returned by find without a network (public nodes). */
  findPublicMax: 1_000,
  /** An ephemeral member silent this long (ms) leaves its networks (swept every ephemeralSweepMs). */
  ephemeralSilenceMs: 120_000,
  ephemeralSweepMs: 15_000,
  /** Member ticket lifetime (s). */
  ticketLifetimeS: 300,
  /** A binding may be this much older than the join request (ms) / ahead of it. */
  bindingPastMs: 60_000,
  bindingFutureMs: 5_000,
};

/** Fleet writes (create, invite, join, kick, policy parts, tags…) per key: bursts of 60, then 1 a second. */
export const DEFAULT_NETWORK_WRITE_RATE: Rate = { perSec: 1, burst: 60 };

/** Per-server fleet state: the server key (tickets), policy uploads in progress, write limiter. */
export class NetworkState {
  readonly identity: Identity;
  readonly limits: typeof NETWORK_LIMITS;
  readonly writes: KeyedLimiter;
  /** "net:adminKey" -> policy parts received so far. */
  readonly assemblies = new Map<string, { parts: number; chunks: string[]; bytes: number; expires: number }>();

  /** When the ephemeral members were last swept, and whether a sweep is running. */
  lastSweep = 0;
  sweeping = false;

  constructor(identity: Identity, limits: Partial<typeof NETWORK_LIMITS> = {}, writeRate: Rate = DEFAULT_NETWORK_WRITE_RATE) {
    this.identity = identity;
    this.limits = { ...NETWORK_LIMITS, ...limits };
    this.writes = new KeyedLimiter(writeRate);
  }

  prune(now: number): void {
    this.writes.prune(now);
    for (const [k, a] of this.assemblies) if (a.expires <= now) this.assemblies.delete(k);
  }
}

export interface NetworkContext {
  store: RegistryStore;
  online: OnlineIndex;
  cluster?: Cluster;
  net: NetworkState;
  hooks: {
    push(to: Address, event: string, data: Record<string, unknown>): void;
    /** Membership of a node changed: cached relay decisions about it are stale. */
    nodeChanged(a: Address): void;
  };
}

/** The caller: its address, and whether it is ephemeral (undefined: not looked up). */
interface Caller {
  address: Address;
  ephemeral: boolean | undefined;
}

interface Call {
  ctx: NetworkContext;
  key: Buffer;
  me: Caller;
  now: number;
  signed: SignedStatement;
  link: Link;
}

const WRITES = new Set<NetworkMethod>([
  'network_create',
  'network_delete',
  'network_invite',
  'network_revoke_invite',
  'network_join',
  'network_leave',
  'network_kick',
  'network_policy_set',
  'set_tags',
  'clear_tags',
]);

const notRegistered = () =>
  new PilotError('NOT_REGISTERED', 'this key is not registered with the rendezvous', 'register first (the daemon does this on start)');

const noNetwork = (net: number | string) =>
  new PilotError('NOT_FOUND', `no network ${net}`, 'list your networks with pilotctl network list; the network may have been deleted');

async function network(c: Call, net: number): Promise<NetworkRecord> {
  const n = await c.ctx.store.networks.getNetwork(net);
  if (!n) throw noNetwork(net);
  return n;
}

async function adminOf(c: Call, net: number, what: string): Promise<NetworkRecord> {
  const n = await network(c, net);
  if (!n.admin.equals(c.key)) {
    throw new PilotError('PERMISSION_DENIED', `only the admin of network ${n.name} may ${what}`, 'the admin is the node key that created the network');
  }
  return n;
}

/** Members and the admin may read a network. */
async function memberOrAdmin(c: Call, net: number): Promise<NetworkRecord> {
  const n = await network(c, net);
  if (n.admin.equals(c.key)) return n;
  if (await c.ctx.store.networks.getMember(net, c.key)) return n;
  // Not a member: indistinguishable from an unknown network (no enumeration).
  throw noNetwork(net);
}

/** Was `older` a key of the node that now holds `current` (the store retired it in a key rotation)? */
async function sameNodeRotated(c: Call, older: Buffer, current: Buffer): Promise<boolean> {
  const was = await c.ctx.store.retiredKey(older);
  const now = was ? await c.ctx.store.getByKey(current) : undefined;
  return was !== undefined && now !== undefined && was.network === now.address.network && was.node === now.address.node;
}

async function audit(c: Call, net: number, action: string, detail: Record<string, unknown>): Promise<void> {
  await c.ctx.store.networks.appendAudit(
    { net, ts: c.now, actor: c.me.address, action, detail: JSON.stringify(detail), stmt: c.signed.text, sig: c.signed.sig },
    c.ctx.net.limits.auditPerNetwork,
  );
}

/** Is each node online here or at another instance? The ones not heard here are looked up at the others in one query. */
async function onlineAnywhere(c: Call, as: Address[]): Promise<boolean[]> {
  const here = as.map((a) => {
    const e = c.ctx.online.getByAddress(a);
    return e !== undefined && isOnline(e, c.now);
  });
  const elsewhere =
    c.ctx.cluster && here.includes(false)
      ? await c.ctx.cluster.locateMany(
          as.filter((_, i) => !here[i]),
          c.now,
        )
      : undefined;
  return as.map((a, i) => here[i]! || (elsewhere?.has(addressKey(a)) ?? false));
}

/** Pushes to every member of a network but the caller (online ones get it; best effort, never throws). */
async function pushMembers(c: Call, net: number, event: string, data: Record<string, unknown>, also: Address[] = []): Promise<void> {
  const members = await c.ctx.store.networks.listMembers(net);
  const seen = new Set<string>([formatAddress(c.me.address)]);
  for (const a of [...members.map((m) => m.address), ...also]) {
    const k = formatAddress(a);
    if (seen.has(k)) continue;
    seen.add(k);
    const e = c.ctx.online.getByAddress(a);
    // Offline here and no cluster to ask: nobody to tell.
    if ((!e || !isOnline(e, c.now)) && !c.ctx.cluster) continue;
    c.ctx.hooks.push(a, event, data);
  }
}

/** Items from `offset` while the page fits the budget (at least one). */
function page<T>(items: T[], offset: number, budget: number): { taken: T[]; more: boolean } {
  const taken: T[] = [];
  let used = 0;
  let i = offset;
  for (; i < items.length; i++) {
    const cost = envelopeCost(items[i]) + 1;
    if (used + cost > budget && taken.length > 0) break;
    taken.push(items[i] as T);
    used += cost;
  }
  return { taken, more: i < items.length };
}

/** The longest prefix of `text` from `offset` (in UTF-16 units, never splitting a pair) whose entry still fits `budget`. */
function chunk(text: string, offset: number, budget: number, entry: (t: string) => unknown): string {
  let lo = 0;
  let hi = Math.min(text.length - offset, 4096);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (envelopeCost(entry(text.slice(offset, offset + mid))) <= budget) lo = mid;
    else hi = mid - 1;
  }
  // Do not end between the halves of a surrogate pair.
  const last = text.charCodeAt(offset + lo - 1);
  if (lo > 0 && last >= 0xd800 && last <= 0xdbff) lo--;
  return text.slice(offset, offset + lo);
}

function b64(s: string): Buffer {
  return Buffer.from(s, 'base64');
}

function checkName(name: string): string {
  try {
    return normalizeHostname(name);
  } catch {
    throw new PilotError(
      'BAD_ARGUMENT',
      `invalid network name ${JSON.stringify(name)}`,
      'a network name is 1-63 characters a-z, 0-9 and "-" (like a hostname label), e.g. build-farm',
    );
  }
}

// biome-ignore lint/suspicious/noExplicitAny: params were checked against the method's valibot schema before dispatch.
type Handler = (c: Call, p: any) => Promise<Record<string, unknown>>;

const handlers: Record<NetworkMethod, Handler> = {
  async network_create(c, p) {
    const name = checkName(p.name);
    const n = await c.ctx.store.networks.createNetwork({ name, admin: c.key, now: c.now, maxPerAdmin: c.ctx.net.limits.networksPerAdmin });
    await audit(c, n.id, 'create', { name });
    return { net: n.id, name: n.name, admin: n.admin.toString('base64') };
  },

  async network_delete(c, p) {
    const n = await adminOf(c, p.net, 'delete it');
    const members = await c.ctx.store.networks.listMembers(n.id);
    await pushMembers(c, n.id, 'network_deleted', { net: n.id, name: n.name });
    await c.ctx.store.networks.deleteNetwork(n.id);
    for (const m of members) c.ctx.hooks.nodeChanged(m.address);
    return { net: n.id, deleted: true };
  },

  async network_list(c, p) {
    // One query (networks, the caller's tags in each, member counts): daemons ask after each join.
    const all = (await c.ctx.store.networks.networksOfWithMembership(c.key)).map(({ network: n, tags, members }) => ({
      net: n.id,
      name: n.name,
      admin: n.admin.equals(c.key),
      adminKey: n.admin.toString('base64'),
      tags: tags ?? [],
      members,
    }));
    const pg = page(all, p.offset ?? 0, RESULT_BUDGET - 30);
    return { networks: pg.taken, more: pg.more };
  },

  async network_members(c, p) {
    const n = await memberOrAdmin(c, p.net);
    const members = await c.ctx.store.networks.listMembers(n.id);
    const offset = p.offset ?? 0;
    // Only the page is looked up (hostname, presence): a page holds a handful of members.
    const window = members.slice(offset, offset + 16);
    const [about, online] = await Promise.all([
      c.ctx.store.networks.describeNodes(window.map((m) => m.key)),
      onlineAnywhere(
        c,
        window.map((m) => m.address),
      ),
    ]);
    const items = window.map((m, j) => ({
      address: formatAddress(m.address),
      hostname: about[j]!.hostname,
      tags: m.tags,
      online: online[j]!,
      ephemeral: m.ephemeral,
    }));
    const pg = page(items, 0, RESULT_BUDGET - 50);
    return { members: pg.taken, total: members.length, more: offset + pg.taken.length < members.length };
  },

  async network_invite(c, p) {
    const cert = b64(p.cert);
    const certSig = b64(p.certSig);
    const inv = decodeCert(cert);
    const n = await adminOf(c, inv.net, 'invite to it');
    if (!inv.admin.equals(n.admin) || !verifyCertSig(cert, certSig, n.admin)) {
      throw new PilotError('BAD_SIGNATURE', 'the invite certificate is not signed by this network admin key', 'make invites with pilotctl network invite');
    }
    if (inv.exp !== 0 && inv.exp * 1000 <= c.now) throw new PilotError('BAD_ARGUMENT', 'the invite has already expired', 'give it a later expiry');
    const inviteId = inv.inviteId.toString('hex');
    const existing = await c.ctx.store.networks.getInvite(n.id, inv.inviteId);
    if (existing) {
      // The same certificate again (a request re-signed after a cookie reply or a timeout): already done.
      if (existing.cert.equals(cert)) return { inviteId, net: n.id };
      throw new PilotError('BAD_ARGUMENT', `invite id ${inviteId} is already taken`, 'make a new invite (ids are random)');
    }
    await c.ctx.store.networks.putInvite(
      {
        net: n.id,
        id: inv.inviteId,
        cert,
        certSig,
        uses: inv.uses,
        used: 0,
        exp: inv.exp,
        iat: inv.iat,
        revoked: false,
        ephemeral: inv.ephemeral,
        tags: inv.tags,
        created: c.now,
      },
      { maxLive: c.ctx.net.limits.liveInvitesPerNetwork, now: c.now },
    );
    await audit(c, n.id, 'invite', { inviteId, tags: inv.tags, uses: inv.uses, exp: inv.exp, ephemeral: inv.ephemeral });
    return { inviteId, net: n.id };
  },

  async network_invites(c, p) {
    const n = await adminOf(c, p.net, 'list its invites');
    const all = (await c.ctx.store.networks.listInvites(n.id)).map((i) => ({
      inviteId: i.id.toString('hex'),
      tags: i.tags,
      uses: i.uses,
      used: i.used,
      exp: i.exp,
      ephemeral: i.ephemeral,
      revoked: i.revoked,
    }));
    const pg = page(all, p.offset ?? 0, RESULT_BUDGET - 30);
    return { invites: pg.taken, more: pg.more };
  },

  async network_revoke_invite(c, p) {
    const n = await adminOf(c, p.net, 'revoke its invites');
    const id = Buffer.from(p.inviteId, 'hex');
    if (!(await c.ctx.store.networks.getInvite(n.id, id)))
      throw new PilotError('NOT_FOUND', `no invite ${p.inviteId} in network ${n.name}`, 'list invites with pilotctl network invites');
    // Revoking twice is fine (idempotent); members who joined with it stay (as with Tailscale auth keys).
    if (await c.ctx.store.networks.revokeInvite(n.id, id)) await audit(c, n.id, 'revoke_invite', { inviteId: p.inviteId });
    return { inviteId: p.inviteId, revoked: true };
  },

  async network_join(c, p) {
    const cred = { cert: b64(p.cert), certSig: b64(p.certSig), binding: b64(p.binding), bindingSig: b64(p.bindingSig) };
    let inv: ReturnType<typeof decodeCert>;
    try {
      inv = decodeCert(cred.cert);
    } catch (err) {
      throw new PilotError('BAD_ARGUMENT', `not a valid invite: ${(err as Error).message}`, 'use the token exactly as pilotctl network invite printed it');
    }
    const n = await c.ctx.store.networks.getNetwork(inv.net);
    if (!n) throw noNetwork(inv.net);
    const forged = (why: string) =>
      new PilotError('BAD_SIGNATURE', `join refused: ${why}`, 'the token is forged or damaged; ask the network admin for a new invite');
    // An invite made before the admin rotated its key (issue 18): its old key is retired for the admin's address.
    const adminRotated = !inv.admin.equals(n.admin) && (await sameNodeRotated(c, inv.admin, n.admin));
    if (!inv.admin.equals(n.admin) && !adminRotated) throw forged(`the invite is not signed by the admin of network ${n.name}`);
    const v = verifyCredential(cred, {
      adminKey: n.admin,
      net: n.id,
      nodeKey: c.key,
      now: c.now,
      linked: (older, current) => adminRotated && older.equals(inv.admin) && current.equals(n.admin),
    });
    if (!v.ok) throw forged(v.reason);
    const age = c.now - v.binding.ts * 1000;
    if (age > c.ctx.net.limits.bindingPastMs || -age > c.ctx.net.limits.bindingFutureMs + 1000) {
      throw new PilotError('STALE_REQUEST', 'the join binding is not fresh', 'sign the binding just before joining (check the system clock)');
    }
    const member: MemberRecord = {
      net: n.id,
      address: c.me.address,
      key: c.key,
      tags: v.tags,
      ephemeral: v.ephemeral,
      joined: c.now,
      inviteId: inv.inviteId,
      ...cred,
    };
    // One store call (one round trip on a shared database): the registered invite, a kick, the use,
    // the member; an ephemeral invite makes the node ephemeral too (Tailscale's ephemeral auth keys:
    // removed on a clean stop or after a silence, src/rendezvous/lifecycle.ts); and the audit entry.
    const detail = { node: formatAddress(c.me.address), inviteId: v.inviteId, tags: v.tags, ephemeral: v.ephemeral };
    const r = await c.ctx.store.networks.join(member, {
      now: c.now,
      maxMembers: c.ctx.net.limits.membersPerNetwork,
      markNodeEphemeral: v.ephemeral && c.me.ephemeral !== true,
      audit: {
        entry: { net: n.id, ts: c.now, actor: c.me.address, action: 'join', detail: JSON.stringify(detail), stmt: c.signed.text, sig: c.signed.sig },
        keep: c.ctx.net.limits.auditPerNetwork,
      },
    });
    if (!r.ok) {
      switch (r.why) {
        case 'unknown':
          throw new PilotError(
            'NOT_FOUND',
            'this invite is not registered with the rendezvous',
            'the admin creates invites with pilotctl network invite (it registers them)',
          );
        case 'forged':
          throw forged('the certificate differs from the registered invite');
        case 'kicked':
          throw new PilotError('PERMISSION_DENIED', `this node was kicked from network ${n.name}`, 'the admin must invite it again with a new invite');
        case 'revoked':
          throw new PilotError('PERMISSION_DENIED', 'this invite was revoked', 'ask the network admin for a new invite');
        case 'expired':
          throw new PilotError('BAD_ARGUMENT', 'token expired', 'ask the network admin for a new invite');
        case 'used-up':
          throw new PilotError(
            'QUOTA_EXCEEDED',
            'this invite is used up',
            `it allowed ${r.uses} join${r.uses === 1 ? '' : 's'}; ask the network admin for a new invite`,
          );
        case 'full':
          throw new PilotError('QUOTA_EXCEEDED', `network ${n.name} is full`, `at most ${c.ctx.net.limits.membersPerNetwork} members`);
      }
    }
    // No push to the other members: a join would cost one signed push per member (a fleet of N
    // joining, N^2). A member learns of another when it resolves it (dialing it, or checking
    // the key it called with): the answer names the networks they share (registry-handlers.ts).
    if (!r.already) c.ctx.hooks.nodeChanged(c.me.address);
    return { net: n.id, name: n.name, address: formatAddress(c.me.address), tags: v.tags, adminKey: n.admin.toString('base64'), ephemeral: v.ephemeral };
  },

  async network_leave(c, p) {
    const n = await network(c, p.net);
    if (!(await c.ctx.store.networks.removeMember(n.id, c.key)))
      throw new PilotError('NOT_FOUND', `this node is not a member of network ${n.name}`, 'list your networks with pilotctl network list');
    await audit(c, n.id, 'leave', { node: formatAddress(c.me.address) });
    // No push to every member (N per leave; churn of ephemeral agents made that N^2): the leaver's
    // proofs lapse with its ticket (TICKET_LIFETIME_S, 5 min) at peers that hold them. Kicks are pushed.
    c.ctx.hooks.nodeChanged(c.me.address);
    return { net: n.id, left: true };
  },

  async network_kick(c, p) {
    const n = await adminOf(c, p.net, 'kick members');
    const addr = parseAddress(p.node);
    // A member is named by its node id on any network (N:… or 0:…): the registry address is 0:….
    const target = await c.ctx.store.getByAddress({ network: 0, node: addr.node });
    const m = target ? await c.ctx.store.networks.getMember(n.id, target.publicKey) : undefined;
    if (!target || !m) throw new PilotError('NOT_FOUND', `${p.node} is not a member of network ${n.name}`, 'list members with pilotctl network members');
    await c.ctx.store.networks.removeMember(n.id, target.publicKey);
    // The admin's signed request is the kick statement: peers can check it without us.
    await c.ctx.store.networks.putKick(
      { net: n.id, address: target.address, key: target.publicKey, stmt: c.signed.text, sig: c.signed.sig, ts: c.now },
      c.ctx.net.limits.kicksPerNetwork,
    );
    const node = formatAddress(target.address);
    await audit(c, n.id, 'kick', { node });
    c.ctx.hooks.nodeChanged(target.address);
    const full = { net: n.id, node, ts: c.now, stmt: c.signed.text, sig: c.signed.sig.toString('base64') };
    const data = envelopeCost(full) <= PUSH_BUDGET - 60 ? full : { net: n.id, node, ts: c.now };
    await pushMembers(c, n.id, 'network_member_kicked', data, [target.address]);
    return { net: n.id, node, kicked: true };
  },

  async network_kicks(c, p) {
    const n = await memberOrAdmin(c, p.net);
    const all = (await c.ctx.store.networks.listKicks(n.id)).map((k) => ({
      node: formatAddress(k.address),
      ts: k.ts,
      stmt: k.stmt,
      sig: k.sig.toString('base64'),
    }));
    const pg = page(all, p.offset ?? 0, RESULT_BUDGET - 30);
    return { kicks: pg.taken, more: pg.more };
  },

  async network_tickets(c, p) {
    const nets = await c.ctx.store.networks.networksOf(c.key);
    const mine: { net: number; ticket: string; sig: string; exp: number }[] = [];
    for (const n of nets) {
      if (!(await c.ctx.store.networks.getMember(n.id, c.key))) continue;
      const t = signTicket(c.ctx.net.identity, { net: n.id, node: c.key, now: c.now, lifetimeS: c.ctx.net.limits.ticketLifetimeS });
      mine.push({ net: n.id, ticket: t.ticket.toString('base64'), sig: t.sig.toString('base64'), exp: t.exp });
    }
    const pg = page(mine, p.offset ?? 0, RESULT_BUDGET - 30);
    return { tickets: pg.taken, more: pg.more };
  },

  async network_policy_set(c, p) {
    const n = await adminOf(c, p.net, 'set its policy');
    const st = c.ctx.net;
    const k = `${n.id}:${c.key.toString('base64')}`;
    if (p.part >= p.parts) throw new PilotError('BAD_ARGUMENT', `part ${p.part} of ${p.parts}`, 'parts are numbered from 0');
    let a = st.assemblies.get(k);
    if (p.part === 0) {
      if (!a && st.assemblies.size >= st.limits.policyAssemblies) {
        st.prune(c.now);
        if (st.assemblies.size >= st.limits.policyAssemblies) throw new PilotError('RATE_LIMITED', 'too many policy uploads in progress', 'retry in a minute');
      }
      a = { parts: p.parts, chunks: [], bytes: 0, expires: c.now + st.limits.policyAssemblyMs };
      st.assemblies.set(k, a);
    }
    if (!a || a.expires <= c.now || a.parts !== p.parts || a.chunks.length !== p.part) {
      st.assemblies.delete(k);
      throw new PilotError(
        'BAD_ARGUMENT',
        `policy part ${p.part} of ${p.parts} out of order`,
        'send the parts in order, starting from part 0, within a minute',
      );
    }
    a.bytes += Buffer.byteLength(p.text, 'utf8');
    if (a.bytes > POLICY_MAX_BYTES) {
      st.assemblies.delete(k);
      throw new PilotError('BAD_ARGUMENT', `the policy is larger than ${POLICY_MAX_BYTES} bytes (16 KiB)`, 'split it into fewer, wider rules (tags)');
    }
    a.chunks.push(p.text);
    if (p.part < p.parts - 1) {
      if (p.sig !== undefined) throw new PilotError('BAD_ARGUMENT', 'only the last policy part carries the signature');
      return { net: n.id, received: a.chunks.length, parts: a.parts, done: false };
    }
    st.assemblies.delete(k);
    const text = a.chunks.join('');
    if (p.sig === undefined || p.version === undefined) {
      throw new PilotError(
        'BAD_ARGUMENT',
        'the last policy part must carry the admin signature and its version',
        'sign the whole text (membership.ts signPolicy)',
      );
    }
    const sig = b64(p.sig);
    if (!verifyPolicy(n.id, text, sig, n.admin, p.version)) {
      throw new PilotError(
        'BAD_SIGNATURE',
        'the policy signature does not verify under the network admin key',
        'sign the exact text and version with the admin key',
      );
    }
    parsePolicy(text, 'policy.json'); // BAD_ARGUMENT with line:column and field
    const current = await c.ctx.store.networks.getPolicy(n.id);
    if (current && p.version <= current.updated) {
      throw new PilotError(
        'BAD_ARGUMENT',
        `policy version ${p.version} is not newer than the current one (${current.updated})`,
        'sign with a later version (the time in ms)',
      );
    }
    await c.ctx.store.networks.setPolicy({ net: n.id, text, sig, updated: p.version });
    await audit(c, n.id, 'policy_set', { bytes: Buffer.byteLength(text, 'utf8'), version: p.version });
    await pushMembers(c, n.id, 'network_policy_changed', { net: n.id, updated: p.version });
    return { net: n.id, received: a.chunks.length, parts: a.parts, done: true };
  },

  async network_policy_get(c, p) {
    const n = await memberOrAdmin(c, p.net);
    const pol = await c.ctx.store.networks.getPolicy(n.id);
    if (!pol) return { net: n.id, text: '', offset: 0, total: 0, sig: null, updated: 0, more: false };
    const offset = Math.min(p.offset ?? 0, pol.text.length);
    const sig = pol.sig.toString('base64');
    const base = { net: n.id, offset, total: pol.text.length, sig, updated: pol.updated, more: false };
    const text = chunk(pol.text, offset, RESULT_BUDGET, (t) => ({ ...base, text: t }));
    return { ...base, text, more: offset + text.length < pol.text.length };
  },

  async network_audit(c, p) {
    const n = await memberOrAdmin(c, p.net);
    const entries = (await c.ctx.store.networks.listAudit(n.id, p.after ?? 0, 16)).map((e) => ({
      seq: e.seq,
      ts: e.ts,
      actor: formatAddress(e.actor),
      action: e.action,
      detail: JSON.parse(e.detail) as Record<string, unknown>,
    }));
    const pg = page(entries, 0, RESULT_BUDGET - 30);
    const more = pg.more || (entries.length === 16 && (await c.ctx.store.networks.listAudit(n.id, entries[15]!.seq, 1)).length > 0);
    return { entries: pg.taken, more };
  },

  async network_audit_stmt(c, p) {
    const n = await memberOrAdmin(c, p.net);
    const e = await c.ctx.store.networks.getAudit(n.id, p.seq);
    if (!e) throw new PilotError('NOT_FOUND', `no audit entry ${p.seq} in network ${n.name}`, 'entries older than the newest 10,000 are dropped');
    const offset = Math.min(p.offset ?? 0, e.stmt.length);
    const base = { seq: e.seq, offset, total: e.stmt.length, sig: e.sig.toString('base64'), more: false };
    const text = chunk(e.stmt, offset, RESULT_BUDGET, (t) => ({ ...base, text: t }));
    return { ...base, text, more: offset + text.length < e.stmt.length };
  },

  async set_tags(c, p) {
    const tags = validateTags(p.tags);
    await c.ctx.store.networks.setSelfTags(c.key, tags);
    return { tags };
  },

  async clear_tags(c) {
    await c.ctx.store.networks.setSelfTags(c.key, []);
    return { tags: [] };
  },

  async find(c, p) {
    const tag = validateTag(p.tag);
    const offset = p.offset ?? 0;
    type Found = { address: string; hostname: string | null; tags: string[]; selfTags: string[]; online: boolean };
    type Candidate = { address: Address; key: Buffer; tags: string[]; about?: NodeSummary };
    const WINDOW = 16;
    /** The candidates from `start`, at most WINDOW, and whether more follow. */
    let windowAt: (start: number) => Promise<{ window: Candidate[]; more: boolean }>;
    if (p.net !== undefined) {
      // A network's members: each window is one store query that also says whether the caller may
      // read the network and brings the window's hostnames and self tags (one round trip, not four).
      const n = await network(c, p.net);
      const admin = n.admin.equals(c.key);
      windowAt = async (start) => {
        const pg = await c.ctx.store.networks.findPage(n.id, tag, { caller: c.key, offset: start, limit: WINDOW + 1 });
        // Not a member: indistinguishable from an unknown network (no enumeration).
        if (!admin && !pg.callerIsMember) throw noNetwork(n.id);
        const window = pg.found.slice(0, WINDOW).map((f) => ({ address: f.member.address, key: f.member.key, tags: f.member.tags, about: f.about }));
        return { window, more: pg.found.length > WINDOW };
      };
    } else {
      const candidates: Candidate[] = [];
      for (const k of await c.ctx.store.networks.findSelfTag(tag, c.ctx.net.limits.findPublicMax)) {
        const r = await c.ctx.store.getByKey(k);
        if (r?.active && r.public) candidates.push({ address: r.address, key: k, tags: [] });
      }
      windowAt = async (start) => ({ window: candidates.slice(start, start + WINDOW), more: start + WINDOW < candidates.length });
    }
    // Presence is looked up for a window at a time (one lookup at the other instances each, not one
    // per candidate); with `online` the window slides until it fills a page.
    const picked: { m: Candidate; online: boolean; at: number }[] = [];
    let i = offset;
    let rest: boolean;
    for (;;) {
      const start = i;
      const { window, more } = await windowAt(start);
      const online = await onlineAnywhere(
        c,
        window.map((m) => m.address),
      );
      for (let j = 0; j < window.length && picked.length < WINDOW; j++, i++) {
        if (p.online === true && !online[j]) continue;
        picked.push({ m: window[j]!, online: online[j]!, at: i });
      }
      rest = i < start + window.length || more; // candidates remain at i and after
      if (picked.length >= WINDOW || !more) break;
    }
    // Public nodes: their hostnames and self tags in one store query for the page (not two per node).
    const bare = picked.filter((x) => x.m.about === undefined);
    const about = bare.length > 0 ? await c.ctx.store.networks.describeNodes(bare.map((x) => x.m.key)) : [];
    for (const [j, x] of bare.entries()) x.m.about = about[j]!;
    const out: Found[] = [];
    let used = 0;
    let cut = false;
    for (const x of picked) {
      const about = x.m.about!;
      const item = { address: formatAddress(x.m.address), hostname: about.hostname, tags: x.m.tags, selfTags: about.selfTags, online: x.online };
      const cost = envelopeCost(item) + 1;
      if (used + cost > RESULT_BUDGET - 60 && out.length > 0) {
        i = x.at;
        cut = true;
        break;
      }
      out.push(item);
      used += cost;
    }
    // `next` = where to continue (skipped offline nodes are not counted twice).
    return { nodes: out, more: cut || rest, next: i };
  },
};

/** Runs a fleet method (already past the envelope checks); `stmt.method` is one of NETWORK_METHODS. */
export async function runNetworkMethod(
  ctx: NetworkContext,
  stmt: Statement,
  link: Link,
  now: number,
  signed: SignedStatement,
  known?: NodeRecord | null,
): Promise<Record<string, unknown>> {
  const method = stmt.method;
  if (!isNetworkMethod(method)) throw new PilotError('BAD_REQUEST', `unknown method ${JSON.stringify(method)}`);
  const params = parseNetworkParams(method, stmt.params);
  const key = Buffer.from(stmt.key, 'base64');
  // Each statement is a round trip to a shared database, and a fleet's agents call these all day.
  // A caller heard here within the online window is registered and active (deregister, a removal, a
  // key rotation and a clean stop take it out of the index): its address is the index's. Else the
  // service's lookup (an offline caller), or ours.
  const entry = ctx.online.getByKey(stmt.key);
  let me: Caller | undefined;
  if (entry && isOnline(entry, now)) me = { address: entry.address, ephemeral: undefined };
  else {
    const rec = known === undefined ? await ctx.store.getByKey(key) : (known ?? undefined);
    if (rec?.active) me = { address: rec.address, ephemeral: rec.ephemeral };
  }
  if (!me) throw notRegistered();
  if (WRITES.has(method)) {
    const k = stmt.key;
    if (!ctx.net.writes.take(k, 1, now)) {
      const wait = Math.max(1, Math.ceil(ctx.net.writes.waitMs(k, 1, now) / 1000));
      throw new PilotError('RATE_LIMITED', 'too many network changes from this node', `wait ${wait} s`);
    }
  }
  return handlers[method]({ ctx, key, me, now, signed, link }, params);
}

/**
 * Removes one membership the node did not ask to end (sweep, deregister). Not pushed to the other
 * members (see network_leave): its proofs lapse with its ticket; its tickets are no longer issued.
 */
async function dropMember(ctx: NetworkContext, m: MemberRecord): Promise<boolean> {
  if (!(await ctx.store.networks.removeMember(m.net, m.key))) return false; // another instance was first
  ctx.hooks.nodeChanged(m.address);
  return true;
}

/**
 * Ephemeral members (joined with an ephemeral invite) leave their networks when they
 * deregister (a clean stop), so their slots and tags do not outlive them.
 */
export async function dropEphemeralMemberships(ctx: NetworkContext, key: Buffer, _now: number): Promise<number> {
  let n = 0;
  for (const m of await ctx.store.networks.membershipsOf(key)) if (m.ephemeral && (await dropMember(ctx, m))) n++;
  return n;
}

/**
 * ... and when they have been silent for ephemeralSilenceMs (a crash, a killed container).
 * Called from the server's sweeper; runs at most every ephemeralSweepMs, one at a time.
 * Presence: heard here within the window, or online at another instance.
 */
export async function sweepEphemeral(ctx: NetworkContext, now: number): Promise<number> {
  const st = ctx.net;
  if (st.sweeping || now - st.lastSweep < st.limits.ephemeralSweepMs) return 0;
  st.sweeping = true;
  st.lastSweep = now;
  try {
    let n = 0;
    for (const m of await ctx.store.networks.listEphemeralMembers(1000)) {
      if (now - m.joined < st.limits.ephemeralSilenceMs) continue;
      const e = ctx.online.getByAddress(m.address);
      if (e && now - e.lastSeen < st.limits.ephemeralSilenceMs) continue;
      if (ctx.cluster && (await ctx.cluster.locate(m.address, now))) continue;
      if (await dropMember(ctx, m)) n++;
    }
    return n;
  } finally {
    st.sweeping = false;
  }
}
