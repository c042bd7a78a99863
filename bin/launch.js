// Shared launcher for the bin/ scripts. The sources are TypeScript run by
// Node's built-in type stripping (Node >= 22.18). If the node on PATH is too
// old, re-run the command with the Node 24 that this package pins.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export async function launch(entry) {
  const target = join(root, entry);
  if (process.features && process.features.typescript) {
    await import(pathToFileURL(target).href);
    return;
  }
  const pinned = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    process.stderr.write(`pilot needs Node >= 22.18 (this is ${process.version}); run npm install in ${root}\n`);
    process.exit(1);
  }
  const r = spawnSync(pinned, [target, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
