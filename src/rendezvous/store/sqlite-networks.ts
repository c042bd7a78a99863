// SQLite half of the fleet store (network-store.ts). Every read-modify-write runs in the
// store's group commit (sqlite-group-commit.ts): its own savepoint inside one IMMEDIATE
// transaction per event-loop turn, which takes the write lock before reading, so two processes
// on one file (or two requests) cannot both take the last use of an invite; and a burst of joins
// shares one fsync instead of blocking the event loop for one each.
import type Database from 'better-sqlite3';
import type { GroupCommit } from './sqlite-group-commit.ts';
import { addressKey, type Address } from '../../wire/address.ts';
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

export const NETWORK_SCHEMA = `
CREATE TABLE IF NOT EXISTS net_alloc (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  next_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS networks (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  admin BLOB NOT NULL,
  created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS networks_admin ON networks (admin);
CREATE TABLE IF NOT EXISTS net_invites (
  net INTEGER NOT NULL,
  id BLOB NOT NULL,
  cert BLOB NOT NULL,
  cert_sig BLOB NOT NULL,
  uses INTEGER NOT NULL,
  used INTEGER NOT NULL DEFAULT 0,
  exp INTEGER NOT NULL,
  iat INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0,
  ephemeral INTEGER NOT NULL,
  tags TEXT NOT NULL,
  created INTEGER NOT NULL,
  PRIMARY KEY (net, id)
);
CREATE TABLE IF NOT EXISTS net_members (
  net INTEGER NOT NULL,
  key BLOB NOT NULL,
  address INTEGER NOT NULL,
  tags TEXT NOT NULL,
  ephemeral INTEGER NOT NULL,
  joined INTEGER NOT NULL,
  invite_id BLOB NOT NULL,
  cert BLOB NOT NULL,
  cert_sig BLOB NOT NULL,
  binding BLOB NOT NULL,
  binding_sig BLOB NOT NULL,
  PRIMARY KEY (net, key)
);
CREATE INDEX IF NOT EXISTS net_members_key ON net_members (key);
CREATE INDEX IF NOT EXISTS net_members_address ON net_members (address);
CREATE INDEX IF NOT EXISTS net_members_ephemeral ON net_members (joined) WHERE ephemeral = 1;
CREATE TABLE IF NOT EXISTS net_kicks (
  net INTEGER NOT NULL,
  key BLOB NOT NULL,
  address INTEGER NOT NULL,
  stmt TEXT NOT NULL,
  sig BLOB NOT NULL,
  ts INTEGER NOT NULL,
  PRIMARY KEY (net, key)
);
CREATE TABLE IF NOT EXISTS net_policy (
  net INTEGER PRIMARY KEY,
  text TEXT NOT NULL,
  sig BLOB NOT NULL,
  updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS net_audit (
  net INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  actor INTEGER NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL,
  stmt TEXT NOT NULL,
  sig BLOB NOT NULL,
  PRIMARY KEY (net, seq)
);
CREATE TABLE IF NOT EXISTS node_tags (
  key BLOB NOT NULL,
  tag TEXT NOT NULL,
  PRIMARY KEY (key, tag)
);
CREATE INDEX IF NOT EXISTS node_tags_tag ON node_tags (tag, key);
`;

export class SqliteNetworks implements NetworkStore {
  /** The registry store's prepared-statement cache (one for the whole file). */
  private readonly q: (sql: string) => Database.Statement;
  private readonly group: GroupCommit;

  constructor(db: Database.Database, prepared: (sql: string) => Database.Statement, group: GroupCommit) {
    this.q = prepared;
    this.group = group;
    db.exec(NETWORK_SCHEMA);
  }

  /** `fn` in the next group commit (its own savepoint); settles once it is on disk. */
  private tx<T>(fn: () => T): Promise<T> {
    return this.group.run(fn);
  }

