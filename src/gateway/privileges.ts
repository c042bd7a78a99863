// What this process may do to the local network stack: add addresses to lo
// (root or CAP_NET_ADMIN) and bind TCP ports below 1024 (root or
// CAP_NET_BIND_SERVICE, unless net.ipv4.ip_unprivileged_port_start is lower).
// Read from /proc, so a daemon granted capabilities without root is recognised.
import fs from 'node:fs';
import { PilotError } from '../util/errors.ts';

export interface Privileges {
  /** May add/remove addresses on lo. */
  netAdmin: boolean;
  /** May bind ports below unprivilegedPortStart. */
  bindLow: boolean;
  unprivilegedPortStart: number;
}

const CAP_NET_BIND_SERVICE = 10n;
const CAP_NET_ADMIN = 12n;

export function currentPrivileges(): Privileges {
  let caps = process.geteuid?.() === 0 ? ~0n : 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) caps = BigInt(`0x${m[1]}`);
  } catch {
    /* not Linux: fall back to the uid */
  }
  let start = 1024;
  try {
    start = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim());
  } catch {
    /* default */
  }
  const has = (bit: bigint): boolean => ((caps >> bit) & 1n) === 1n;
  return { netAdmin: has(CAP_NET_ADMIN), bindLow: has(CAP_NET_BIND_SERVICE), unprivilegedPortStart: Number.isFinite(start) ? start : 1024 };
}

/** The clear error for a port the daemon may not bind, naming every fix. */
export function privilegedPortError(ip: string, local: number, virtual: number, start: number): PilotError {
  return new PilotError(
    'PERMISSION_DENIED',
    `cannot listen on ${ip}:${local}: ports below ${start} need root or CAP_NET_BIND_SERVICE, and the daemon has neither`,
    `run the daemon as root (sudo pilotctl daemon start), or grant it the capability (sudo setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v node)")"), ` +
      `or use a high local port: --port-offset 8000 (virtual ${virtual} -> local ${local + 8000}) or --ports ${local + 8000 > 65535 ? 8080 : local + 8000}=${virtual}`,
  );
}

/** Throws the error above before anything is set up, so a refused map leaves no trace. */
export function checkPortAllowed(ip: string, local: number, virtual: number, p: Privileges): void {
  if (local < p.unprivilegedPortStart && !p.bindLow) throw privilegedPortError(ip, local, virtual, p.unprivilegedPortStart);
}
