// PostgreSQL half of the fleet store (network-store.ts). Several rendezvous instances
// write at once, so each read-modify-write holds an advisory lock on what it counts: the
// network (joins, invites, audit) or the admin key (quota). Two joins at two instances
// therefore cannot both take the last use of an invite. The hot ones (join, audit append)
// are server-side functions, one round trip each, so the lock is never held across the network.
import type pg from 'pg';
import { addressKey, type Address } from '../../wire/address.ts';
import { inTransaction, type Migration } from './postgres-connect.ts';
import {
  deadInvitesKept,
  inviteLive,
  NETWORK_ID_MAX,
  networkNameTaken,
  noNetworkIds,
  parseTagsColumn,
  tagsColumn,
  tooManyInvites,
  tooManyNetworks,
  auditRow,
  buf,
  inviteRow,
  kickRow,
  memberRow,
  netRow,
  num,
  type Row,
  type AuditEntry,
  type FoundPage,
  type InviteRecord,
  type JoinOptions,
  type JoinRefusal,
  type KickRecord,
  type MemberRecord,
  type NetworkRecord,
  type NetworkStore,
  type NodeSummary,
  type PolicyRecord,
} from './network-store.ts';

/** Append-only, like the registry's (applied by PostgresStore.open). */
export const NETWORK_MIGRATIONS: Migration[] = [
  {
    id: 'networks-1',
    sql: `
CREATE TABLE IF NOT EXISTS registry_net_alloc (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  next_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_networks (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL CONSTRAINT registry_networks_name_unique UNIQUE,
  admin BYTEA NOT NULL,
  created BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS registry_networks_admin ON registry_networks (admin);
CREATE TABLE IF NOT EXISTS registry_net_invites (
  net INTEGER NOT NULL,
  id BYTEA NOT NULL,
  cert BYTEA NOT NULL,
  cert_sig BYTEA NOT NULL,
  uses BIGINT NOT NULL,
  used BIGINT NOT NULL DEFAULT 0,
  exp BIGINT NOT NULL,
  iat BIGINT NOT NULL,
  revoked BOOLEAN NOT NULL DEFAULT false,
  ephemeral BOOLEAN NOT NULL,
  tags TEXT NOT NULL,
  created BIGINT NOT NULL,
  PRIMARY KEY (net, id)
);
CREATE TABLE IF NOT EXISTS registry_net_members (
  net INTEGER NOT NULL,
  key BYTEA NOT NULL,
  address BIGINT NOT NULL,
  tags TEXT NOT NULL,
  ephemeral BOOLEAN NOT NULL,
  joined BIGINT NOT NULL,
  invite_id BYTEA NOT NULL,
  cert BYTEA NOT NULL,
  cert_sig BYTEA NOT NULL,
  binding BYTEA NOT NULL,
  binding_sig BYTEA NOT NULL,
  PRIMARY KEY (net, key)
);
CREATE INDEX IF NOT EXISTS registry_net_members_key ON registry_net_members (key);
CREATE INDEX IF NOT EXISTS registry_net_members_address ON registry_net_members (address);
CREATE INDEX IF NOT EXISTS registry_net_members_ephemeral ON registry_net_members (joined) WHERE ephemeral;
CREATE TABLE IF NOT EXISTS registry_net_kicks (
  net INTEGER NOT NULL,
  key BYTEA NOT NULL,
  address BIGINT NOT NULL,
  stmt TEXT NOT NULL,
  sig BYTEA NOT NULL,
  ts BIGINT NOT NULL,
  PRIMARY KEY (net, key)
);
CREATE TABLE IF NOT EXISTS registry_net_policy (
  net INTEGER PRIMARY KEY,
  text TEXT NOT NULL,
  sig BYTEA NOT NULL,
  updated BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_net_audit (
  net INTEGER NOT NULL,
  seq BIGINT NOT NULL,
  ts BIGINT NOT NULL,
  actor BIGINT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL,
  stmt TEXT NOT NULL,
  sig BYTEA NOT NULL,
  PRIMARY KEY (net, seq)
);
CREATE TABLE IF NOT EXISTS registry_node_tags (
  key BYTEA NOT NULL,
  tag TEXT NOT NULL,
  PRIMARY KEY (key, tag)
);
CREATE INDEX IF NOT EXISTS registry_node_tags_tag ON registry_node_tags (tag, key);
`,
  },
  {
    // A join and an audit append as one server-side call each (one round trip, no BEGIN/COMMIT
    // from the client): the network's lock is held for the function's few microseconds, not for
    // seven client round trips. Same lock names as the client-side transactions of this file
    // (hashtext of 'pilot-net:<id>' / 'pilot-net-audit:<id>'), so both kinds exclude each other.
    id: 'networks-2-functions',
    sql: `
CREATE OR REPLACE FUNCTION pilot_net_join(p_net INTEGER, p_key BYTEA, p_address BIGINT, p_tags TEXT, p_ephemeral BOOLEAN, p_joined BIGINT,
  p_invite BYTEA, p_cert BYTEA, p_cert_sig BYTEA, p_binding BYTEA, p_binding_sig BYTEA, p_now_s BIGINT, p_max BIGINT)
RETURNS TABLE (why TEXT, already BOOLEAN, joined BIGINT) LANGUAGE plpgsql AS $$
DECLARE
  inv registry_net_invites%ROWTYPE;
  was BOOLEAN;
  j BIGINT;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('pilot-net:' || p_net));
  SELECT * INTO inv FROM registry_net_invites i WHERE i.net = p_net AND i.id = p_invite;
  IF NOT FOUND THEN RETURN QUERY SELECT 'unknown'::TEXT, false, 0::BIGINT; RETURN; END IF;
  IF inv.revoked THEN RETURN QUERY SELECT 'revoked'::TEXT, false, 0::BIGINT; RETURN; END IF;
  IF inv.exp <> 0 AND p_now_s >= inv.exp THEN RETURN QUERY SELECT 'expired'::TEXT, false, 0::BIGINT; RETURN; END IF;
  was := EXISTS (SELECT 1 FROM registry_net_members m WHERE m.net = p_net AND m.key = p_key);
  IF NOT was THEN
    IF inv.uses <> 0 AND inv.used >= inv.uses THEN RETURN QUERY SELECT 'used-up'::TEXT, false, 0::BIGINT; RETURN; END IF;
    IF (SELECT COUNT(*) FROM registry_net_members m WHERE m.net = p_net) >= p_max THEN
      RETURN QUERY SELECT 'full'::TEXT, false, 0::BIGINT; RETURN;
    END IF;
    UPDATE registry_net_invites i SET used = i.used + 1 WHERE i.net = p_net AND i.id = p_invite;
  END IF;
  INSERT INTO registry_net_members AS m (net, key, address, tags, ephemeral, joined, invite_id, cert, cert_sig, binding, binding_sig)
    VALUES (p_net, p_key, p_address, p_tags, p_ephemeral, p_joined, p_invite, p_cert, p_cert_sig, p_binding, p_binding_sig)
    ON CONFLICT (net, key) DO UPDATE SET address = excluded.address, tags = excluded.tags, ephemeral = excluded.ephemeral,
      invite_id = excluded.invite_id, cert = excluded.cert, cert_sig = excluded.cert_sig, binding = excluded.binding, binding_sig = excluded.binding_sig
    RETURNING m.joined INTO j;
  RETURN QUERY SELECT NULL::TEXT, was, j;
END $$;
CREATE OR REPLACE FUNCTION pilot_net_audit(p_net INTEGER, p_ts BIGINT, p_actor BIGINT, p_action TEXT, p_detail TEXT, p_stmt TEXT, p_sig BYTEA, p_keep BIGINT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE s BIGINT;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('pilot-net-audit:' || p_net));
  SELECT COALESCE(MAX(a.seq), 0) + 1 INTO s FROM registry_net_audit a WHERE a.net = p_net;
  INSERT INTO registry_net_audit (net, seq, ts, actor, action, detail, stmt, sig) VALUES (p_net, s, p_ts, p_actor, p_action, p_detail, p_stmt, p_sig);
  DELETE FROM registry_net_audit a WHERE a.net = p_net AND a.seq <= s - p_keep;
  RETURN s;
END $$;
`,
  },
  {
    // Discovery by a credential tag without reading every member of the network: the tags
    // column (',a,b,') as an array under a GIN index, queried with @> (see findMembers).
    id: 'networks-3-member-tags',
    sql: `
CREATE INDEX IF NOT EXISTS registry_net_members_tag_array ON registry_net_members USING GIN (string_to_array(btrim(tags, ','), ','));
`,
  },
  {
    // The whole join in one call (issue 18: a join was five round trips: the invite's and the
    // kick's reads, the join, the node's ephemeral mark and the audit append): the same checks
    // in the same order, under the network's lock, in one transaction. pilot_net_join stays for
    // instances of the previous version during a rolling upgrade.
    id: 'networks-4-join-all',
    sql: `
CREATE OR REPLACE FUNCTION pilot_net_join_all(p_net INTEGER, p_key BYTEA, p_address BIGINT, p_tags TEXT, p_ephemeral BOOLEAN, p_joined BIGINT,
  p_invite BYTEA, p_cert BYTEA, p_cert_sig BYTEA, p_binding BYTEA, p_binding_sig BYTEA, p_now_s BIGINT, p_max BIGINT,
  p_mark_node BOOLEAN, p_audit_ts BIGINT, p_audit_actor BIGINT, p_audit_detail TEXT, p_audit_stmt TEXT, p_audit_sig BYTEA, p_audit_keep BIGINT)
RETURNS TABLE (why TEXT, already BOOLEAN, joined BIGINT, uses BIGINT) LANGUAGE plpgsql AS $$
DECLARE
  inv registry_net_invites%ROWTYPE;
  kick_ts BIGINT;
  was BOOLEAN;
  j BIGINT;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('pilot-net:' || p_net));
  SELECT * INTO inv FROM registry_net_invites i WHERE i.net = p_net AND i.id = p_invite;
  IF NOT FOUND THEN RETURN QUERY SELECT 'unknown'::TEXT, false, 0::BIGINT, 0::BIGINT; RETURN; END IF;
  IF inv.cert <> p_cert THEN RETURN QUERY SELECT 'forged'::TEXT, false, 0::BIGINT, inv.uses::BIGINT; RETURN; END IF;
  SELECT k.ts INTO kick_ts FROM registry_net_kicks k WHERE k.net = p_net AND k.key = p_key;
  IF FOUND THEN
    IF kick_ts >= inv.iat * 1000 THEN RETURN QUERY SELECT 'kicked'::TEXT, false, 0::BIGINT, inv.uses::BIGINT; RETURN; END IF;
    DELETE FROM registry_net_kicks k WHERE k.net = p_net AND k.key = p_key;
  END IF;
  IF inv.revoked THEN RETURN QUERY SELECT 'revoked'::TEXT, false, 0::BIGINT, inv.uses::BIGINT; RETURN; END IF;
  IF inv.exp <> 0 AND p_now_s >= inv.exp THEN RETURN QUERY SELECT 'expired'::TEXT, false, 0::BIGINT, inv.uses::BIGINT; RETURN; END IF;
  was := EXISTS (SELECT 1 FROM registry_net_members m WHERE m.net = p_net AND m.key = p_key);
  IF NOT was THEN
    IF inv.uses <> 0 AND inv.used >= inv.uses THEN RETURN QUERY SELECT 'used-up'::TEXT, false, 0::BIGINT, inv.uses::BIGINT; RETURN; END IF;
    IF (SELECT COUNT(*) FROM registry_net_members m WHERE m.net = p_net) >= p_max THEN
      RETURN QUERY SELECT 'full'::TEXT, false, 0::BIGINT, inv.uses::BIGINT; RETURN;
    END IF;
    UPDATE registry_net_invites i SET used = i.used + 1 WHERE i.net = p_net AND i.id = p_invite;
  END IF;
  INSERT INTO registry_net_members AS m (net, key, address, tags, ephemeral, joined, invite_id, cert, cert_sig, binding, binding_sig)
    VALUES (p_net, p_key, p_address, p_tags, p_ephemeral, p_joined, p_invite, p_cert, p_cert_sig, p_binding, p_binding_sig)
    ON CONFLICT (net, key) DO UPDATE SET address = excluded.address, tags = excluded.tags, ephemeral = excluded.ephemeral,
      invite_id = excluded.invite_id, cert = excluded.cert, cert_sig = excluded.cert_sig, binding = excluded.binding, binding_sig = excluded.binding_sig
    RETURNING m.joined INTO j;
  IF p_mark_node THEN UPDATE registry_nodes n SET ephemeral = true WHERE n.public_key = p_key AND NOT n.ephemeral; END IF;
  IF NOT was AND p_audit_stmt IS NOT NULL THEN
    PERFORM pilot_net_audit(p_net, p_audit_ts, p_audit_actor, 'join', p_audit_detail, p_audit_stmt, p_audit_sig, p_audit_keep);
  END IF;
  RETURN QUERY SELECT NULL::TEXT, was, j, inv.uses::BIGINT;
END $$;
`,
  },
];

