// Upstream pilotctl's remaining management and diagnostic commands (issue 21):
// connections, disconnect, traceroute, broadcast, and lookup (upstream's name for
// a lookup by address; `find` here takes an address, node id or hostname alike).
import type { Command } from 'commander';
import { PilotError } from '../../util/errors.ts';
import { ok, parseCount, parseDuration } from '../output.ts';
import type { RunWrapper } from '../action.ts';

const fmtMs = (v: number | null): string => (v === null ? '-' : `${v.toFixed(3)} ms`);

function age(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

export function registerConnectionCommands(program: Command, run: RunWrapper): void {
  program
    .command('connections')
    .description('open streams with every peer: id, peer, ports, direction, bytes, age, path')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('connections');
        ok(out, r, () =>
          r.connections.length === 0
            ? 'no open connections'
            : [
                'ID      PEER               HOSTNAME         LOCAL  REMOTE  DIR  STATE        BYTES IN    BYTES OUT   AGE    PATH',
                ...r.connections.map(
                  (c) =>
                    `${String(c.id).padEnd(7)} ${c.peer.padEnd(18)} ${String(c.hostname ?? '-').padEnd(16)} ${String(c.localPort).padEnd(6)} ${String(c.remotePort).padEnd(7)} ${(c.direction === 'outgoing' ? 'out' : 'in').padEnd(4)} ${c.state.padEnd(12)} ${String(c.bytesIn).padEnd(11)} ${String(c.bytesOut).padEnd(11)} ${age(c.ageMs).padEnd(6)} ${c.path}`,
                ),
              ].join('\n'),
        );
      }),
    );
  program
    .command('disconnect <id>')
    .description('close one open stream (id from pilotctl connections): both ends fail with CONNECTION_RESET')
    .action(
      run(async (_g, out, client, id: string) => {
        if (!/^\d{1,15}$/.test(id) || Number(id) < 1)
          throw new PilotError('BAD_ARGUMENT', `invalid connection id ${JSON.stringify(id)}`, 'a whole number from pilotctl connections');
        const r = await client().call('disconnect', { id: Number(id) });
        ok(
          out,
          r,
          () =>
            `closed connection ${r.id} (${r.direction} ${r.peer}${r.hostname ? ` ${r.hostname}` : ''} port ${r.remotePort}, ${r.bytesIn} in / ${r.bytesOut} out)`,
        );
      }),
    );
  program
    .command('traceroute <target>')
    .description('the path to a peer (direct, or which relay and rendezvous) and the RTT of each leg')
    .option('--count <n>', 'probes per leg', '3')
    .option('--timeout <d>', 'per-probe timeout', '3s')
    .action(
      run(async (_g, out, client, target: string, o: { count: string; timeout: string }) => {
        const count = parseCount(o.count, 3);
        if (count < 1 || count > 20) throw new PilotError('BAD_ARGUMENT', '--count must be 1..20');
        const r = await client().call('traceroute', { target, count, timeoutMs: parseDuration(o.timeout, 3000) });
        ok(out, r, () =>
          [
            `traceroute to ${r.hostname ?? r.target} (${r.target}): ${r.path}`,
            `  rendezvous ${r.rendezvous.address} over ${r.rendezvous.uplink} (${r.rendezvous.online ? 'online' : 'unreachable'})`,
            ...r.hops.map((h) => `  ${h.hop}  ${h.name}${h.endpoint && !h.name.includes(h.endpoint) ? ` (${h.endpoint})` : ''}  ${fmtMs(h.rttMs)}`),
            ...r.legs.map(
              (l) => `  leg ${l.leg.padEnd(10)} ${l.endpoint}  ${l.received}/${l.sent}  min/avg/max ${fmtMs(l.minMs)} / ${fmtMs(l.avgMs)} / ${fmtMs(l.maxMs)}`,
            ),
            ...(r.peerLegMs !== null ? [`  relay -> peer and back (estimate: tunnel - rendezvous leg): ${fmtMs(r.peerLegMs)}`] : []),
          ].join('\n'),
        );
      }),
    );
  program
    .command('broadcast <network> <port>')
    .description('one datagram to every online member of a network the policy lets you reach on that port')
    .requiredOption('--data <text>', 'payload (one datagram: at most about 1180 bytes)')
    .option('--base64', '--data is base64 (binary payload)')
    .action(
      run(async (_g, out, client, net: string, port: string, o: { data: string; base64?: boolean }) => {
        const r = await client().call('broadcast', { net, port, data: o.data, encoding: o.base64 ? 'base64' : 'utf8' });
        const c = r.counts;
        ok(out, r, () =>
          [
            `broadcast ${r.bytes} bytes to ${r.name} (${r.net}) port ${r.port}: ${c.sent} sent, ${c.refused} refused by policy, ${c.offline} offline, ${c.failed} failed${c.skipped ? `, ${c.skipped} over the fan-out cap` : ''}`,
            ...r.members
              .filter((m) => m.result !== 'sent')
              .map((m) => `  ${m.result.padEnd(8)} ${m.address}${m.hostname ? ` ${m.hostname}` : ''}${m.code ? ` (${m.code})` : ''}`),
          ].join('\n'),
        );
      }),
    );
  program
    .command('lookup <target>')
    .description("upstream's name for find: a node's record by address, node id or hostname")
    .action(
      run(async (_g, out, client, target: string) => {
        const r = await client().call('find', { target });
        ok(
          out,
          r,
          () => `${r.hostname ?? '-'}  ${r.address}  ${r.public ? 'public' : 'private'}  ${r.online ? 'online' : 'offline'}\nPublic key: ${r.publicKey}`,
        );
      }),
    );
}
