// Where the daemon's IPC socket lives by default: a private directory, never a
// world-writable one (a local user who creates /tmp/pilot.sock first would
// receive pilotctl's commands). Like tailscaled and systemd user services:
// $XDG_RUNTIME_DIR/pilot/pilot.sock when the session has a runtime directory
// (0700, owned by the user, tmpfs), otherwise next to the state, in
// $PILOT_HOME (0700): ~/.pilot/pilot.sock. The runtime directory serves the
// default home only: two daemons with their own homes must not share a socket.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The default socket of old versions, in a world-writable directory; a saved config that names it is migrated. */
export const LEGACY_SOCKET = '/tmp/pilot.sock';
/** sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS. */
export const MAX_SOCKET_PATH = 104;

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.PILOT_HOME || path.join(os.homedir(), '.pilot');
}

/** Where a daemon with this home listens when nothing else is configured. */
export function defaultSocketPath(home: string = defaultHome(), env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && path.resolve(home) === path.join(os.homedir(), '.pilot')) return path.join(xdg, 'pilot', 'pilot.sock');
  return homeSocket(home);
}

function homeSocket(home: string): string {
  return path.join(path.resolve(home), 'pilot.sock');
}

/**
 * Where a client looks for that daemon: the runtime-directory socket if it is
 * there, else the one in the home. The daemon may run without the session's
 * $XDG_RUNTIME_DIR (a system unit with User=, sudo), so it listens in the
 * home while the user's shell has a runtime directory. Both are private.
 */
export function clientSocketPath(home: string = defaultHome(), env: NodeJS.ProcessEnv = process.env): string {
  const first = defaultSocketPath(home, env);
  if (fs.existsSync(first) || !fs.existsSync(homeSocket(home))) return first;
  return homeSocket(home);
}
