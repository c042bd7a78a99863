// IPC methods for fleets (issue 18): networks, invites, joins, policy, audit, tags and find.
// The rendezvous calls go through the daemon's signed registry client (d.networks.client());
// memberships, proofs and policies live in the Networks part (networks.ts). A network is named
// by its id or its name everywhere; member addresses are shown as N:XXXX.YYYY.YYYY.
import type { Handlers } from '../ipc/server.ts';
import type { NetworkMemberInfo } from '../ipc/api.ts';
import { PilotError } from '../util/errors.ts';
import { formatAddress, makeAddress, parseAddress } from '../wire/address.ts';
import type { Daemon } from './daemon.ts';
import { Broadcaster } from './broadcast.ts';
import { ECHO_PORT } from './services/echo.ts';

type NetworkMethod =
  | 'network_create'
  | 'network_list'
  | 'network_members'
  | 'network_invite'
  | 'network_invites'
  | 'network_revoke_invite'
  | 'network_join'
  | 'network_leave'
  | 'network_kick'
  | 'network_delete'
  | 'network_policy'
  | 'network_audit'
  | 'set_tags'
  | 'clear_tags'
  | 'network_find'
  | 'broadcast';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** "90", "30m", "24h", "7d" -> seconds; undefined / "0" / "never" -> 0 (never expires). */
export function parseExpiry(text: string | undefined): number {
  if (text === undefined || text === '' || text === '0' || text === 'never') return 0;
  const m = /^(\d{1,9})([smhdw]?)$/.exec(text.trim());
  if (!m) throw new PilotError('BAD_ARGUMENT', `bad expiry ${JSON.stringify(text)}`, 'seconds, or a number with s, m, h, d or w (e.g. 24h, 7d); 0 = never');
  return Number(m[1]) * UNITS[m[2] || 's']!;
}

/** An address shown in network `net` (members keep their node id: N:<node>). */
function inNet(net: number, address: string): string {
  try {
    return formatAddress(makeAddress(net, parseAddress(address).node));
  } catch {
    return address;
  }
}

