// `npm test`: lint and format check (Biome), typecheck, then every test/**/*.test.ts with node's test runner, in tiers:
//   unit         no processes, no namespaces: pure logic and in-process sockets (seconds)
//   integration  real daemons and rendezvous processes, PostgreSQL, npm pack, Chromium
//   lab          root + network namespaces (NAT lab, spoofed sources, loss)
// The unit tier runs first, so a broken build fails in well under a minute; the other
// two run together with a few files at a time (each test makes its own ports, homes and
// namespaces, so files do not collide). A file's tier is read from what it imports
// (transitively, within test/), so a new test lands in the right tier by itself.
// Tests that need root + network namespaces skip themselves with a message when that is
// not possible here.
//
//   node scripts/test.ts                 typecheck + all tiers (what CI runs)
//   node scripts/test.ts --tier unit     typecheck + the unit tier (`npm run test:unit`)
//   node scripts/test.ts test/a.test.ts  typecheck + just these files
import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export type Tier = 'unit' | 'integration' | 'lab';

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const IMPORT = /(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g;

/** Every test/ file `file` imports, directly or not (src/ is not followed: it is what is tested). */
function testImports(file: string, seen = new Set<string>()): Set<string> {
  for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    const spec = m[1]!;
    if (!spec.startsWith('.')) continue;
    const p = resolve(dirname(file), spec);
    if (!p.startsWith(`${resolve('test')}/`)) continue;
    if (seen.has(p)) continue;
    seen.add(p);
    try {
      testImports(p, seen);
    } catch {
      // a fixture read as text, or a missing file: the typecheck reports real problems
    }
  }
  return seen;
}

/** What a test file needs, from its own text and its test helpers'. */
export function tierOf(file: string): Tier {
  const texts = [file, ...testImports(file)].map((f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  });
  const all = texts.join('\n');
  if (/helpers\/(netns|natlab)\.ts/.test(all)) return 'lab';
  if (/node:child_process|helpers\/(cluster|postgres|package)\.ts/.test(all)) return 'integration';
  return 'unit';
}

/**
 * Files that take longest (serial wall time on the 2-core box, most first) start first, so
 * the run does not end waiting on one long file started last (longest-processing-time
 * scheduling). Others keep their order after these.
 */
const LONGEST = [
  'test/nat/matrix.test.ts', // ~250 s
  'test/nat/path-health-short-timeouts.test.ts', // ~70 s each (an idle minute)
  'test/nat/path-health-timeouts.test.ts',
  'test/nat/path-health-rekey.test.ts',
  'test/rendezvous/multi-instance.test.ts', // ~110 s
  'test/os-service/global-install.test.ts', // ~100 s
  'test/sdk/package-consumer.test.ts', // ~85 s
  'test/sdk/node.test.ts',
  'test/nat/roaming.test.ts',
  'test/nat/roaming-direct.test.ts', // ~80 s
  'test/python/python.test.ts', // ~40 s: 31 Python tests against real daemons, a venv
  'test/services/files.test.ts',
  'test/sdk/examples.test.ts',
  'test/services/data-file.test.ts',
  'test/sdk/streams.test.ts',
];

/** Run before the others, one at a time (see main). */
// lossy-bbr asserts a throughput ratio (bbr vs cubic under 10% loss): beside four other files both
// transfers became CPU-bound and the ratio collapsed (3.8 vs 4.3 MB/s; alone 7x).
const ALONE = ['test/nat/matrix.test.ts', 'test/nat/fleet.test.ts', 'test/daemon/lossy-bbr.test.ts'];

function longestFirst(files: string[]): string[] {
  const rank = (f: string) => {
    const i = LONGEST.indexOf(f);
    return i < 0 ? LONGEST.length : i;
  };
  return [...files].sort((a, b) => rank(a) - rank(b)); // stable: the rest keep their order
}

/** Biome: lint and format check of the whole tree (`npm run lint`; `npm run format` rewrites). */
function lint(): void {
  const r = spawnSync(process.execPath, ['node_modules/@biomejs/biome/bin/biome', 'ci', '.'], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('lint or format check failed: npm run format fixes the formatting; see biome.json for the rules');
    process.exit(r.status ?? 1);
  }
}

