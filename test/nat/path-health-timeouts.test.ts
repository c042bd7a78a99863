// Path health (issue 19), 10 s / 30 s router UDP timeouts: keepalives hold them, as before (test/nat/path-health.ts).
import { pathHealth } from './path-health.ts';

pathHealth('10/30');
