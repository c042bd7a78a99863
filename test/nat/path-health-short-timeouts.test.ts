// Path health (issue 19), 5 s / 8 s router UDP timeouts (some carrier NATs): the interval is learned, peers stay truthful (test/nat/path-health.ts).
import { pathHealth } from './path-health.ts';

pathHealth('5/8');
