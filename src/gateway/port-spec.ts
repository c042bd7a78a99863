// Which local TCP ports a gateway mapping listens on, and the virtual port each
// one reaches: "--ports 80,443" (same numbers), "8080=80" (local=virtual), and
// "--port-offset N" (local = virtual + N) for running without privileged ports.
import { PilotError } from '../util/errors.ts';

export interface PortMap {
  /** TCP port on the mapped local address. */
  local: number;
  /** Virtual port of the target agent. */
  virtual: number;
}

function port(text: string, what: string, min: number): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < min || Number(text) > 65535) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `invalid ${what} ${JSON.stringify(text)}`,
      `a number in ${min}..65535; --ports takes e.g. 80,443 or 8080=80 (local=virtual)`,
    );
  }
  return Number(text);
}

export function parsePortSpec(spec: string, offset = 0): PortMap[] {
  if (!Number.isInteger(offset) || offset < 0 || offset > 65535) {
    throw new PilotError('BAD_ARGUMENT', `invalid port offset ${offset}`, 'e.g. --port-offset 8000 maps virtual port 80 to local port 8080');
  }
  const out: PortMap[] = [];
  for (const item of String(spec)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = item.indexOf('=');
    const map =
      eq >= 0
        ? { local: port(item.slice(0, eq), 'local port', 1), virtual: port(item.slice(eq + 1), 'virtual port', 0) }
        : { local: port(item, 'port', 0) + offset, virtual: port(item, 'port', 0) };
    if (map.local < 1 || map.local > 65535)
      throw new PilotError('BAD_ARGUMENT', `local port ${map.local} out of range (virtual ${map.virtual} + offset ${offset})`, 'use a smaller --port-offset');
    if (out.some((o) => o.local === map.local))
      throw new PilotError('BAD_ARGUMENT', `local port ${map.local} given twice`, 'each local port can reach one virtual port');
    out.push(map);
  }
  if (out.length === 0) throw new PilotError('BAD_ARGUMENT', 'no ports given', 'e.g. --ports 80 or --ports 80,443');
  if (out.length > 64) throw new PilotError('BAD_ARGUMENT', 'at most 64 ports per mapping');
  return out;
}

export function formatPortSpec(ports: PortMap[]): string {
  return ports.map((p) => (p.local === p.virtual ? String(p.local) : `${p.local}=${p.virtual}`)).join(',');
}
