// Hostnames are single RFC 1123 labels, stored lowercase. Names that pilotctl
// would read as a node id ("42", "0x2a") are refused: they could never be resolved by name.
import { PilotError } from '../util/errors.ts';

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const HINT = 'a hostname is 1-63 letters, digits and hyphens, not starting or ending with a hyphen, and not a bare number (e.g. agent-alpha)';

export function normalizeHostname(input: unknown): string {
  if (typeof input !== 'string' || input.length === 0 || input.length > 63) {
    throw new PilotError('BAD_ARGUMENT', 'hostname must be 1-63 characters', HINT);
  }
  const h = input.toLowerCase();
  if (!LABEL_RE.test(h) || /^\d+$/.test(h) || /^0x[0-9a-f]{1,8}$/.test(h)) {
    throw new PilotError('BAD_ARGUMENT', `invalid hostname ${JSON.stringify(input)}`, HINT);
  }
  return h;
}
