// Small JSON state files under $PILOT_HOME (gateway.json, expose.json), kept
// apart from config.json: written atomically, owner-only (0600).
import fs from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import { writeJsonAtomic } from '../util/atomic-file.ts';
import { issuesText, withMessages } from '../util/schema.ts';

export function readState<T>(home: string, name: string, schema: v.GenericSchema<unknown, T>, empty: T): { state: T; error?: string } {
  const p = path.join(home, name);
  if (!fs.existsSync(p)) return { state: empty };
  try {
    const parsed = v.safeParse(withMessages(schema), JSON.parse(fs.readFileSync(p, 'utf8')));
    if (parsed.success) return { state: parsed.output };
    return { state: empty, error: `invalid ${p}: ${issuesText(parsed.issues)}` };
  } catch (err) {
    return { state: empty, error: `cannot read ${p}: ${(err as Error).message}` };
  }
}

export function writeState(home: string, name: string, state: unknown): void {
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const p = path.join(home, name);
  writeJsonAtomic(p, state);
}
