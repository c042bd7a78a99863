// `pilotctl status`: the one screen a Tailscale user expects from `tailscale status`.
// This node first (address, hostname, visibility, NAT, uplink), then every peer, one
// line each: hostname, address, path (direct endpoint or relay) and RTT, and whether
// it is trusted. A trusted peer without a session is listed too ("idle"), so the
// screen answers "who can I reach" and not only "who talked to me lately".
// Built from the existing IPC methods (info, peers, trust: one connection, three
// requests), so it works against any daemon of this contract.
import type { Command } from 'commander';
import { ok } from '../output.ts';
import type { RunWrapper } from '../action.ts';
import type { NodeInfo, PeerInfo, TrustedPeer } from '../../ipc/api.ts';

export interface StatusPeer {
  address: string;
  hostname: string | null;
  /** Does this node trust it (nothing passes between untrusted nodes)? */
  trusted: boolean;
  /** Trusted both ways (null: not trusted here). */
  mutual: boolean | null;
  /** A session is up (it is in `pilotctl peers`). */
  connected: boolean;
  /** "direct IP:PORT", "relay (udp)", or "-" without a session. */
  path: string;
  pathType: PeerInfo['pathType'];
  endpoint: string | null;
  relay: string | null;
  /** Smoothed RTT of the session; null without one. */
  rttMs: number | null;
  lastSeenMsAgo: number | null;
}

export interface StatusView {
  self: Pick<NodeInfo, 'address' | 'hostname' | 'public' | 'nat' | 'uplink' | 'observed' | 'version' | 'pid' | 'uptimeSec' | 'portmap'>;
  registry: { address: string; online: boolean };
  peers: StatusPeer[];
}

/** The answers of info, peers and trust as one view: connected peers first (by hostname, then address), then idle trusted ones. */
export function statusView(info: NodeInfo, peers: PeerInfo[], trusted: TrustedPeer[]): StatusView {
  const trust = new Map(trusted.map((t) => [t.peer, t]));
  const seen = new Set<string>();
  const rows: StatusPeer[] = [];
  for (const p of peers) {
    seen.add(p.address);
    const t = trust.get(p.address);
    rows.push({
      address: p.address,
      hostname: p.hostname ?? t?.hostname ?? null,
      trusted: t !== undefined,
      mutual: t ? t.mutual : null,
      connected: true,
      path: p.path,
      pathType: p.pathType,
      endpoint: p.endpoint,
      relay: p.relay,
      rttMs: p.pathType === 'none' ? null : p.rttMs,
      lastSeenMsAgo: p.lastSeenMsAgo,
    });
  }
  const idle: StatusPeer[] = trusted
    .filter((t) => !seen.has(t.peer))
    .map((t) => ({
      address: t.peer,
      hostname: t.hostname,
      trusted: true,
      mutual: t.mutual,
      connected: false,
      path: '-',
      pathType: 'none',
      endpoint: null,
      relay: null,
      rttMs: null,
      lastSeenMsAgo: null,
    }));
  const order = (a: StatusPeer, b: StatusPeer): number => (a.hostname ?? '\uffff').localeCompare(b.hostname ?? '\uffff') || a.address.localeCompare(b.address);
  return {
    self: {
      address: info.address,
      hostname: info.hostname,
      public: info.public,
      nat: info.nat,
      uplink: info.uplink,
      observed: info.observed,
      version: info.version,
      pid: info.pid,
      uptimeSec: info.uptimeSec,
      ...(info.portmap ? { portmap: info.portmap } : {}),
    },
    registry: { address: info.registry, online: info.registryOnline },
    peers: [...rows.sort(order), ...idle.sort(order)],
  };
}

/** Rows of cells as text columns two spaces apart (the last cell is not padded). */
export function columns(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

const rtt = (ms: number | null): string => (ms === null ? '-' : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`);

function trustText(p: StatusPeer): string {
  if (!p.trusted) return 'not trusted';
  return p.mutual ? 'trusted' : 'trusted (one way)';
}

/** The human screen. */
export function formatStatus(v: StatusView): string {
  const s = v.self;
  const selfNotes = [
    s.public ? 'public' : 'private',
    `NAT ${s.nat || '-'}`,
    `uplink ${s.uplink || '-'}`,
    ...(s.observed ? [`seen as ${s.observed}`] : []),
    ...(s.portmap?.external ? [`mapped as ${s.portmap.external} (${s.portmap.protocol})`] : []),
    ...(s.portmap?.enabled && !s.portmap.external && s.portmap.error ? [`no port mapping (${s.portmap.error.code})`] : []),
  ].join(', ');
  const rows = [
    [s.address, s.hostname ?? '-', 'this node', '', selfNotes],
    ...v.peers.map((p) => [p.address, p.hostname ?? '-', p.connected ? p.path : 'idle (no session)', rtt(p.rttMs), trustText(p)]),
  ];
  const lines = [columns(rows)];
  if (v.peers.length === 0) lines.push('', '# no peers yet: pilotctl handshake <hostname|address> asks one for trust');
  lines.push(
    '',
    v.registry.online
      ? `# registry ${v.registry.address}: online`
      : `# registry ${v.registry.address}: unreachable (sessions already up keep working; lookups and new peers wait for it)`,
  );
  return lines.join('\n');
}

export function registerStatusCommand(program: Command, run: RunWrapper): void {
  program
    .command('status')
    .description('this node, the registry and every peer with its path and RTT, on one screen (like tailscale status)')
    .action(
      run(async (_g, out, client) => {
        const c = client();
        const [info, peers, trust] = await Promise.all([c.call('info'), c.call('peers'), c.call('trust')]);
        const view = statusView(info, peers.peers, trust.trusted);
        ok(out, view, () => formatStatus(view));
      }),
    );
}
