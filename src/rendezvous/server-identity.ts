// The rendezvous server's Ed25519 key, persisted 0600 in its data dir so that
// daemons can pin it. Lost key = every daemon has to re-pin (by design, loudly).
import fs from 'node:fs';
import path from 'node:path';
import { PilotError } from '../util/errors.ts';
import { generateIdentity, identityFromSecretKey, type Identity } from '../registry/signing.ts';
import { writeFileAtomic } from '../util/atomic-file.ts';

export const SERVER_KEY_FILE = 'server.key';

export function loadOrCreateServerIdentity(dataDir: string): Identity {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, SERVER_KEY_FILE);
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    // identityFromSecretKey re-derives the pair from the seed, so a file whose halves disagree is refused.
    const id = identityFromSecretKey(Buffer.from(text.trim(), 'base64'));
    if (!id) {
      throw new PilotError(
        'BAD_ARGUMENT',
        `${file} does not hold an Ed25519 secret key`,
        'restore the file from a backup; deleting it makes every daemon re-pin a new server key',
      );
    }
    fs.chmodSync(file, 0o600);
    return id;
  }
  const id = generateIdentity();
  // Write-then-rename so a crash never leaves a half-written key behind.
  writeFileAtomic(file, id.secretKey.toString('base64') + '\n');
  return id;
}