function typecheck(): void {
  // the examples have their own project: they import 'pilot-overlay/sdk' as a consumer does
  for (const project of ['tsconfig.json', 'examples/tsconfig.json']) {
    const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project, '--noEmit'], { stdio: 'inherit' });
    if (tsc.status !== 0) {
      console.error(`typecheck failed (${project})`);
      process.exit(tsc.status ?? 1);
    }
  }
}

/** Runs files with node's test runner; resolves to its exit code. */
function runFiles(files: string[], concurrency: number, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (files.length === 0) return Promise.resolve(0);
  return new Promise((done) => {
    const p = spawn(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], { stdio: 'inherit', env });
    p.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0)));
  });
}

async function main(): Promise<void> {
  // Every test spawns daemons, pilotctl and rendezvous processes from src/: with Node's compile
  // cache (type-stripped source and V8 code, keyed by content) each start after the first skips
  // that work: `pilotctl info` from source 0.2-0.3 s -> 0.1 s. Children inherit it by env. It lives
  // in this checkout (node_modules/.cache), not in a shared /tmp where another user could plant code.
  process.env.NODE_COMPILE_CACHE ??= resolve('node_modules', '.cache', 'pilot-compile-cache');
  const args = process.argv.slice(2);
  const tierArg = args.indexOf('--tier');
  const onlyTier = tierArg >= 0 ? (args[tierArg + 1] as Tier | undefined) : undefined;
  const named = args.filter((a, i) => a.endsWith('.ts') && (tierArg < 0 || i !== tierArg + 1));
  if (named.length === 0) lint();
  typecheck();
  // the optional UDP GSO addon, when a fresh checkout has not built it yet (its tests skip without it)
  spawnSync(process.execPath, ['scripts/native-build.js', '--if-missing'], { stdio: 'inherit' });
  if (named.length > 0) process.exit(await runFiles(named, 1));

  const byTier: Record<Tier, string[]> = { unit: [], integration: [], lab: [] };
  for (const f of findTests('test')) byTier[tierOf(f)].push(f);
  if (onlyTier !== undefined && !(onlyTier in byTier)) {
    console.error(`unknown tier ${onlyTier}: use unit, integration or lab`);
    process.exit(2);
  }
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  console.log(`tiers: ${byTier.unit.length} unit, ${byTier.integration.length} integration, ${byTier.lab.length} lab files`);
  const unit = await runFiles(byTier.unit, Math.max(2, cpus().length));
  console.log(`unit tier done in ${elapsed()} (exit ${unit})`);
  if (onlyTier === 'unit' || unit !== 0) process.exit(unit);

  // The slow tiers share one runner so files overlap their waiting. Each file mostly waits
  // on timers, handshakes and other processes; PILOT_TEST_CONCURRENCY tunes it. Five at a time
  // on the 2-core CI box: 449 s for both tiers against 529 s with four (same clone, 0 failures),
  // which keeps .ci/run under 10 minutes with this session's new lab and Python suites.
  const concurrency = Number(process.env.PILOT_TEST_CONCURRENCY) || 5;
  const rest = longestFirst(onlyTier ? byTier[onlyTier] : [...byTier.lab, ...byTier.integration]);
  // One `npm pack` for every test that installs the package (two packs in one checkout
  // would clash on dist/).
  const packDir = mkdtempSync(join(tmpdir(), 'pilot-pack-'));
  const env = { ...process.env, PILOT_TEST_PACK_DIR: packDir };
  // Files whose TARGETS are timing goals measured as on a quiet box (cold first byte over the
  // relay <= 2 s, direct within a birthday period) run first and alone: side by side with four
  // other files a loaded 2-core box made them miss by 0.1 s. The fleet test runs 22 daemons and
  // waits for direct paths the same way. About 100 s together.
  const alone = rest.filter((f) => ALONE.includes(f));
  const first = await runFiles(alone, 1, env);
  const others = await runFiles(
    rest.filter((f) => !ALONE.includes(f)),
    concurrency,
    env,
  );
  const code = first || others;
  rmSync(packDir, { recursive: true, force: true });
  console.log(`all tiers done in ${elapsed()} (exit ${code})`);
  process.exit(code);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
