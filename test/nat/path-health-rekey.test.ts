// Path health (issue 19), an idle pair keeps its direct path through many rekeys (test/nat/path-health.ts).
import { pathHealth } from './path-health.ts';

pathHealth('rekey');
