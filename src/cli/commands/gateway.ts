// pilotctl gateway start|map|unmap|list|stop and pilotctl expose <vport> <host:port>|list|remove.
// Every command talks to the running daemon: the gateway's state lives there.
//
// Privilege: the daemon owns the listeners. Run as root it adds and removes a
// /32 alias on lo per mapped address itself. When `sudo pilotctl gateway …`
// talks to a daemon running as a normal user, this root CLI makes the whole
// subnet local once (`ip route add local 10.4.0.0/16 dev lo`, removed again by
// `sudo pilotctl gateway stop`), so the daemon can bind any address in it.
// Ports below 1024 still need the daemon itself to be root or to hold
// CAP_NET_BIND_SERVICE; otherwise the daemon answers with an error that names
// the fixes (--port-offset N, --ports 8080=80). Without root at all the
// gateway maps into 127.4.0.0/16 (all of 127/8 is local on Linux).
import type { Command } from 'commander';
import type { IpcClient } from '../../ipc/client.ts';
import { addLocalRoute, removeLocalRoute, removeLocalRoutes } from '../../gateway/loopback-alias.ts';
import { DEFAULT_SUBNET, isLoopback127, parseSubnet, intToIp } from '../../gateway/subnet.ts';
import type { GatewayMapping, MappingInfo, PortMap } from '../../ipc/api.ts';
import { ok } from '../output.ts';
import type { RunWrapper } from '../action.ts';

const isRoot = (): boolean => process.geteuid?.() === 0;
const portsText = (ports: PortMap[]): string => ports.map((p) => (p.local === p.virtual ? String(p.local) : `${p.local}=${p.virtual}`)).join(',');

function url(m: MappingInfo): string {
  const p = m.ports[0]!;
  const scheme = p.virtual === 443 ? 'https' : 'http';
  const dflt = (scheme === 'http' && p.local === 80) || (scheme === 'https' && p.local === 443);
  return `${scheme}://${m.ip}${dflt ? '' : `:${p.local}`}/`;
}

function table(ms: GatewayMapping[]): string {
  if (ms.length === 0) return 'no gateway mappings';
  return [
    'IP               PORTS        TARGET               TRUSTED  CONNS  ACTIVE  REFUSED  STATE',
    ...ms.map(
      (m) =>
        `${m.ip.padEnd(16)} ${portsText(m.ports).padEnd(12)} ${m.target.padEnd(20)} ${(m.trusted ? 'yes' : 'no').padEnd(8)} ${String(m.connections).padEnd(6)} ${String(m.active).padEnd(7)} ${String(m.refused).padEnd(8)} ${m.listening ? 'listening' : `down: ${m.error ?? '-'}`}`,
    ),
  ].join('\n');
}

/**
 * Root CLI, unprivileged daemon: make the subnet (or the one address) local
 * for it, then run the daemon call; a route added here is taken back if the
 * call fails. The daemon is told the subnet, so it uses exactly that one.
 */
async function asRootFor<T>(
  client: IpcClient,
  subnet: string | undefined,
  ip: string | undefined,
  call: (subnet: string | undefined) => Promise<T>,
): Promise<T> {
  if (!isRoot()) return call(subnet);
  const st = await client.call('gateway_list');
  if (st.privileges.netAdmin) return call(subnet); // the daemon adds its own aliases
  let cidr: string | undefined;
  if (ip !== undefined) {
    if (!isLoopback127(ip)) cidr = `${ip}/32`;
  } else {
    const s = parseSubnet(subnet ?? st.subnet ?? DEFAULT_SUBNET);
    subnet = s.cidr;
    if (!isLoopback127(intToIp(s.base))) cidr = s.cidr;
  }
  const added = cidr !== undefined && (await addLocalRoute(cidr));
  try {
    return await call(subnet);
  } catch (err) {
    if (added && (await client.call('gateway_list').catch(() => undefined))?.mappings.length === 0) await removeLocalRoute(cidr!);
    throw err;
  }
}

function portParams(o: { ports?: string; portOffset?: string }): { ports?: string; portOffset?: string } {
  return { ...(o.ports !== undefined ? { ports: o.ports } : {}), ...(o.portOffset !== undefined ? { portOffset: o.portOffset } : {}) };
}

