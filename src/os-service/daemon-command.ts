// The foreground command a service manager runs: absolute node (the one running
// pilotctl), the node flags this process runs with, the daemon entry point (the
// compiled dist/daemon/main.js of an installed package, src/daemon/main.ts in a
// checkout) and --home. Service units must not depend on $PATH.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(import.meta.url);
export const DAEMON_MAIN = path.resolve(path.dirname(HERE), '..', 'daemon', `main${path.extname(HERE)}`);

/**
 * V8 flags every daemon process runs with (before the user's own, which win). `startNode()` runs
 * in its host's process and keeps the host's flags.
 * - The young generation capped at 1 MiB per semi-space: an idle daemon's RSS 72-74 -> 70-71.5 MB
 *   (issue 17's target is 70 MB); the one-stream transport bench moved by less than its noise
 *   (about 4%, measured 2026-12-07).
 * - The collector on the main thread only (no parallel scavenge, no concurrent marking or
 *   sweeping): a daemon's heap is small (~15 MB) and its work is the data path, so the helper
 *   threads bought no pause worth having and cost CPU the data path needs. On a busy box the
 *   main thread even waited for them: in the NAT lab, a sending daemon's scavenges took 774 ms of
 *   main-thread time with them against 275 ms without, over the same transfers, and the marking
 *   they did besides ran on other cores (BENCHMARKS.md, issue 20, 2026-12-08).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--single-threaded-gc'];

/**
 * Environment a daemon process starts with (a value the user set wins). OPENSSL_ia32cap hides
 * AVX-512 (F and IFMA) from the OpenSSL inside Node, which seals the data path
 * (src/crypto/data-key.ts): its AVX-512 ChaCha20 and Poly1305 won in a micro-benchmark but slowed
 * everything else the daemon does (the core's frequency drops for 512-bit work), and a NAT-lab
 * gateway moved 112 vs 137 MB/s at 13.4 vs 9.6 ms of CPU per MB with them against without, in
 * the same lab (BENCHMARKS.md, issue 20). OpenSSL reads it once, at start: it must be in the
 * environment the process starts with. Without it the data key keeps libsodium (AVX2) on a CPU
 * that has AVX-512.
 */
export const DAEMON_ENV: Readonly<Record<string, string>> = { OPENSSL_ia32cap: ':~0x210000' };

/** DAEMON_ENV less what `env` already sets. */
export function daemonEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(Object.entries(DAEMON_ENV).filter(([k]) => env[k] === undefined));
}

/** Node flags worth keeping in a unit (drops --test, --inspect and the like). */
export function serviceNodeArgs(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    if ((a === '--import' || a === '--require') && i + 1 < execArgv.length) out.push(a, execArgv[++i]!);
    else if (a.startsWith('--import=') || a.startsWith('--disable-warning') || a.startsWith('--experimental-') || a === '--no-warnings') out.push(a);
  }
  return out;
}

export function daemonArgv(home: string, node = process.execPath, execArgv: readonly string[] = process.execArgv): string[] {
  return [path.resolve(node), ...DAEMON_NODE_FLAGS, ...serviceNodeArgs(execArgv), DAEMON_MAIN, '--home', path.resolve(home)];
}
