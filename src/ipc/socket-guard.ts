// Checks on the IPC socket path, on both ends, so a socket another local user
// planted (or a symlink to one) is never trusted. The client checks before it
// connects: a squatter would otherwise receive message text, tasks and files
// meant for the daemon. The daemon checks before it removes a stale socket
// and binds: it never deletes or follows what is not its own socket.
// Ownership means the effective uid: for root the socket must be root's, except
// under sudo, where it may also be the invoking user's (`sudo pilotctl gateway
// start` drives that user's daemon; SUDO_UID is set by sudo, not by the user).
// (Linux has SO_PEERCRED but Node does not expose it; a 0700 directory or a
// sticky one such as /tmp keeps others from swapping the file after the check.)
import fs from 'node:fs';
import path from 'node:path';
import { PilotError } from '../util/errors.ts';
import { MAX_SOCKET_PATH } from './socket-path.ts';

const euid = (): number => process.geteuid?.() ?? 0;

/** Whose socket a client may talk to: ours; as root under sudo, also the invoking user's. */
function clientOwners(): number[] {
  const me = euid();
  const sudo = process.env.SUDO_UID;
  if (me === 0 && sudo !== undefined && /^\d{1,10}$/.test(sudo)) return [me, Number(sudo)];
  return [me];
}

function unsafe(message: string, hint: string): PilotError {
  return new PilotError('UNSAFE_SOCKET', message, hint);
}

function lstat(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The socket itself: ours, a socket, not a symlink. Absent is fine (nothing to check). */
function checkEntry(p: string, st: fs.Stats, role: 'client' | 'daemon'): void {
  const fix =
    role === 'client'
      ? `if no daemon of yours runs, remove it (rm ${p}) and start yours: pilotctl daemon start; or point at your daemon with --socket / PILOT_SOCKET`
      : `remove it (rm ${p}) if you trust nothing there, or start the daemon on a private path: pilotctl daemon start --socket ~/.pilot/pilot.sock`;
  if (st.isSymbolicLink()) throw unsafe(`${p} is a symlink (to ${readlinkSafe(p)}); a symlinked IPC socket is refused`, fix);
  if (!st.isSocket()) throw unsafe(`${p} is not a unix socket`, fix);
  const owners = role === 'client' ? clientOwners() : [euid()];
  if (!owners.includes(st.uid)) throw unsafe(`${p} belongs to uid ${st.uid}, not to us (uid ${euid()}): another local user may have planted it`, fix);
}

function readlinkSafe(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '?';
  }
}

/** pilotctl / SDK: refuse a socket that is not the daemon's of this user. */
export function checkSocketBeforeConnect(p: string): void {
  const st = lstat(p);
  if (st) checkEntry(p, st, 'client');
}

/**
 * The daemon: make the socket's directory (0700 when we create it), check it
 * is ours (or root's, e.g. /tmp) and not writable by others unless sticky,
 * and check what already sits at the path. Returns whether a socket of ours
 * is there (stale or live: the caller probes it).
 */
export function prepareListenPath(p: string): { existing: boolean } {
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `socket path too long (${Buffer.byteLength(p)} bytes, unix sockets allow ${MAX_SOCKET_PATH}): ${p}`,
      'choose a shorter one: pilotctl daemon start --socket PATH (or PILOT_SOCKET)',
    );
  }
  const dir = path.dirname(p);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const d = fs.lstatSync(dir);
  if (d.isSymbolicLink() || !d.isDirectory())
    throw unsafe(`the socket directory ${dir} is a symlink or not a directory`, `use a real directory you own: --socket ~/.pilot/pilot.sock`);
  if (d.uid !== euid() && d.uid !== 0)
    throw unsafe(
      `the socket directory ${dir} belongs to uid ${d.uid}, not to us (uid ${euid()})`,
      `use a directory you own (remove ${dir} if you did not make it), e.g. --socket ~/.pilot/pilot.sock`,
    );
  const sticky = (d.mode & 0o1000) !== 0;
  if ((d.mode & 0o022) !== 0 && !sticky)
    throw unsafe(
      `the socket directory ${dir} is writable by other users (mode ${(d.mode & 0o7777).toString(8)}): they could replace the socket`,
      `chmod 700 ${dir}, or use a private directory: --socket ~/.pilot/pilot.sock`,
    );
  const st = lstat(p);
  if (!st) return { existing: false };
  checkEntry(p, st, 'daemon');
  return { existing: true };
}
