// Where the gateway and expose keep their state under $PILOT_HOME. A module of its own, with
// nothing else in it, so the daemon can ask "was anything saved?" without loading the gateway.
import fs from 'node:fs';
import path from 'node:path';

export const GATEWAY_FILE = 'gateway.json';
export const EXPOSE_FILE = 'expose.json';

/** Did a gateway mapping or an expose outlive the last run (so the gateway must come back)? */
export function hasGatewayState(home: string): boolean {
  return [GATEWAY_FILE, EXPOSE_FILE].some((f) => fs.existsSync(path.join(home, f)));
}
