// Client side of the fleet methods (issue 18), used by the daemon, pilotctl and the SDK
// through `registryClient.networks`. Pages through long lists, cuts policies into parts
// that fit a registry packet, signs invites, bindings and policies with the node key,
// and checks every result against its valibot schema (a server bug fails loudly).
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { verify, type Identity } from './signing.ts';
import { decodeTicket, makeBinding, makeInvite, parseToken, signPolicy, verifyPolicy, type Credential, type InviteOptions, type Ticket } from './membership.ts';
import { parsePolicy } from './network-policy.ts';
import { NetworkResultSchemas, POLICY_PART_MAX_CHARS, type NetworkMethod, type NetworkResult } from './network-protocol.ts';

/** What the client needs from RegistryClient (kept narrow: the transport, signing and retries are its job). */
export interface SignedCaller {
  request<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>;
  /** Our clock corrected to the rendezvous's (ms). */
  serverNow(): number;
}

/** Safety stop for paging (each page holds at least one entry). */
const MAX_PAGES = 10_000;
/**
 * Wire budget of one policy part: its text is escaped twice on the way (JSON in the
 * statement, the statement in the envelope), so a quote costs 4 bytes. 520 bytes keep the
 * whole request under the 1200-byte packet with the signature on the last part.
 */
const POLICY_PART_WIRE_BYTES = 520;

const wireCost = (s: string) => Buffer.byteLength(JSON.stringify(JSON.stringify(s)), 'utf8') - 4;

/** Splits a policy text into parts that each fit one request (never inside a surrogate pair). */
export function splitPolicy(text: string): string[] {
  const parts: string[] = [];
  let i = 0;
  while (i < text.length) {
    let lo = 1;
    let hi = Math.min(POLICY_PART_MAX_CHARS, text.length - i);
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (wireCost(text.slice(i, i + mid)) <= POLICY_PART_WIRE_BYTES) lo = mid;
      else hi = mid - 1;
    }
    const c = text.charCodeAt(i + lo - 1);
    if (lo > 1 && c >= 0xd800 && c <= 0xdbff) lo--;
    parts.push(text.slice(i, i + lo));
    i += lo;
  }
  return parts.length > 0 ? parts : [''];
}

export interface AuditRecord {
  seq: number;
  ts: number;
  actor: string;
  action: string;
  detail: Record<string, unknown>;
  /** With `statements`: the actor's signed request, its signature, and whether it verifies under the key it names. */
  stmt?: string;
  sig?: string;
  verified?: boolean;
}

/** Audit actions and the registry method whose signed request each one keeps. */
const AUDIT_METHODS: Record<string, string> = {
  create: 'network_create',
  invite: 'network_invite',
  revoke_invite: 'network_revoke_invite',
  join: 'network_join',
  leave: 'network_leave',
  kick: 'network_kick',
  policy_set: 'network_policy_set',
};

/** Checks a stored signed request: signature under the key it names, and its method. */
export function verifyStatement(stmt: string, sigB64: string, method?: string): boolean {
  try {
    const s = JSON.parse(stmt) as { key?: unknown; method?: unknown };
    if (typeof s.key !== 'string' || (method !== undefined && s.method !== method)) return false;
    return verify(Buffer.from(stmt, 'utf8'), Buffer.from(sigB64, 'base64'), Buffer.from(s.key, 'base64'));
  } catch {
    return false;
  }
}

export class NetworkClient {
  private readonly client: SignedCaller;
  private readonly identity: Identity;

  constructor(client: SignedCaller, identity: Identity) {
    this.client = client;
    this.identity = identity;
  }

  private async call<M extends NetworkMethod>(method: M, params: Record<string, unknown> = {}): Promise<NetworkResult<M>> {
    const raw = await this.client.request<unknown>(method, params);
    const r = v.safeParse(NetworkResultSchemas[method], raw);
    if (!r.success) throw new PilotError('INTERNAL', `malformed ${method} result from the rendezvous`);
    return r.output as NetworkResult<M>;
  }

  /** Creates a network administered by our key. */
  create(name: string): Promise<NetworkResult<'network_create'>> {
    return this.call('network_create', { name });
  }

  /** Deletes a network we administer (members are told). */
  delete(net: number): Promise<NetworkResult<'network_delete'>> {
    return this.call('network_delete', { net });
  }

  /** Networks we belong to or administer. */
  async list(): Promise<NetworkResult<'network_list'>['networks']> {
    const out: NetworkResult<'network_list'>['networks'] = [];
    for (let i = 0; i < MAX_PAGES; i++) {
      const pg = await this.call('network_list', out.length > 0 ? { offset: out.length } : {});
      out.push(...pg.networks);
      if (!pg.more || pg.networks.length === 0) break;
    }
    return out;
  }

