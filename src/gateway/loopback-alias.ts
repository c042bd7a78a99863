// Making a gateway address local. 127.0.0.0/8 is local already. Anything else
// gets a /32 alias on lo (`ip addr add IP/32 dev lo`), which needs root or
// CAP_NET_ADMIN; the alias is removed again on unmap/stop. A subnet may also be
// made local once as a whole by root (`ip route add local CIDR dev lo`): that is
// how `sudo pilotctl gateway start` serves a daemon that runs as a normal user.
import type { execFile as ExecFile } from 'node:child_process';
import net from 'node:net';
import { PilotError } from '../util/errors.ts';
import { isLoopback127 } from './subnet.ts';

// node:child_process is loaded on the first `ip` call, not with every daemon (most never map a
// gateway address): ~2 MB of an idle daemon's RSS.
const execFile: typeof ExecFile = ((...args: Parameters<typeof ExecFile>) =>
  process.getBuiltinModule('node:child_process').execFile(...args)) as typeof ExecFile;

/** Marks the local routes pilotctl adds, so `gateway stop` removes only its own. */
export const ROUTE_PROTO = '157';

function ip(args: string[]): Promise<{ ok: boolean; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new PilotError('INTERNAL', 'the ip command (iproute2) is not installed', 'install it: apt-get install iproute2'));
        return;
      }
      resolve({ ok: !err, stderr: String(stderr).trim() });
    });
  });
}

/** Can a socket be bound to this address here (is it local)? */
export function isLocalAddress(addr: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, addr, () => s.close(() => resolve(true)));
  });
}

export function notLocalError(addr: string, subnet: string): PilotError {
  return new PilotError(
    'PERMISSION_DENIED',
    `cannot make ${addr} a local address: adding a loopback alias needs root or CAP_NET_ADMIN, and the daemon has neither`,
    `run the gateway command with sudo (it makes ${subnet} local for the daemon), or run the daemon as root, or map without root into 127.0.0.0/8: --subnet 127.4.0.0/16`,
  );
}

/** Add IP/32 to lo. Returns false when it was there already (then it is not ours to remove). */
export async function addAlias(addr: string): Promise<boolean> {
  const r = await ip(['addr', 'add', `${addr}/32`, 'dev', 'lo']);
  if (r.ok) return true;
  if (/exists|already assigned/i.test(r.stderr)) return false;
  throw new PilotError('BAD_ARGUMENT', `cannot add ${addr} to lo: ${r.stderr}`, 'run the daemon as root, or use --subnet 127.4.0.0/16');
}

export async function removeAlias(addr: string): Promise<void> {
  await ip(['addr', 'del', `${addr}/32`, 'dev', 'lo']);
}

export async function hasAlias(addr: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('ip', ['-4', '-o', 'addr', 'show', 'dev', 'lo'], (err, stdout) => resolve(!err && new RegExp(`inet ${addr.replace(/\./g, '\\.')}/`).test(stdout)));
  });
}

/**
 * Make the address usable by a listener. `owned` says whether we added the
 * alias (and must remove it); a restored mapping passes what it knew before
 * (after a crash the alias is still there, and still ours).
 */
export async function ensureLocal(addr: string, canAlias: boolean, subnet: string, wasOwned = false): Promise<{ owned: boolean }> {
  if (isLoopback127(addr)) return { owned: false };
  if (await isLocalAddress(addr)) return { owned: wasOwned };
  if (!canAlias) throw notLocalError(addr, subnet);
  return { owned: await addAlias(addr) };
}

/** Root side of `sudo pilotctl gateway start`: every address of the subnet becomes local. */
export async function addLocalRoute(cidr: string): Promise<boolean> {
  const r = await ip(['route', 'add', 'local', cidr, 'dev', 'lo', 'proto', ROUTE_PROTO]);
  if (r.ok) return true;
  if (/exists/i.test(r.stderr)) return false;
  throw new PilotError('BAD_ARGUMENT', `cannot make ${cidr} local: ${r.stderr}`, 'run with sudo, or use --subnet 127.4.0.0/16');
}

export async function removeLocalRoute(cidr: string): Promise<void> {
  await ip(['route', 'del', 'local', cidr, 'dev', 'lo', 'table', 'local', 'proto', ROUTE_PROTO]);
}

/** Remove the local routes pilotctl added (marked with ROUTE_PROTO). */
export async function removeLocalRoutes(): Promise<string[]> {
  const list = await new Promise<string>((resolve) => {
    execFile('ip', ['-4', 'route', 'show', 'table', 'local', 'proto', ROUTE_PROTO], (err, stdout) => resolve(err ? '' : stdout));
  });
  const removed: string[] = [];
  for (const line of list.split('\n')) {
    const m = /^local (\S+) dev lo/.exec(line.trim());
    if (!m) continue;
    const r = await ip(['route', 'del', 'local', m[1]!, 'dev', 'lo', 'table', 'local', 'proto', ROUTE_PROTO]);
    if (r.ok) removed.push(m[1]!);
  }
  return removed;
}
