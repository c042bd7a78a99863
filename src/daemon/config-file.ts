// Where the daemon's config lives and which socket it names, without the schema:
// pilotctl resolves the socket on every call and must not load the schema library for that
// (issue 17, CLI start-up). The schema and loadConfig/saveConfig are config.ts.
import fs from 'node:fs';
import path from 'node:path';
import { LEGACY_SOCKET, MAX_SOCKET_PATH, clientSocketPath, defaultHome, defaultSocketPath } from '../ipc/socket-path.ts';

export function pilotHome(explicit?: string): string {
  return explicit ?? defaultHome();
}

export function configPath(home: string): string {
  return path.join(home, 'config.json');
}

/**
 * The socket of a daemon with this config and home: the saved one, else the
 * private default (a client also finds a daemon that listens in the home
 * because it runs without $XDG_RUNTIME_DIR, see clientSocketPath).
 */
export function configSocket(cfg: { socket?: string | undefined } | undefined, home: string, role: 'daemon' | 'client' = 'client'): string {
  if (cfg?.socket !== undefined) return cfg.socket;
  return role === 'daemon' ? defaultSocketPath(home) : clientSocketPath(home);
}

/**
 * The socket saved in home/config.json, read without validating the rest of the
 * file: undefined when there is none or it is not one the schema would accept
 * (loadConfig drops the legacy /tmp default the same way).
 */
export function savedSocket(home: string): string | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(configPath(home), 'utf8'));
  } catch {
    return undefined; // missing or unreadable: the default
  }
  const s = typeof raw === 'object' && raw !== null ? (raw as { socket?: unknown }).socket : undefined;
  return typeof s === 'string' && s.length > 0 && s.length <= MAX_SOCKET_PATH && s !== LEGACY_SOCKET ? s : undefined;
}

/** Where a daemon looks for its rendezvous when nothing else says (pilot-rendezvous's default port, this host). */
export const DEFAULT_REGISTRY = '127.0.0.1:9000';