  /** Every member (paged), with hostname, tags and presence. */
  async members(net: number): Promise<NetworkResult<'network_members'>['members']> {
    const out: NetworkResult<'network_members'>['members'] = [];
    for (let i = 0; i < MAX_PAGES; i++) {
      const pg = await this.call('network_members', out.length > 0 ? { net, offset: out.length } : { net });
      out.push(...pg.members);
      if (!pg.more || pg.members.length === 0) break;
    }
    return out;
  }

  /**
   * Makes an invite signed by our (admin) key and registers it (certificate only: the
   * secret stays in the token). Returns the token to hand to the joiners.
   */
  async invite(opts: Omit<InviteOptions, 'now'>): Promise<{ token: string; inviteId: string; net: number; cert: Buffer; certSig: Buffer }> {
    const inv = makeInvite(this.identity, { ...opts, now: this.client.serverNow() });
    const r = await this.call('network_invite', { cert: inv.cert.toString('base64'), certSig: inv.certSig.toString('base64') });
    return { token: inv.token, inviteId: r.inviteId, net: r.net, cert: inv.cert, certSig: inv.certSig };
  }

  /** Registers an invite made elsewhere (cert + certSig only). */
  registerInvite(cert: Buffer, certSig: Buffer): Promise<NetworkResult<'network_invite'>> {
    return this.call('network_invite', { cert: cert.toString('base64'), certSig: certSig.toString('base64') });
  }

  async invites(net: number): Promise<NetworkResult<'network_invites'>['invites']> {
    const out: NetworkResult<'network_invites'>['invites'] = [];
    for (let i = 0; i < MAX_PAGES; i++) {
      const pg = await this.call('network_invites', out.length > 0 ? { net, offset: out.length } : { net });
      out.push(...pg.invites);
      if (!pg.more || pg.invites.length === 0) break;
    }
    return out;
  }

  revokeInvite(net: number, inviteId: string): Promise<NetworkResult<'network_revoke_invite'>> {
    return this.call('network_revoke_invite', { net, inviteId });
  }

  /**
   * Joins with a token: signs a binding of our key with the invite key (the token's secret
   * never leaves this process) and returns the result plus the credential to present to peers.
   */
  async join(token: string): Promise<NetworkResult<'network_join'> & { credential: Credential }> {
    const now = this.client.serverNow();
    const t = parseToken(token, now);
    const { credential } = makeBinding(t, this.identity, now);
    const r = await this.joinWith(credential);
    return { ...r, credential };
  }

  /** network_join with a ready credential (tests, or a binding made elsewhere). */
  joinWith(c: Credential): Promise<NetworkResult<'network_join'>> {
    return this.call('network_join', {
      cert: c.cert.toString('base64'),
      certSig: c.certSig.toString('base64'),
      binding: c.binding.toString('base64'),
      bindingSig: c.bindingSig.toString('base64'),
    });
  }

  leave(net: number): Promise<NetworkResult<'network_leave'>> {
    return this.call('network_leave', { net });
  }

  /** Admin only; `node` is the member's address (N:… or 0:…). */
  kick(net: number, node: string): Promise<NetworkResult<'network_kick'>> {
    return this.call('network_kick', { net, node });
  }

  /** The network's kick list: each entry carries the admin's signed network_kick request (verified here: `verified`). */
  async kicks(net: number, adminKey?: Buffer): Promise<(NetworkResult<'network_kicks'>['kicks'][number] & { verified: boolean })[]> {
    const out: (NetworkResult<'network_kicks'>['kicks'][number] & { verified: boolean })[] = [];
    for (let i = 0; i < MAX_PAGES; i++) {
      const pg = await this.call('network_kicks', out.length > 0 ? { net, offset: out.length } : { net });
      for (const k of pg.kicks) {
        let ok = verifyStatement(k.stmt, k.sig, 'network_kick');
        if (ok && adminKey) ok = (JSON.parse(k.stmt) as { key: string }).key === adminKey.toString('base64');
        out.push({ ...k, verified: ok });
      }
      if (!pg.more || pg.kicks.length === 0) break;
    }
    return out;
  }

  /** Rendezvous-signed member tickets for each of our networks (valid 5 min). */
  async tickets(): Promise<{ net: number; ticket: Buffer; sig: Buffer; exp: number; decoded: Ticket }[]> {
    const out: { net: number; ticket: Buffer; sig: Buffer; exp: number; decoded: Ticket }[] = [];
    for (let i = 0; i < MAX_PAGES; i++) {
      const pg = await this.call('network_tickets', out.length > 0 ? { offset: out.length } : {});
      for (const t of pg.tickets) {
        const ticket = Buffer.from(t.ticket, 'base64');
        out.push({ net: t.net, ticket, sig: Buffer.from(t.sig, 'base64'), exp: t.exp, decoded: decodeTicket(ticket) });
      }
      if (!pg.more || pg.tickets.length === 0) break;
    }
    return out;
  }

