// IPC methods for the gateway (remote agents as local IPs) and expose (a
// virtual port forwarded to a local TCP service). The state lives in the
// daemon (d.gateway), so every pilotctl call talks to the running gateway.
import { formatAddress } from '../wire/address.ts';
import type { Handlers } from '../ipc/server.ts';
import { parsePortSpec, type PortMap } from '../gateway/port-spec.ts';
import type { MappingInfo } from '../gateway/gateway.ts';
import type { Daemon } from './daemon.ts';
import { parseTarget } from './targets.ts';

/** --ports (string) and --port-offset: undefined when neither was given. */
function ports(p: { ports: string | undefined; portOffset: number }): PortMap[] | undefined {
  if (p.ports === undefined && p.portOffset === 0) return undefined;
  return parsePortSpec(p.ports ?? '80', p.portOffset);
}

type GatewayMethod = 'gateway_start' | 'gateway_map' | 'gateway_unmap' | 'gateway_list' | 'gateway_stop' | 'expose' | 'expose_list' | 'expose_remove';

export function gatewayHandlers(d: Daemon): Pick<Handlers, GatewayMethod> {
  // Targets are kept canonical: an address as 0:0000.0000.002A, a hostname in lower case.
  const canonical = (t: string): string => {
    const parsed = parseTarget(t, d.address?.network ?? 0);
    return 'address' in parsed ? formatAddress(parsed.address) : parsed.hostname;
  };
  const trusted = (target: string): boolean => d.trust.listTrusted().some((t) => t.peer === target || t.hostname === target);
  const withTrust = (m: MappingInfo): MappingInfo & { trusted: boolean } => ({ ...m, trusted: trusted(m.target) });

  return {
    gateway_start: async (p) => {
      const targets = p.targets.map(canonical);
      const pm = ports(p);
      const subnet = p.subnet;
      const mappings = await d.gateway.gateway.start(targets, { ...(pm ? { ports: pm } : {}), ...(subnet !== undefined ? { subnet } : {}) });
      return { ...d.gateway.gateway.list(), mappings: mappings.map(withTrust) };
    },
    gateway_map: async (p) => {
      const pm = ports(p);
      const ip = p.ip;
      const m = await d.gateway.gateway.map(canonical(p.target), { ...(pm ? { ports: pm } : {}), ...(ip !== undefined ? { ip } : {}) });
      return withTrust(m);
    },
    gateway_unmap: (p) => d.gateway.gateway.unmap(p.ip),
    gateway_list: () => {
      const l = d.gateway.gateway.list();
      return { ...l, mappings: l.mappings.map(withTrust) };
    },
    gateway_stop: async () => ({ stopped: await d.gateway.gateway.stop() }),

    expose: (p) => d.gateway.expose.add(p.port, p.target),
    expose_list: () => ({ exposes: d.gateway.expose.list() }),
    expose_remove: (p) => d.gateway.expose.remove(p.port),
  };
}