  async createNetwork(input: { name: string; admin: Buffer; now: number; maxPerAdmin: number }): Promise<NetworkRecord> {
    return this.tx(() => {
      if (this.q('SELECT 1 FROM networks WHERE name = ?').get(input.name)) throw networkNameTaken(input.name);
      const n = (this.q('SELECT COUNT(*) AS n FROM networks WHERE admin = ?').get(input.admin) as { n: number }).n;
      if (n >= input.maxPerAdmin) throw tooManyNetworks(input.maxPerAdmin);
      const next = (this.q('SELECT next_id FROM net_alloc WHERE id = 1').get() as { next_id: number } | undefined)?.next_id ?? 1;
      if (next > NETWORK_ID_MAX) throw noNetworkIds();
      this.q('INSERT INTO net_alloc (id, next_id) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET next_id = excluded.next_id').run(next + 1);
      this.q('INSERT INTO networks (id, name, admin, created) VALUES (?, ?, ?, ?)').run(next, input.name, input.admin, input.now);
      return { id: next, name: input.name, admin: buf(input.admin), created: input.now };
    });
  }

  async getNetwork(id: number): Promise<NetworkRecord | undefined> {
    const r = this.q('SELECT * FROM networks WHERE id = ?').get(id);
    return r ? netRow(r) : undefined;
  }

  async getNetworkByName(name: string): Promise<NetworkRecord | undefined> {
    const r = this.q('SELECT * FROM networks WHERE name = ?').get(name);
    return r ? netRow(r) : undefined;
  }

  async deleteNetwork(id: number): Promise<boolean> {
    return this.tx(() => {
      for (const t of ['net_invites', 'net_members', 'net_kicks', 'net_policy', 'net_audit']) this.q(`DELETE FROM ${t} WHERE net = ?`).run(id);
      return this.q('DELETE FROM networks WHERE id = ?').run(id).changes > 0;
    });
  }

  async networksOf(key: Buffer): Promise<NetworkRecord[]> {
    return (this.q('SELECT * FROM networks WHERE admin = ? OR id IN (SELECT net FROM net_members WHERE key = ?) ORDER BY id').all(key, key) as Row[]).map(
      netRow,
    );
  }

  async networksOfWithMembership(key: Buffer): Promise<{ network: NetworkRecord; tags: string[] | null; members: number }[]> {
    const rows = this.q(
      `SELECT n.*, m.tags AS my_tags, (SELECT COUNT(*) FROM net_members c WHERE c.net = n.id) AS member_count
       FROM networks n LEFT JOIN net_members m ON m.net = n.id AND m.key = ?
       WHERE n.admin = ? OR m.key IS NOT NULL ORDER BY n.id`,
    ).all(key, key) as Row[];
    return rows.map((r) => ({ network: netRow(r), tags: r.my_tags === null ? null : parseTagsColumn(r.my_tags), members: Number(r.member_count) }));
  }

