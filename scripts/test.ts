// `npm test`: typecheck, then every test/**/*.test.ts with node's test runner.
// Tests that need root + network namespaces skip themselves with a message
// when that is not possible here.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const only = process.argv.slice(2);
const files = only.length > 0 ? only : findTests('test');
// the examples have their own project: they import 'pilot-overlay/sdk' as a consumer does
for (const project of ['tsconfig.json', 'examples/tsconfig.json']) {
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project, '--noEmit'], { stdio: 'inherit' });
  if (tsc.status !== 0) {
    console.error(`typecheck failed (${project})`);
    process.exit(tsc.status ?? 1);
  }
}
// Files run one at a time: the machine has 2 cores and several tests move real traffic.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
