// Shared launcher for the bin/ scripts. The sources are TypeScript run by
// Node's built-in type stripping (Node >= 22.18). If the node on PATH is too
// old, re-run the command with the Node 24 that this package depends on.
// Inside node_modules (npm i -g) Node will not strip types, so the command is
// re-run with bin/strip-types.js preloaded; the flags stay in process.execArgv,
// so the daemon that pilotctl spawns (and service units) get them too.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

/** The `node` npm package's binary, wherever npm put it (nested or hoisted). */
function pinnedNode() {
  try {
    const pkg = createRequire(join(root, 'package.json')).resolve('node/package.json');
    const bin = join(dirname(pkg), 'bin', 'node');
    if (existsSync(bin)) return bin;
  } catch {
    /* not installed */
  }
  return undefined;
}

export async function launch(entry) {
  const target = join(root, entry);
  const canStrip = Boolean(process.features?.typescript);
  const inNodeModules = root.split(sep).includes('node_modules');
  if (canStrip && !inNodeModules) {
    await import(pathToFileURL(target).href);
    return;
  }
  const node = canStrip ? process.execPath : pinnedNode();
  if (!node) {
    process.stderr.write(`pilot needs Node >= 22.18 (this is ${process.version}); run npm install in ${root}\n`);
    process.exit(1);
  }
  const flags = inNodeModules ? ['--disable-warning=ExperimentalWarning', '--import', pathToFileURL(join(here, 'strip-types.js')).href] : [];
  const r = spawnSync(node, [...flags, target, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (r.error) {
    process.stderr.write(`pilot: cannot run ${node}: ${r.error.message}\n`);
    process.exit(1);
  }
  process.exit(r.status ?? 1);
}
