// Bearer token guarding the dashboard's admin API. Given on the command line,
// or generated once and kept 0600 in the data dir (read it there to log in).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PilotError } from '../util/errors.ts';

export const ADMIN_TOKEN_FILE = 'admin-token';
const MIN_TOKEN_CHARS = 16;

export function checkAdminToken(token: string): string {
  if (token.length < MIN_TOKEN_CHARS || /\s/.test(token)) {
    throw new PilotError('BAD_ARGUMENT', `admin token too short or has spaces (${token.length} chars)`, `use at least ${MIN_TOKEN_CHARS} non-space characters, e.g. openssl rand -base64 32`);
  }
  return token;
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
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, token + '\n', { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, file);
  return token;
}

/** Constant-time check of an Authorization header (hashing first makes the lengths equal). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '');
  const given = crypto.createHash('sha256').update(m?.[1] ?? '').digest();
  const want = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(given, want) && m !== null;
}
