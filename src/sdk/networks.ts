// node.networks: fleets (issue 18) through the same IPC methods pilotctl's
// `network …` commands use (src/daemon/network-ipc.ts), typed by the IPC
// contract. A network is named by its id or its name everywhere. Failures are
// the daemon's PilotErrors (unknown network NOT_FOUND, a bad token BAD_ARGUMENT /
// BAD_SIGNATURE, used up QUOTA_EXCEEDED, revoked PERMISSION_DENIED, a policy that
// does not parse BAD_ARGUMENT with line:column, ...).
import { PilotError } from '../util/errors.ts';
import type { ResultOf } from '../ipc/api.ts';
import type { NetworkAuditEntry, NetworkInfo, NetworkInviteInfo, NetworkMemberInfo } from '../ipc/api-types.ts';
import type { Backend } from './backend.ts';

export type { NetworkAuditEntry, NetworkInfo, NetworkInviteInfo, NetworkMemberInfo };

export type NetworkCreated = ResultOf<'network_create'>;
export type NetworkMembers = ResultOf<'network_members'>;
export type NetworkInvite = ResultOf<'network_invite'>;
export type NetworkJoined = ResultOf<'network_join'>;
export type NetworkPolicy = ResultOf<'network_policy'>;
export type FoundMembers = ResultOf<'network_find'>;

export interface InviteOptions {
  /** Credential tags the joiners get (policies name them tag:<tag>). */
  tags?: string[];
  /** How many joins the token allows; 0 or absent = unlimited. */
  uses?: number;
  /** Seconds, or "30m", "24h", "7d"; absent or 0 = never expires. */
  expires?: number | string;
  /** Joiners are ephemeral members. */
  ephemeral?: boolean;
}

/** A network policy as an object: what the JSON file holds (docs/FLEETS.md "Policy"). */
export interface PolicyDocument {
  rules?: { from: string[]; to: string[]; ports: (number | string)[] }[];
}

export interface FindQuery {
  /** A credential or self-declared tag. */
  tag: string;
  /** Members of this network (id or name); without it, public nodes with that self tag. */
  network?: string | number;
  /** Only those online now. */
  online?: boolean;
}

const ref = (net: string | number): string => String(net);

/** Networks this node administers or belongs to. */
export class Networks {
  private readonly backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  /** Create a network administered by this node's key (name: [a-z0-9-], 1-63). */
  create(name: string): Promise<NetworkCreated> {
    return this.backend.call('network_create', { name });
  }

  /** Networks this node belongs to or administers. */
  async list(): Promise<NetworkInfo[]> {
    return (await this.backend.call('network_list')).networks;
  }

  /** The members of a network: N: address, hostname, credential tags, online, verified. */
  members(net: string | number): Promise<NetworkMembers> {
    return this.backend.call('network_members', { net: ref(net) });
  }

  /** (admin) A join token; the token is a secret: hand it to the joiner only. */
  async invite(net: string | number, opts: InviteOptions = {}): Promise<NetworkInvite> {
    const expires = opts.expires;
    if (expires !== undefined && typeof expires === 'number' && (!Number.isInteger(expires) || expires < 0)) {
      throw new PilotError('BAD_ARGUMENT', `expires must be whole seconds >= 0, got ${expires}`, 'e.g. { expires: 3600 } or { expires: "24h" }; 0 = never');
    }
    return this.backend.call('network_invite', {
      net: ref(net),
      tags: opts.tags ?? [],
      uses: opts.uses ?? 0,
      ephemeral: opts.ephemeral ?? false,
      ...(expires !== undefined ? { expires: String(expires) } : {}),
    });
  }

  /** (admin) The network's invites and their use. */
  async invites(net: string | number): Promise<NetworkInviteInfo[]> {
    return (await this.backend.call('network_invites', { net: ref(net) })).invites;
  }

  /** (admin) Stop an invite's joins (members who joined with it stay). */
  revokeInvite(net: string | number, inviteId: string): Promise<ResultOf<'network_revoke_invite'>> {
    return this.backend.call('network_revoke_invite', { net: ref(net), inviteId });
  }

  /** Join with a token; `already: true` (and nothing asked of the rendezvous) if a member. */
  join(token: string): Promise<NetworkJoined> {
    return this.backend.call('network_join', { token });
  }

  leave(net: string | number): Promise<ResultOf<'network_leave'>> {
    return this.backend.call('network_leave', { net: ref(net) });
  }

  /** (admin) Remove a member (address, node id or hostname): its peers refuse it at once. */
  kick(net: string | number, node: string): Promise<ResultOf<'network_kick'>> {
    return this.backend.call('network_kick', { net: ref(net), node });
  }

  /** (admin) Delete the network. */
  delete(net: string | number): Promise<ResultOf<'network_delete'>> {
    return this.backend.call('network_delete', { net: ref(net) });
  }

  /** The network's policy text (empty: members reach members on every port) and whether the admin signature verifies. */
  policy(net: string | number): Promise<NetworkPolicy> {
    return this.backend.call('network_policy', { net: ref(net) });
  }

  /**
   * (admin) Set the policy from JSON text or an object. The daemon parses it with
   * the same parser as the rendezvous and the receiving daemons: an error names
   * `source:line:column` (source defaults to policy.json).
   */
  async setPolicy(net: string | number, policy: string | PolicyDocument, opts: { source?: string } = {}): Promise<NetworkPolicy> {
    const text = typeof policy === 'string' ? policy : JSON.stringify(policy, null, 2);
    if (text === undefined) throw new PilotError('BAD_ARGUMENT', 'that policy has no JSON form', 'pass the JSON text or an object like { rules: [...] }');
    return this.backend.call('network_policy', { net: ref(net), text, ...(opts.source !== undefined ? { source: opts.source } : {}) });
  }

  /** The network's audit log; `statements: true` fetches and checks each signed request. */
  async audit(net: string | number, opts: { statements?: boolean } = {}): Promise<NetworkAuditEntry[]> {
    return (await this.backend.call('network_audit', { net: ref(net), statements: opts.statements ?? false })).entries;
  }
}
