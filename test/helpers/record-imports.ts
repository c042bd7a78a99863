// Preloaded with `node --import` (see test/cli/startup-imports.test.ts): records
// every module URL this process loads and, on exit, writes them as JSON to
// $PILOT_RECORD_IMPORTS/<pid>.json. The flag is in process.execArgv, so the
// daemon that `pilotctl daemon start` spawns records its own imports too.
import fs from 'node:fs';
import { registerHooks } from 'node:module';
import path from 'node:path';

const dir = process.env.PILOT_RECORD_IMPORTS;
const urls: string[] = [];
registerHooks({
  load(url, context, nextLoad) {
    urls.push(url);
    return nextLoad(url, context);
  },
});
process.on('exit', () => {
  if (dir) fs.writeFileSync(path.join(dir, `${process.pid}.json`), JSON.stringify(urls));
});