/** How long a network's row is reused without asking the database (see getNetwork). */
const NETWORK_CACHE_MS = 1_000;
const NETWORK_CACHE_MAX = 10_000;

export class PgNetworks implements NetworkStore {
  private readonly pool: pg.Pool;
  private readonly netCache = new Map<number, { rec: NetworkRecord; at: number }>();

  constructor(pool: pg.Pool) {
    this.pool = pool;
  }

  /** One transaction holding the cluster-wide advisory lock `lock` (released at commit). */
  private tx<T>(lock: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn, lock);
  }

  private async rows(sql: string, args: unknown[]): Promise<Row[]> {
    return (await this.pool.query(sql, args)).rows;
  }

  createNetwork(input: { name: string; admin: Buffer; now: number; maxPerAdmin: number }): Promise<NetworkRecord> {
    return this.tx('pilot-net-create', async (c) => {
      if ((await c.query('SELECT 1 FROM registry_networks WHERE name = $1', [input.name])).rowCount) throw networkNameTaken(input.name);
      const n = num((await c.query('SELECT COUNT(*) AS n FROM registry_networks WHERE admin = $1', [input.admin])).rows[0].n);
      if (n >= input.maxPerAdmin) throw tooManyNetworks(input.maxPerAdmin);
      const id = num(
        (
          await c.query(
            `INSERT INTO registry_net_alloc (id, next_id) VALUES (1, 2)
             ON CONFLICT (id) DO UPDATE SET next_id = registry_net_alloc.next_id + 1 RETURNING next_id - 1 AS id`,
          )
        ).rows[0].id,
      );
      if (id > NETWORK_ID_MAX) throw noNetworkIds();
      await c.query('INSERT INTO registry_networks (id, name, admin, created) VALUES ($1, $2, $3, $4)', [id, input.name, input.admin, input.now]);
      return { id, name: input.name, admin: buf(input.admin), created: input.now };
    });
  }

  /**
   * A network's row (id, name, admin key, created) changes only when it is deleted or its admin
   * rotates keys, and every fleet request reads it (discovery: 3 reads per join-and-leave). It is
   * kept for NETWORK_CACHE_MS; this instance's own deletes and rotations drop it at once, another
   * instance's show within that time (a deleted network's invites and members are gone at once).
   */
  async getNetwork(id: number): Promise<NetworkRecord | undefined> {
    const now = Date.now();
    const hit = this.netCache.get(id);
    if (hit && now - hit.at < NETWORK_CACHE_MS) return hit.rec;
    const r = (await this.rows('SELECT * FROM registry_networks WHERE id = $1', [id]))[0];
    const rec = r ? netRow(r) : undefined;
    if (rec) {
      if (this.netCache.size >= NETWORK_CACHE_MAX) this.netCache.clear();
      this.netCache.set(id, { rec, at: now });
    } else this.netCache.delete(id);
    return rec;
  }

  /** Drops the cached network rows (a key rotation here may have changed an admin key). */
  forgetCachedNetworks(): void {
    this.netCache.clear();
  }

  async getNetworkByName(name: string): Promise<NetworkRecord | undefined> {
    const r = (await this.rows('SELECT * FROM registry_networks WHERE name = $1', [name]))[0];
    return r ? netRow(r) : undefined;
  }

  deleteNetwork(id: number): Promise<boolean> {
    this.netCache.delete(id);
    return this.tx(`pilot-net:${id}`, async (c) => {
      for (const t of ['registry_net_invites', 'registry_net_members', 'registry_net_kicks', 'registry_net_policy', 'registry_net_audit'])
        await c.query(`DELETE FROM ${t} WHERE net = $1`, [id]);
      return ((await c.query('DELETE FROM registry_networks WHERE id = $1', [id])).rowCount ?? 0) > 0;
    });
  }

  async networksOf(key: Buffer): Promise<NetworkRecord[]> {
    return (
      await this.rows('SELECT * FROM registry_networks WHERE admin = $1 OR id IN (SELECT net FROM registry_net_members WHERE key = $1) ORDER BY id', [key])
    ).map(netRow);
  }

  async networksOfWithMembership(key: Buffer): Promise<{ network: NetworkRecord; tags: string[] | null; members: number }[]> {
    const rows = await this.rows(
      `SELECT n.*, m.tags AS my_tags, (SELECT COUNT(*) FROM registry_net_members c WHERE c.net = n.id) AS member_count
       FROM registry_networks n LEFT JOIN registry_net_members m ON m.net = n.id AND m.key = $1
       WHERE n.admin = $1 OR m.key IS NOT NULL ORDER BY n.id`,
      [key],
    );
    return rows.map((r) => ({ network: netRow(r), tags: r.my_tags === null ? null : parseTagsColumn(r.my_tags), members: num(r.member_count) }));
  }

  putInvite(inv: InviteRecord, opts: { maxLive: number; now: number }): Promise<void> {
    return this.tx(`pilot-net:${inv.net}`, async (c) => {
      const live = (await c.query('SELECT * FROM registry_net_invites WHERE net = $1', [inv.net])).rows.map(inviteRow).filter((x) => inviteLive(x, opts.now));
      if (live.length >= opts.maxLive) throw tooManyInvites(opts.maxLive);
      await c.query(
        `INSERT INTO registry_net_invites (net, id, cert, cert_sig, uses, used, exp, iat, revoked, ephemeral, tags, created)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [inv.net, inv.id, inv.cert, inv.certSig, inv.uses, inv.used, inv.exp, inv.iat, inv.revoked, inv.ephemeral, tagsColumn(inv.tags), inv.created],
      );
      await c.query(
        `DELETE FROM registry_net_invites WHERE net = $1 AND id IN (SELECT id FROM registry_net_invites WHERE net = $1
           AND (revoked OR (exp <> 0 AND exp <= $2) OR (uses <> 0 AND used >= uses)) ORDER BY created DESC, id DESC OFFSET $3)`,
        [inv.net, Math.floor(opts.now / 1000), deadInvitesKept(opts.maxLive)],
      );
    });
  }

  async getInvite(net: number, id: Buffer): Promise<InviteRecord | undefined> {
    const r = (await this.rows('SELECT * FROM registry_net_invites WHERE net = $1 AND id = $2', [net, id]))[0];
    return r ? inviteRow(r) : undefined;
  }

  async listInvites(net: number): Promise<InviteRecord[]> {
    return (await this.rows('SELECT * FROM registry_net_invites WHERE net = $1 ORDER BY created, id', [net])).map(inviteRow);
  }

  async revokeInvite(net: number, id: Buffer): Promise<boolean> {
    return ((await this.pool.query('UPDATE registry_net_invites SET revoked = true WHERE net = $1 AND id = $2 AND NOT revoked', [net, id])).rowCount ?? 0) > 0;
  }

  async join(
    m: MemberRecord,
    opts: JoinOptions,
  ): Promise<{ ok: true; member: MemberRecord; already: boolean } | { ok: false; why: JoinRefusal; uses: number }> {
    // One call (pilot_net_join_all, migration networks-4-join-all): every check, the use, the member,
    // the node's ephemeral mark and the audit entry.
    const a = opts.audit;
    const r = (
      await this.rows('SELECT * FROM pilot_net_join_all($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)', [
        m.net,
        m.key,
        addressKey(m.address),
        tagsColumn(m.tags),
        m.ephemeral,
        m.joined,
        m.inviteId,
        m.cert,
        m.certSig,
        m.binding,
        m.bindingSig,
        Math.floor(opts.now / 1000),
        opts.maxMembers,
        opts.markNodeEphemeral === true,
        a?.entry.ts ?? 0,
        a ? addressKey(a.entry.actor) : 0,
        a?.entry.detail ?? null,
        a?.entry.stmt ?? null,
        a?.entry.sig ?? null,
        a?.keep ?? 0,
      ])
    )[0]!;
    if (r.why !== null) return { ok: false, why: r.why as JoinRefusal, uses: num(r.uses) };
    // A member that joins again keeps its first join time (the upsert does not touch it).
    return { ok: true, member: { ...m, joined: num(r.joined) }, already: r.already === true };
  }

  async getMember(net: number, key: Buffer): Promise<MemberRecord | undefined> {
    const r = (await this.rows('SELECT * FROM registry_net_members WHERE net = $1 AND key = $2', [net, key]))[0];
    return r ? memberRow(r) : undefined;
  }

  async listMembers(net: number): Promise<MemberRecord[]> {
    return (await this.rows('SELECT * FROM registry_net_members WHERE net = $1 ORDER BY joined, address', [net])).map(memberRow);
  }

  async countMembers(net: number): Promise<number> {
    return num((await this.rows('SELECT COUNT(*) AS n FROM registry_net_members WHERE net = $1', [net]))[0].n);
  }

  async removeMember(net: number, key: Buffer): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM registry_net_members WHERE net = $1 AND key = $2', [net, key])).rowCount ?? 0) > 0;
  }

  async listEphemeralMembers(limit: number): Promise<MemberRecord[]> {
    return (await this.rows('SELECT * FROM registry_net_members WHERE ephemeral ORDER BY joined, net, address LIMIT $1', [limit])).map(memberRow);
  }

  async membershipsOf(key: Buffer): Promise<MemberRecord[]> {
    return (await this.rows('SELECT * FROM registry_net_members WHERE key = $1 ORDER BY net', [key])).map(memberRow);
  }

  async findPage(net: number, tag: string, opts: { caller: Buffer; offset: number; limit: number }): Promise<FoundPage> {
    // The caller's membership, the window (two indexed halves: credential tags through the GIN
    // index of networks-3, self tags through registry_node_tags_tag, not one OR that reads every
    // member of the network) and each one's hostname and self tags: one statement, not four.
    const rows = await this.rows(
      `SELECT EXISTS (SELECT 1 FROM registry_net_members c WHERE c.net = $1 AND c.key = $3) AS caller_member, f.*,
         CASE WHEN n.active THEN n.hostname END AS node_hostname,
         COALESCE((SELECT string_agg(t.tag, ',' ORDER BY t.tag) FROM registry_node_tags t WHERE t.key = f.key), '') AS self_tags
       FROM (SELECT 1) one
       LEFT JOIN LATERAL (
         SELECT * FROM registry_net_members WHERE net = $1 AND string_to_array(btrim(tags, ','), ',') @> ARRAY[$2::text]
         UNION
         SELECT m.* FROM registry_net_members m JOIN registry_node_tags s ON s.key = m.key AND s.tag = $2 WHERE m.net = $1
         ORDER BY joined, address OFFSET $4 LIMIT $5
       ) f ON true
       LEFT JOIN registry_nodes n ON n.public_key = f.key
       ORDER BY f.joined, f.address`,
      [net, tag, opts.caller, opts.offset, opts.limit],
    );
    return {
      callerIsMember: rows[0]?.caller_member === true,
      found: rows
        .filter((r) => r.net !== null)
        .map((r) => ({
          member: memberRow(r),
          about: { hostname: r.node_hostname ?? null, selfTags: r.self_tags === '' ? [] : String(r.self_tags).split(',') },
        })),
    };
  }

  async sharedMemberships(a: Buffer, b: Buffer): Promise<MemberRecord[]> {
    return (
      await this.rows('SELECT y.* FROM registry_net_members x JOIN registry_net_members y ON x.net = y.net WHERE x.key = $1 AND y.key = $2 ORDER BY y.net', [
        a,
        b,
      ])
    ).map(memberRow);
  }

  async sharesNetwork(a: Address, b: Address): Promise<boolean> {
    const r = await this.pool.query(
      'SELECT 1 FROM registry_net_members x JOIN registry_net_members y ON x.net = y.net WHERE x.address = $1 AND y.address = $2 LIMIT 1',
      [addressKey(a), addressKey(b)],
    );
    return (r.rowCount ?? 0) > 0;
  }

  putKick(k: KickRecord, max: number): Promise<void> {
    return this.tx(`pilot-net:${k.net}`, async (c) => {
      await c.query(
        `INSERT INTO registry_net_kicks (net, key, address, stmt, sig, ts) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (net, key) DO UPDATE SET address = excluded.address, stmt = excluded.stmt, sig = excluded.sig, ts = excluded.ts`,
        [k.net, k.key, addressKey(k.address), k.stmt, k.sig, k.ts],
      );
      await c.query(
        'DELETE FROM registry_net_kicks WHERE net = $1 AND key NOT IN (SELECT key FROM registry_net_kicks WHERE net = $1 ORDER BY ts DESC, key DESC LIMIT $2)',
        [k.net, max],
      );
    });
  }

  async getKick(net: number, key: Buffer): Promise<KickRecord | undefined> {
    const r = (await this.rows('SELECT * FROM registry_net_kicks WHERE net = $1 AND key = $2', [net, key]))[0];
    return r ? kickRow(r) : undefined;
  }

  async listKicks(net: number): Promise<KickRecord[]> {
    return (await this.rows('SELECT * FROM registry_net_kicks WHERE net = $1 ORDER BY ts, key', [net])).map(kickRow);
  }

  async deleteKick(net: number, key: Buffer): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM registry_net_kicks WHERE net = $1 AND key = $2', [net, key])).rowCount ?? 0) > 0;
  }

  async setPolicy(p: PolicyRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO registry_net_policy (net, text, sig, updated) VALUES ($1, $2, $3, $4)
       ON CONFLICT (net) DO UPDATE SET text = excluded.text, sig = excluded.sig, updated = excluded.updated`,
      [p.net, p.text, p.sig, p.updated],
    );
  }

  async getPolicy(net: number): Promise<PolicyRecord | undefined> {
    const r = (await this.rows('SELECT * FROM registry_net_policy WHERE net = $1', [net]))[0];
    return r ? { net: r.net, text: r.text, sig: buf(r.sig), updated: num(r.updated) } : undefined;
  }

  async appendAudit(e: Omit<AuditEntry, 'seq'>, keep: number): Promise<number> {
    // One call (pilot_net_audit): the next seq under the network's audit lock, the entry, the trim.
    const r = await this.rows('SELECT pilot_net_audit($1, $2, $3, $4, $5, $6, $7, $8) AS seq', [
      e.net,
      e.ts,
      addressKey(e.actor),
      e.action,
      e.detail,
      e.stmt,
      e.sig,
      keep,
    ]);
    return num(r[0]!.seq);
  }

  async listAudit(net: number, afterSeq: number, limit: number): Promise<AuditEntry[]> {
    return (await this.rows('SELECT * FROM registry_net_audit WHERE net = $1 AND seq > $2 ORDER BY seq LIMIT $3', [net, afterSeq, limit])).map(auditRow);
  }

  async getAudit(net: number, seq: number): Promise<AuditEntry | undefined> {
    const r = (await this.rows('SELECT * FROM registry_net_audit WHERE net = $1 AND seq = $2', [net, seq]))[0];
    return r ? auditRow(r) : undefined;
  }

  setSelfTags(key: Buffer, tags: string[]): Promise<void> {
    return this.tx(`pilot-tags:${key.toString('base64')}`, async (c) => {
      await c.query('DELETE FROM registry_node_tags WHERE key = $1', [key]);
      for (const t of tags) await c.query('INSERT INTO registry_node_tags (key, tag) VALUES ($1, $2)', [key, t]);
    });
  }

  async getSelfTags(key: Buffer): Promise<string[]> {
    return (await this.rows('SELECT tag FROM registry_node_tags WHERE key = $1 ORDER BY tag', [key])).map((r) => r.tag as string);
  }

  async findSelfTag(tag: string, limit: number): Promise<Buffer[]> {
    return (await this.rows('SELECT key FROM registry_node_tags WHERE tag = $1 ORDER BY key LIMIT $2', [tag, limit])).map((r) => buf(r.key));
  }

  async describeNodes(keys: Buffer[]): Promise<NodeSummary[]> {
    if (keys.length === 0) return [];
    const rows = await this.rows(
      `SELECT k.i, CASE WHEN n.active THEN n.hostname END AS hostname,
         COALESCE((SELECT string_agg(t.tag, ',' ORDER BY t.tag) FROM registry_node_tags t WHERE t.key = k.key), '') AS tags
       FROM unnest($1::bytea[]) WITH ORDINALITY AS k(key, i) LEFT JOIN registry_nodes n ON n.public_key = k.key
       ORDER BY k.i`,
      [keys],
    );
    return rows.map((r) => ({ hostname: r.hostname ?? null, selfTags: r.tags === '' ? [] : String(r.tags).split(',') }));
  }
}
