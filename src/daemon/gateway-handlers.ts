// IPC methods for the gateway (remote agents as local IPs) and expose (a
// virtual port forwarded to a local TCP service). The state lives in the
// daemon (d.gateway), so every pilotctl call talks to the running gateway.
import { formatAddress, parsePort } from '../wire/address.ts';
import { PilotError } from '../util/errors.ts';
import type { Handler } from '../ipc/server.ts';
import { parsePortSpec, type PortMap } from '../gateway/port-spec.ts';
import type { MappingInfo } from '../gateway/gateway.ts';
import type { Daemon } from './daemon.ts';
import { parseTarget } from './targets.ts';
import { str } from './ipc-params.ts';

/** --ports (string) and --port-offset: undefined when neither was given. */
function ports(p: Record<string, unknown>): PortMap[] | undefined {
  const spec = p.ports === undefined || p.ports === null ? undefined : String(p.ports);
  const offset = p.portOffset === undefined || p.portOffset === null ? 0 : Number(p.portOffset);
  if (spec === undefined && offset === 0) return undefined;
  return parsePortSpec(spec ?? '80', offset);
}

export function gatewayHandlers(d: Daemon): Record<string, Handler> {
  // Targets are kept canonical: an address as 0:0000.0000.002A, a hostname in lower case.
  const canonical = (t: string): string => {
    const parsed = parseTarget(t, d.address?.network ?? 0);
    return 'address' in parsed ? formatAddress(parsed.address) : parsed.hostname;
  };
  const trusted = (target: string): boolean => d.trust.listTrusted().some((t) => t.peer === target || t.hostname === target);
  const withTrust = (m: MappingInfo): MappingInfo & { trusted: boolean } => ({ ...m, trusted: trusted(m.target) });

  return {
    gateway_start: async (p) => {
      const raw = p.targets;
      if (!Array.isArray(raw) || raw.length === 0 || raw.length > 256 || !raw.every((t) => typeof t === 'string')) {
        throw new PilotError('BAD_ARGUMENT', 'give at least one target (address or hostname)', 'e.g. pilotctl gateway start --ports 80 0:0000.0000.037D');
      }
      const targets = (raw as string[]).map(canonical);
      const pm = ports(p);
      const subnet = str(p, 'subnet', false, 1000);
      const mappings = await d.gateway.gateway.start(targets, { ...(pm ? { ports: pm } : {}), ...(subnet !== undefined ? { subnet } : {}) });
      return { ...d.gateway.gateway.list(), mappings: mappings.map(withTrust) };
    },
    gateway_map: async (p) => {
      const pm = ports(p);
      const ip = str(p, 'ip', false, 1000);
      const m = await d.gateway.gateway.map(canonical(str(p, 'target', true, 1000)!), { ...(pm ? { ports: pm } : {}), ...(ip !== undefined ? { ip } : {}) });
      return withTrust(m);
    },
    gateway_unmap: (p) => d.gateway.gateway.unmap(str(p, 'ip', true, 1000)!),
    gateway_list: () => {
      const l = d.gateway.gateway.list();
      return { ...l, mappings: l.mappings.map(withTrust) };
    },
    gateway_stop: async () => ({ stopped: await d.gateway.gateway.stop() }),

    expose: (p) => d.gateway.expose.add(parsePort(p.port as number | string), str(p, 'target', true, 1000)!),
    expose_list: () => ({ exposes: d.gateway.expose.list() }),
    expose_remove: (p) => d.gateway.expose.remove(parsePort(p.port as number | string)),
  };
}