export function networkHandlers(d: Daemon): Pick<Handlers, NetworkMethod> {
  const client = () => d.networks.client();

  /** A network id or name -> id (our memberships first, then the networks the rendezvous lists for us). */
  const netOf = async (ref: string): Promise<number> => {
    const t = ref.trim();
    if (/^\d{1,5}$/.test(t) && Number(t) >= 1 && Number(t) <= 0xffff) return Number(t);
    const mine = d.networks.byName(t);
    if (mine) return mine.net;
    const listed = (await client().list()).find((n) => n.name === t);
    if (listed) return listed.net;
    throw new PilotError('NOT_FOUND', `unknown network ${JSON.stringify(t)}`, 'see: pilotctl network list (a network is named by its id or its name)');
  };

  const nameOf = (net: number, fallback?: string): string => d.networks.get(net)?.name ?? fallback ?? String(net);

  const broadcaster = new Broadcaster({
    get address() {
      return d.address;
    },
    now: () => Date.now(),
    members: (net) => client().members(net),
    allowed: async (net, member, port) => {
      const peer = await d.peerFor(member); // resolves it: the rendezvous's answer lists its tags in the networks we share
      return d.networks.outgoingIn(net, peer.address, port);
    },
    // from the destination port, as `send` does (except echo's: its answer needs a port of ours)
    send: (member, port, data) => d.sendDatagram(member, port === ECHO_PORT ? d.ports.ephemeral() : port, port, data),
  });

  return {
    network_create: async (p) => {
      const r = await client().create(p.name);
      return { net: r.net, name: r.name, admin: r.admin };
    },
    network_list: async () => {
      const listed = await client().list();
      const seen = new Set<number>();
      const out = listed.map((n) => {
        seen.add(n.net);
        const m = d.networks.get(n.net);
        return {
          net: n.net,
          name: n.name,
          admin: n.admin,
          member: m !== undefined,
          tags: m?.tags ?? n.tags,
          members: n.members,
          ephemeral: m?.ephemeral ?? false,
          address: m && d.address ? formatAddress(makeAddress(n.net, d.address.node)) : null,
        };
      });
      // Memberships the rendezvous did not list (unreachable, or it forgot us): shown from networks.json.
      for (const m of d.networks.list())
        if (!seen.has(m.net))
          out.push({
            net: m.net,
            name: m.name,
            admin: false,
            member: true,
            tags: m.tags,
            members: 0,
            ephemeral: m.ephemeral,
            address: d.address ? formatAddress(makeAddress(m.net, d.address.node)) : null,
          });
      return { networks: out };
    },
    network_members: async (p) => {
      const net = await netOf(p.net);
      const members: NetworkMemberInfo[] = (await client().members(net)).map((m) => ({
        address: inNet(net, m.address),
        hostname: m.hostname,
        tags: m.tags,
        online: m.online,
        ephemeral: m.ephemeral,
        verified: (() => {
          try {
            return d.networks.proves(net, parseAddress(m.address));
          } catch {
            return false;
          }
        })(),
      }));
      return { net, name: nameOf(net, p.net), members };
    },
    network_invite: async (p) => {
      const net = await netOf(p.net);
      const expiresIn = parseExpiry(p.expires);
      const r = await client().invite({ net, tags: p.tags, uses: p.uses, expiresIn, ephemeral: p.ephemeral });
      const expires = expiresIn === 0 ? 0 : Math.floor(Date.now() / 1000) + expiresIn;
      return { net, name: nameOf(net, p.net), token: r.token, inviteId: r.inviteId, tags: [...p.tags].sort(), uses: p.uses, expires, ephemeral: p.ephemeral };
    },
    network_invites: async (p) => {
      const net = await netOf(p.net);
      return { net, invites: await client().invites(net) };
    },
    network_revoke_invite: async (p) => {
      const net = await netOf(p.net);
      await client().revokeInvite(net, p.inviteId);
      return { net, inviteId: p.inviteId, revoked: true as const };
    },
    network_join: async (p) => {
      const { membership: m, already } = await d.networks.join(p.token);
      const address = formatAddress(makeAddress(m.net, d.address!.node));
      return { net: m.net, name: m.name, address, tags: m.tags, ephemeral: m.ephemeral, already };
    },
    network_leave: async (p) => {
      const net = await netOf(p.net);
      await d.networks.leave(net);
      return { net, left: true as const };
    },
    network_kick: async (p) => {
      const net = await netOf(p.net);
      const node = await d.resolveTarget(p.node);
      const r = await client().kick(net, formatAddress(makeAddress(0, node.address.node)));
      return { net, node: inNet(net, r.node), kicked: true as const };
    },
    network_delete: async (p) => {
      const net = await netOf(p.net);
      await client().delete(net);
      return { net, deleted: true as const };
    },
    network_policy: async (p) => {
      const net = await netOf(p.net);
      if (p.text !== undefined) {
        await client().setPolicy(net, p.text, p.source ?? 'policy.json');
        d.networks.onPush('network_policy_changed', { net });
      }
      const adminKey = d.networks.get(net)?.adminKey ?? (await client().list()).find((n) => n.net === net)?.adminKey;
      const r = await client().getPolicy(net, typeof adminKey === 'string' ? Buffer.from(adminKey, 'base64') : adminKey);
      return { net, text: r.text, updated: r.updated, verified: r.verified ?? null, set: p.text !== undefined };
    },
    network_audit: async (p) => {
      const net = await netOf(p.net);
      return { net, entries: await client().audit(net, { statements: p.statements }) };
    },
    set_tags: async (p) => {
      await client().setTags(p.tags);
      return { tags: [...new Set(p.tags)].sort() };
    },
    clear_tags: async () => {
      await client().clearTags();
      return { tags: [] as [] };
    },
    broadcast: async (p) => {
      const net = await netOf(p.net);
      if (!d.networks.get(net))
        throw new PilotError(
          'PERMISSION_DENIED',
          `this node is not a member of network ${p.net}`,
          'a broadcast goes out as a member: join it first (pilotctl network join <token>, or daemon start --join)',
        );
      const data = Buffer.from(p.data, p.encoding === 'base64' ? 'base64' : 'utf8');
      return broadcaster.broadcast(net, nameOf(net, p.net), p.port, data);
    },
    network_find: async (p) => {
      const net = p.net === undefined ? undefined : await netOf(p.net);
      const nodes = await client().find({ tag: p.tag, ...(net !== undefined ? { net } : {}), ...(p.online ? { online: true } : {}) });
      return {
        tag: p.tag,
        net: net ?? null,
        nodes: nodes.map((n) => ({
          address: net ? inNet(net, n.address) : n.address,
          hostname: n.hostname,
          tags: n.tags,
          selfTags: n.selfTags,
          online: n.online,
        })),
      };
    },
  };
}