  async putInvite(inv: InviteRecord, opts: { maxLive: number; now: number }): Promise<void> {
    await this.tx(() => {
      const live = (this.q('SELECT * FROM net_invites WHERE net = ?').all(inv.net) as Row[]).map(inviteRow).filter((x) => inviteLive(x, opts.now));
      if (live.length >= opts.maxLive) throw tooManyInvites(opts.maxLive);
      this.q(
        `INSERT INTO net_invites (net, id, cert, cert_sig, uses, used, exp, iat, revoked, ephemeral, tags, created)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        inv.net,
        inv.id,
        inv.cert,
        inv.certSig,
        inv.uses,
        inv.used,
        inv.exp,
        inv.iat,
        inv.revoked ? 1 : 0,
        inv.ephemeral ? 1 : 0,
        tagsColumn(inv.tags),
        inv.created,
      );
      // Dead invites (revoked, expired, used up) stay listed, the newest deadInvitesKept(maxLive) of them.
      this.q(
        `DELETE FROM net_invites WHERE net = ? AND id IN (SELECT id FROM net_invites WHERE net = ?
           AND (revoked = 1 OR (exp != 0 AND exp <= ?) OR (uses != 0 AND used >= uses)) ORDER BY created DESC, id DESC LIMIT -1 OFFSET ?)`,
      ).run(inv.net, inv.net, Math.floor(opts.now / 1000), deadInvitesKept(opts.maxLive));
    });
  }

  async getInvite(net: number, id: Buffer): Promise<InviteRecord | undefined> {
    const r = this.q('SELECT * FROM net_invites WHERE net = ? AND id = ?').get(net, id);
    return r ? inviteRow(r) : undefined;
  }

  async listInvites(net: number): Promise<InviteRecord[]> {
    return (this.q('SELECT * FROM net_invites WHERE net = ? ORDER BY created, id').all(net) as Row[]).map(inviteRow);
  }

  async revokeInvite(net: number, id: Buffer): Promise<boolean> {
    return this.tx(() => this.q('UPDATE net_invites SET revoked = 1 WHERE net = ? AND id = ? AND revoked = 0').run(net, id).changes > 0);
  }

  async join(
    m: MemberRecord,
    opts: JoinOptions,
  ): Promise<{ ok: true; member: MemberRecord; already: boolean } | { ok: false; why: JoinRefusal; uses: number }> {
    return this.tx(() => {
      const refuse = (why: JoinRefusal, uses = 0) => ({ ok: false as const, why, uses });
      const r = this.q('SELECT * FROM net_invites WHERE net = ? AND id = ?').get(m.net, m.inviteId);
      if (!r) return refuse('unknown');
      const inv = inviteRow(r);
      if (!inv.cert.equals(m.cert)) return refuse('forged', inv.uses);
      const kick = this.q('SELECT ts FROM net_kicks WHERE net = ? AND key = ?').get(m.net, m.key) as { ts: number } | undefined;
      if (kick) {
        // Kicked after the invite was issued: that invite cannot bring it back (a newer one can).
        if (kick.ts >= inv.iat * 1000) return refuse('kicked', inv.uses);
        this.q('DELETE FROM net_kicks WHERE net = ? AND key = ?').run(m.net, m.key);
      }
      if (inv.revoked) return refuse('revoked', inv.uses);
      if (inv.exp !== 0 && Math.floor(opts.now / 1000) >= inv.exp) return refuse('expired', inv.uses);
      const existing = this.q('SELECT 1 FROM net_members WHERE net = ? AND key = ?').get(m.net, m.key);
      if (!existing) {
        if (inv.uses !== 0 && inv.used >= inv.uses) return refuse('used-up', inv.uses);
        const n = (this.q('SELECT COUNT(*) AS n FROM net_members WHERE net = ?').get(m.net) as { n: number }).n;
        if (n >= opts.maxMembers) return refuse('full', inv.uses);
        this.q('UPDATE net_invites SET used = used + 1 WHERE net = ? AND id = ?').run(m.net, m.inviteId);
      }
      this.q(
        `INSERT INTO net_members (net, key, address, tags, ephemeral, joined, invite_id, cert, cert_sig, binding, binding_sig)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(net, key) DO UPDATE SET address = excluded.address, tags = excluded.tags, ephemeral = excluded.ephemeral,
           invite_id = excluded.invite_id, cert = excluded.cert, cert_sig = excluded.cert_sig, binding = excluded.binding, binding_sig = excluded.binding_sig`,
      ).run(m.net, m.key, addressKey(m.address), tagsColumn(m.tags), m.ephemeral ? 1 : 0, m.joined, m.inviteId, m.cert, m.certSig, m.binding, m.bindingSig);
      if (opts.markNodeEphemeral) this.q('UPDATE nodes SET ephemeral = 1 WHERE public_key = ?').run(m.key);
      if (opts.audit && !existing) this.appendAuditNow(opts.audit.entry, opts.audit.keep);
      const member = memberRow(this.q('SELECT * FROM net_members WHERE net = ? AND key = ?').get(m.net, m.key));
      return { ok: true as const, member, already: existing !== undefined };
    });
  }

  async getMember(net: number, key: Buffer): Promise<MemberRecord | undefined> {
    const r = this.q('SELECT * FROM net_members WHERE net = ? AND key = ?').get(net, key);
    return r ? memberRow(r) : undefined;
  }

  async listMembers(net: number): Promise<MemberRecord[]> {
    return (this.q('SELECT * FROM net_members WHERE net = ? ORDER BY joined, address').all(net) as Row[]).map(memberRow);
  }

  async countMembers(net: number): Promise<number> {
    return (this.q('SELECT COUNT(*) AS n FROM net_members WHERE net = ?').get(net) as { n: number }).n;
  }

  async removeMember(net: number, key: Buffer): Promise<boolean> {
    return this.tx(() => this.q('DELETE FROM net_members WHERE net = ? AND key = ?').run(net, key).changes > 0);
  }

  async listEphemeralMembers(limit: number): Promise<MemberRecord[]> {
    return (this.q('SELECT * FROM net_members WHERE ephemeral = 1 ORDER BY joined, net, address LIMIT ?').all(limit) as Row[]).map(memberRow);
  }

  async membershipsOf(key: Buffer): Promise<MemberRecord[]> {
    return (this.q('SELECT * FROM net_members WHERE key = ? ORDER BY net').all(key) as Row[]).map(memberRow);
  }

  async findPage(net: number, tag: string, opts: { caller: Buffer; offset: number; limit: number }): Promise<FoundPage> {
    const callerIsMember = this.q('SELECT 1 FROM net_members WHERE net = ? AND key = ?').get(net, opts.caller) !== undefined;
    const members = (
      this.q(
        `SELECT * FROM net_members m WHERE net = ? AND (tags LIKE ? OR EXISTS (SELECT 1 FROM node_tags s WHERE s.key = m.key AND s.tag = ?))
         ORDER BY joined, address LIMIT ? OFFSET ?`,
      ).all(net, `%,${tag},%`, tag, opts.limit, opts.offset) as Row[]
    ).map(memberRow);
    const about = await this.describeNodes(members.map((m) => m.key));
    return { callerIsMember, found: members.map((member, i) => ({ member, about: about[i]! })) };
  }

  async sharedMemberships(a: Buffer, b: Buffer): Promise<MemberRecord[]> {
    return (this.q('SELECT y.* FROM net_members x JOIN net_members y ON x.net = y.net WHERE x.key = ? AND y.key = ? ORDER BY y.net').all(a, b) as Row[]).map(
      memberRow,
    );
  }

  async sharesNetwork(a: Address, b: Address): Promise<boolean> {
    return (
      this.q('SELECT 1 FROM net_members x JOIN net_members y ON x.net = y.net WHERE x.address = ? AND y.address = ? LIMIT 1').get(
        addressKey(a),
        addressKey(b),
      ) !== undefined
    );
  }

  async putKick(k: KickRecord, max: number): Promise<void> {
    await this.tx(() => {
      this.q(
        `INSERT INTO net_kicks (net, key, address, stmt, sig, ts) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(net, key) DO UPDATE SET address = excluded.address, stmt = excluded.stmt, sig = excluded.sig, ts = excluded.ts`,
      ).run(k.net, k.key, addressKey(k.address), k.stmt, k.sig, k.ts);
      this.q('DELETE FROM net_kicks WHERE net = ? AND key NOT IN (SELECT key FROM net_kicks WHERE net = ? ORDER BY ts DESC, key DESC LIMIT ?)').run(
        k.net,
        k.net,
        max,
      );
    });
  }

  async getKick(net: number, key: Buffer): Promise<KickRecord | undefined> {
    const r = this.q('SELECT * FROM net_kicks WHERE net = ? AND key = ?').get(net, key);
    return r ? kickRow(r) : undefined;
  }

  async listKicks(net: number): Promise<KickRecord[]> {
    return (this.q('SELECT * FROM net_kicks WHERE net = ? ORDER BY ts, key').all(net) as Row[]).map(kickRow);
  }

  async deleteKick(net: number, key: Buffer): Promise<boolean> {
    return this.tx(() => this.q('DELETE FROM net_kicks WHERE net = ? AND key = ?').run(net, key).changes > 0);
  }

  async setPolicy(p: PolicyRecord): Promise<void> {
    await this.tx(() =>
      this.q(
        'INSERT INTO net_policy (net, text, sig, updated) VALUES (?, ?, ?, ?) ON CONFLICT(net) DO UPDATE SET text = excluded.text, sig = excluded.sig, updated = excluded.updated',
      ).run(p.net, p.text, p.sig, p.updated),
    );
  }

  async getPolicy(net: number): Promise<PolicyRecord | undefined> {
    const r = this.q('SELECT * FROM net_policy WHERE net = ?').get(net) as Row;
    return r ? { net: r.net, text: r.text, sig: buf(r.sig), updated: r.updated } : undefined;
  }

  async appendAudit(e: Omit<AuditEntry, 'seq'>, keep: number): Promise<number> {
    return this.tx(() => this.appendAuditNow(e, keep));
  }

  /** Inside a transaction. */
  private appendAuditNow(e: Omit<AuditEntry, 'seq'>, keep: number): number {
    const seq = ((this.q('SELECT MAX(seq) AS s FROM net_audit WHERE net = ?').get(e.net) as { s: number | null }).s ?? 0) + 1;
    this.q('INSERT INTO net_audit (net, seq, ts, actor, action, detail, stmt, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      e.net,
      seq,
      e.ts,
      addressKey(e.actor),
      e.action,
      e.detail,
      e.stmt,
      e.sig,
    );
    this.q('DELETE FROM net_audit WHERE net = ? AND seq <= ?').run(e.net, seq - keep);
    return seq;
  }

  async listAudit(net: number, afterSeq: number, limit: number): Promise<AuditEntry[]> {
    return (this.q('SELECT * FROM net_audit WHERE net = ? AND seq > ? ORDER BY seq LIMIT ?').all(net, afterSeq, limit) as Row[]).map(auditRow);
  }

  async getAudit(net: number, seq: number): Promise<AuditEntry | undefined> {
    const r = this.q('SELECT * FROM net_audit WHERE net = ? AND seq = ?').get(net, seq);
    return r ? auditRow(r) : undefined;
  }

  async setSelfTags(key: Buffer, tags: string[]): Promise<void> {
    await this.tx(() => {
      this.q('DELETE FROM node_tags WHERE key = ?').run(key);
      for (const t of tags) this.q('INSERT INTO node_tags (key, tag) VALUES (?, ?)').run(key, t);
    });
  }

  async getSelfTags(key: Buffer): Promise<string[]> {
    return (this.q('SELECT tag FROM node_tags WHERE key = ? ORDER BY tag').all(key) as { tag: string }[]).map((r) => r.tag);
  }

  async findSelfTag(tag: string, limit: number): Promise<Buffer[]> {
    return (this.q('SELECT key FROM node_tags WHERE tag = ? ORDER BY key LIMIT ?').all(tag, limit) as { key: Buffer }[]).map((r) => buf(r.key));
  }

  async describeNodes(keys: Buffer[]): Promise<NodeSummary[]> {
    return keys.map((key) => {
      const n = this.q('SELECT hostname, active FROM nodes WHERE public_key = ?').get(key) as { hostname: string | null; active: number } | undefined;
      return {
        hostname: n?.active ? n.hostname : null,
        selfTags: (this.q('SELECT tag FROM node_tags WHERE key = ? ORDER BY tag').all(key) as { tag: string }[]).map((r) => r.tag),
      };
    });
  }
}