export function registerGatewayCommands(program: Command, run: RunWrapper): void {
  const gw = program.command('gateway').description('reach remote agents with unmodified tools: each target gets a local IP (curl http://10.4.0.1/)');
  gw.command('start <targets...>')
    .description('map each target (address or hostname) to the next free IP of the subnet and proxy TCP on each port to the same virtual port')
    .option('--subnet <cidr>', 'address pool (default 10.4.0.0/16; without root 127.4.0.0/16)')
    .option('--ports <list>', 'ports to proxy: 80,443 or local=virtual like 8080=80 (default 80)')
    .option('--port-offset <n>', 'listen on virtual port + N (no root needed for ports < 1024: 8000 maps 80 to 8080)')
    .action(
      run(async (_g, out, client, targets: string[], o: { subnet?: string; ports?: string; portOffset?: string }) => {
        const r = await asRootFor(client(), o.subnet, undefined, (subnet) =>
          client().call('gateway_start', { targets, ...portParams(o), ...(subnet !== undefined ? { subnet } : {}) }),
        );
        ok(out, r, () =>
          [
            ...r.mappings.map(
              (m) =>
                `mapped ${m.target} -> ${m.ip} (ports ${portsText(m.ports)})${m.trusted ? '' : '  [not trusted yet: pilotctl handshake ' + m.target + ']'}`,
            ),
            ...(r.mappings[0] ? [`try: curl ${url(r.mappings[0])}`] : []),
          ].join('\n'),
        );
      }),
    );
  gw.command('map <target> [ip]')
    .description('map one more target, at the next free IP or the one given')
    .option('--ports <list>', 'ports to proxy (default: those of gateway start)')
    .option('--port-offset <n>', 'listen on virtual port + N')
    .action(
      run(async (_g, out, client, target: string, ip: string | undefined, o: { ports?: string; portOffset?: string }) => {
        const m = await asRootFor(client(), undefined, ip, () =>
          client().call('gateway_map', { target, ...(ip !== undefined ? { ip } : {}), ...portParams(o) }),
        );
        ok(out, m, () => `mapped ${m.target} -> ${m.ip} (ports ${portsText(m.ports)})`);
      }),
    );
  gw.command('unmap <ip>')
    .description('remove a mapping (by IP or target): its listeners, connections and alias')
    .action(
      run(async (_g, out, client, ip: string) => {
        const m = await client().call('gateway_unmap', { ip });
        ok(out, m, () => `unmapped ${m.ip} (${m.target})`);
      }),
    );
  gw.command('list')
    .description('mappings with their ports, trust and connection counts')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('gateway_list');
        ok(out, r, () => table(r.mappings));
      }),
    );
  gw.command('stop')
    .description('remove every mapping and alias (they do not come back on restart)')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('gateway_stop');
        const routes = isRoot() ? await removeLocalRoutes() : [];
        ok(
          out,
          { ...r, routesRemoved: routes },
          () =>
            `gateway stopped (${r.stopped.length} mapping${r.stopped.length === 1 ? '' : 's'} removed${routes.length ? `, local routes removed: ${routes.join(', ')}` : ''})`,
        );
      }),
    );

  const ex = program
    .command('expose')
    .description('forward trusted streams on a virtual port to a local TCP service: expose 80 127.0.0.1:8080')
    .argument('<vport>', 'virtual port')
    .argument('<host:port>', 'local TCP service')
    .action(
      run(async (_g, out, client, port: string, target: string) => {
        const r = await client().call('expose', { port, target });
        ok(out, r, () => `exposed virtual port ${r.port} -> ${r.target} (trusted peers only)`);
      }),
    );
  ex.command('add <vport> <host:port>')
    .description('same as: expose <vport> <host:port>')
    .action(
      run(async (_g, out, client, port: string, target: string) => {
        const r = await client().call('expose', { port, target });
        ok(out, r, () => `exposed virtual port ${r.port} -> ${r.target} (trusted peers only)`);
      }),
    );
  ex.command('list')
    .description('exposed virtual ports')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('expose_list');
        ok(out, r, () =>
          r.exposes.length === 0
            ? 'nothing exposed'
            : [
                'VPORT  TARGET                 CONNS  ACTIVE  REFUSED  STATE',
                ...r.exposes.map(
                  (e) =>
                    `${String(e.port).padEnd(6)} ${e.target.padEnd(22)} ${String(e.connections).padEnd(6)} ${String(e.active).padEnd(7)} ${String(e.refused).padEnd(8)} ${e.listening ? 'listening' : `down: ${e.error ?? '-'}`}`,
                ),
              ].join('\n'),
        );
      }),
    );
  ex.command('remove <vport>')
    .description('stop forwarding a virtual port')
    .action(
      run(async (_g, out, client, port: string) => {
        const r = await client().call('expose_remove', { port });
        ok(out, r, () => `virtual port ${r.port} no longer exposed`);
      }),
    );
}
