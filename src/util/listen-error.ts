// A socket that cannot bind or listen, as a coded error naming the address,
// the flag that chose it, and what to do: EADDRINUSE was INTERNAL with no hint.
import { formatHostPort } from './hostport.ts';
import { PilotError } from './errors.ts';

/**
 * `proto`: "udp", "tcp" or "http"; `flag`: the option that set the address
 * ("--listen", "--metrics", "--http", "--alt-port"). Errors that are not about
 * the address come back as they are.
 */
export function listenError(err: unknown, proto: string, host: string, port: number, flag: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `${proto} ${formatHostPort({ host, port })}`;
  if (code === 'EADDRINUSE') {
    const ss = proto === 'udp' ? `ss -ulpn 'sport = :${port}'` : `ss -tlpn 'sport = :${port}'`;
    return new PilotError(
      'ADDRESS_IN_USE',
      `${where} is already in use by another process`,
      `pick another ${flag} HOST:PORT (port 0 = any free port), or stop the process holding port ${port} (${ss} shows it)`,
    );
  }
  if (code === 'EACCES' || code === 'EPERM')
    return new PilotError(
      'PERMISSION_DENIED',
      `not allowed to listen on ${where}`,
      port > 0 && port < 1024
        ? `ports below 1024 need root or CAP_NET_BIND_SERVICE: pick a port of 1024 or more for ${flag}`
        : `pick another ${flag} HOST:PORT`,
    );
  if (code === 'EADDRNOTAVAIL')
    return new PilotError('BAD_ARGUMENT', `${host} is not an address of this machine (${where})`, `use one of its addresses in ${flag}, or 0.0.0.0 for all`);
  return err;
}
