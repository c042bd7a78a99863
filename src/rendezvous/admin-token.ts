// Bearer token guarding the dashboard's admin API. Given in $PILOT_ADMIN_TOKEN,
// in a file (--admin-token-file), on the command line (visible to every local
// user in ps: accepted, with a warning), or generated once and kept 0600 in the
// data dir (read it there to log in).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PilotError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';

export const ADMIN_TOKEN_FILE = 'admin-token';
const MIN_TOKEN_CHARS = 16;

export function checkAdminToken(token: string): string {
  if (token.length < MIN_TOKEN_CHARS || /\s/.test(token)) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `admin token too short or has spaces (${token.length} chars)`,
      `use at least ${MIN_TOKEN_CHARS} non-space characters, e.g. openssl rand -base64 32`,
    );
  }
  return token;
}

export interface AdminTokenSources {
  /** --admin-token: argv is world-readable (/proc/PID/cmdline, ps). */
  flag?: string | undefined;
  /** --admin-token-file. */
  file?: string | undefined;
  /** $PILOT_ADMIN_TOKEN (the environment of a process is readable by its owner and root only). */
  env?: string | undefined;
}

/**
 * The configured token, or undefined (then one is generated into the data dir).
 * `warn` gets one line per thing the operator should fix.
 */
export function resolveAdminToken(src: AdminTokenSources, warn: (text: string) => void): string | undefined {
  const given = [src.flag !== undefined, src.file !== undefined].filter(Boolean).length;
  if (given > 1)
    throw new PilotError(
      'BAD_ARGUMENT',
      'both --admin-token and --admin-token-file given',
      'keep one: --admin-token-file (or $PILOT_ADMIN_TOKEN) keeps the token out of the process list',
    );
  if (src.flag !== undefined) {
    warn(
      '--admin-token is visible to every local user in the process list (ps, /proc/PID/cmdline): pass it in $PILOT_ADMIN_TOKEN or --admin-token-file instead',
    );
    return checkAdminToken(src.flag);
  }
  if (src.file !== undefined) return readAdminTokenFile(src.file, warn);
  if (src.env !== undefined && src.env !== '') return checkAdminToken(src.env);
  return undefined;
}

function readAdminTokenFile(file: string, warn: (text: string) => void): string {
  let text: string;
  let mode: number;
  try {
    text = fs.readFileSync(file, 'utf8');
    mode = fs.statSync(file).mode;
  } catch (err) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `cannot read the admin token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      'create it with: umask 077; openssl rand -base64 32 > FILE',
    );
  }
  if ((mode & 0o077) !== 0) warn(`${file} is readable by other users (mode ${(mode & 0o777).toString(8)}): chmod 600 ${file}`);
  return checkAdminToken(text.trim());
}

export function loadOrCreateAdminToken(dataDir: string): string {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, ADMIN_TOKEN_FILE);
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    fs.chmodSync(file, 0o600);
    return checkAdminToken(text);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = crypto.randomBytes(32).toString('base64url');
  writeFileAtomic(file, token + '\n');
  return token;
}

/** Constant-time check of an Authorization header (hashing first makes the lengths equal). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '');
  const given = crypto
    .createHash('sha256')
    .update(m?.[1] ?? '')
    .digest();
  const want = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(given, want) && m !== null;
}
