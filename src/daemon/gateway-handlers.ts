// IPC methods for the gateway (remote agents as local IPs) and expose (a
// virtual port forwarded to a local TCP service). The state lives in the
// daemon (d.gatewayService(), loaded on first use), so every pilotctl call talks to the running gateway.
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
      const g = (await d.gatewayService()).gateway;
      const targets = p.targets.map(canonical);
      const pm = ports(p);
      const subnet = p.subnet;
      const mappings = await g.start(targets, { ...(pm ? { ports: pm } : {}), ...(subnet !== undefined ? { subnet } : {}) });
      return { ...g.list(), mappings: mappings.map(withTrust) };
    },
    gateway_map: async (p) => {
      const pm = ports(p);
      const ip = p.ip;
      const m = await (await d.gatewayService()).gateway.map(canonical(p.target), { ...(pm ? { ports: pm } : {}), ...(ip !== undefined ? { ip } : {}) });
      return withTrust(m);
    },
    gateway_unmap: async (p) => (await d.gatewayService()).gateway.unmap(p.ip),
    gateway_list: async () => {
      const l = (await d.gatewayService()).gateway.list();
      return { ...l, mappings: l.mappings.map(withTrust) };
    },
    gateway_stop: async () => ({ stopped: await (await d.gatewayService()).gateway.stop() }),

    expose: async (p) => (await d.gatewayService()).expose.add(p.port, p.target),
    expose_list: async () => ({ exposes: (await d.gatewayService()).expose.list() }),
    expose_remove: async (p) => (await d.gatewayService()).expose.remove(p.port),
  };
}