  /**
   * Sets the policy (admin only): checked locally first (same parser, same line:column
   * errors), signed over the whole text, sent in parts; the last carries the signature.
   */
  async setPolicy(net: number, text: string, source = 'policy.json'): Promise<NetworkResult<'network_policy_set'>> {
    parsePolicy(text, source);
    // The version is the (rendezvous-corrected) time: later uploads have larger ones.
    const version = Math.max(1, Math.floor(this.client.serverNow()));
    const sig = signPolicy(this.identity, net, text, version).toString('base64');
    const parts = splitPolicy(text);
    let last: NetworkResult<'network_policy_set'> | undefined;
    for (let part = 0; part < parts.length; part++) {
      const params: Record<string, unknown> = { net, part, parts: parts.length, text: parts[part] };
      if (part === parts.length - 1) Object.assign(params, { sig, version });
      last = await this.call('network_policy_set', params);
    }
    return last!;
  }

  /**
   * The network's policy text, the admin's signature and the signed version (`updated`).
   * With `adminKey` the signature is checked (`verified`); a policy that does not verify
   * must not be used, nor one older than a version already seen (rollback).
   */
  async getPolicy(net: number, adminKey?: Buffer): Promise<{ text: string; sig: Buffer | null; updated: number; verified: boolean | undefined }> {
    let text = '';
    let sig: string | null = null;
    let updated = 0;
    for (let i = 0; i < MAX_PAGES; i++) {
      const pg = await this.call('network_policy_get', text.length > 0 ? { net, offset: text.length } : { net });
      if (pg.offset !== text.length) throw new PilotError('INTERNAL', 'policy pages out of order (the policy changed while reading): retry');
      text += pg.text;
      sig = pg.sig;
      updated = pg.updated;
      if (!pg.more || pg.text.length === 0) break;
    }
    const sigBuf = sig === null ? null : Buffer.from(sig, 'base64');
    const verified = adminKey && sigBuf ? verifyPolicy(net, text, sigBuf, adminKey, updated) : adminKey ? false : undefined;
    return { text, sig: sigBuf, updated, verified };
  }

  /** The audit log, oldest first; with `statements` also each signed request, checked. */
  async audit(net: number, opts: { statements?: boolean; after?: number } = {}): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    let after = opts.after ?? 0;
    for (let i = 0; i < MAX_PAGES; i++) {
      const pg = await this.call('network_audit', { net, after });
      out.push(...pg.entries);
      if (pg.entries.length > 0) after = pg.entries[pg.entries.length - 1]!.seq;
      if (!pg.more || pg.entries.length === 0) break;
    }
    if (opts.statements) {
      for (const e of out) {
        const s = await this.auditStatement(net, e.seq);
        e.stmt = s.stmt;
        e.sig = s.sig;
        e.verified = verifyStatement(s.stmt, s.sig, AUDIT_METHODS[e.action]);
      }
    }
    return out;
  }

  /** One audit entry's signed statement (sent in chunks). */
  async auditStatement(net: number, seq: number): Promise<{ stmt: string; sig: string }> {
    let stmt = '';
    let sig = '';
    for (let i = 0; i < MAX_PAGES; i++) {
      const pg = await this.call('network_audit_stmt', stmt.length > 0 ? { net, seq, offset: stmt.length } : { net, seq });
      stmt += pg.text;
      sig = pg.sig;
      if (!pg.more || pg.text.length === 0) break;
    }
    return { stmt, sig };
  }

  /** Self-declared tags, for discovery only (never for policy). */
  setTags(tags: string[]): Promise<NetworkResult<'set_tags'>> {
    return this.call('set_tags', { tags });
  }

  clearTags(): Promise<NetworkResult<'clear_tags'>> {
    return this.call('clear_tags', {});
  }

  /** Nodes with `tag`: members of `net` (credential or self tag), or public nodes (self tag) without it. */
  async find(q: { tag: string; net?: number; online?: boolean }): Promise<NetworkResult<'find'>['nodes']> {
    const out: NetworkResult<'find'>['nodes'] = [];
    let offset = 0;
    for (let i = 0; i < MAX_PAGES; i++) {
      const params: Record<string, unknown> = { tag: q.tag };
      if (q.net !== undefined) params.net = q.net;
      if (q.online !== undefined) params.online = q.online;
      if (offset > 0) params.offset = offset;
      const pg = await this.call('find', params);
      out.push(...pg.nodes);
      if (!pg.more || pg.next <= offset) break;
      offset = pg.next;
    }
    return out;
  }
}
