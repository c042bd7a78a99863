// The daemon's --metrics address. Its own module, free of node:http and
// prom-client, so that checking the flag (pilotctl, daemon start) does not load
// the HTTP stack: an ESM import of node:http alone costs ~60 ms CPU and ~15 MB
// RSS at start-up (issue 17).
import { PilotError } from '../util/errors.ts';
import { parseHostPort, type HostPort } from '../util/hostport.ts';

/** "9101" -> 127.0.0.1:9101; otherwise HOST:PORT with an explicit port. */
export function parseMetricsAddress(text: string): HostPort {
  const t = String(text).trim();
  if (/^\d{1,5}$/.test(t)) return parseHostPort(`127.0.0.1:${t}`);
  const hp = (() => {
    try {
      return parseHostPort(t);
    } catch {
      return undefined;
    }
  })();
  if (!hp)
    throw new PilotError(
      'BAD_ARGUMENT',
      `invalid metrics address ${JSON.stringify(text)}`,
      'use HOST:PORT (e.g. 127.0.0.1:9101) or a bare port, which listens on 127.0.0.1',
    );
  return hp;
}
