// `npm run build` (npm pack/publish run it as prepack): src/ compiled to dist/
// as JavaScript + .d.ts (+ .d.ts.map pointing back at the shipped src/), so an
// installed package runs on the user's Node without type stripping: the bins
// (bin/launch.js), the daemon that `pilotctl daemon start` spawns and the
// service units all run dist/. All of src/ is compiled, not only src/sdk: the
// SDK's embedded node runs the daemon. Files that are not TypeScript (the
// rendezvous dashboard's html/css/js) are copied beside the compiled code. The optional
// UDP GSO addon is built too when missing (scripts/native-build.js).
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');
const t0 = Date.now();
rmSync(dist, { recursive: true, force: true }); // no stale files from deleted sources
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
});
if (tsc.status !== 0) {
  console.error('build failed');
  process.exit(tsc.status ?? 1);
}
let assets = 0;
for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || entry.name.endsWith('.ts') || entry.name.endsWith('.md')) continue;
  const from = join(entry.parentPath, entry.name);
  cpSync(from, join(dist, relative(src, from)));
  assets++;
}
// the optional UDP GSO addon: `npm pack` ships it built (package.json "files"), users run no install script
spawnSync(process.execPath, [join(root, 'scripts/native-build.js'), '--if-missing'], { cwd: root, stdio: 'inherit' });
console.log(`built dist/ in ${((Date.now() - t0) / 1000).toFixed(1)} s (${assets} assets copied)`);
