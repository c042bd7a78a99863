// `npm run build` (npm pack/publish run it as prepack): src/ compiled to dist/
// as JavaScript + .d.ts, so a project that installs this package can import
// 'pilot-overlay/sdk' (Node will not strip types inside node_modules). All of
// src/ is compiled, not only src/sdk: the SDK's embedded node runs the daemon.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const t0 = Date.now();
rmSync(join(root, 'dist'), { recursive: true, force: true }); // no stale files from deleted sources
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
});
if (tsc.status !== 0) {
  console.error('build failed');
  process.exit(tsc.status ?? 1);
}
console.log(`built dist/ in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
