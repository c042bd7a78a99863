// Small JSON state files under $PILOT_HOME (gateway.json, expose.json), kept
// apart from config.json: written atomically, owner-only (0600).
import fs from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { writeJsonAtomic } from '../util/atomic-file.ts';

export function readState<T>(home: string, name: string, schema: z.ZodType<T>, empty: T): { state: T; error?: string } {
  const p = path.join(home, name);
  if (!fs.existsSync(p)) return { state: empty };
  try {
    const parsed = schema.safeParse(JSON.parse(fs.readFileSync(p, 'utf8')));
    if (parsed.success) return { state: parsed.data };
    return { state: empty, error: `invalid ${p}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` };
  } catch (err) {
    return { state: empty, error: `cannot read ${p}: ${(err as Error).message}` };
  }
}

export function writeState(home: string, name: string, state: unknown): void {
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const p = path.join(home, name);
  writeJsonAtomic(p, state);
}
