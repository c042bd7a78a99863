// Network namespaces for tests that must cross a real (lossy, NATed) network.
// Every namespace a Lab makes carries the Lab's unique prefix and is deleted
// by cleanup(), which also runs on process exit so nothing is left behind.
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';

export function netnsSupport(): { ok: true } | { ok: false; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (network namespaces)' };
  for (const bin of ['ip', 'iptables']) {
    if (spawnSync('which', [bin]).status !== 0) return { ok: false, reason: `needs ${bin} (apt-get install iproute2 iptables)` };
  }
  const probe = `pltest-probe-${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe]);
  if (r.status !== 0) return { ok: false, reason: `cannot create a network namespace: ${r.stderr.toString().trim()}` };
  spawnSync('ip', ['netns', 'del', probe]);
  return { ok: true };
}

const live = new Set<Lab>();
process.on('exit', () => {
  for (const lab of live) lab.cleanup();
});
// Ctrl-C or a runner's SIGTERM must not leave namespaces behind either (no 'exit' event then).
let signalsHooked = false;
function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(sig, () => {
      for (const lab of live) lab.cleanup();
      process.exit(code);
    });
  }
}

export class Lab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];

  /** `tag`: two letters that keep one user's labs apart from another's (default $PILOT_LAB_TAG, else "pl"). */
  constructor(tag = process.env.PILOT_LAB_TAG ?? 'pl') {
    if (!/^[a-z]{2}$/.test(tag)) throw new Error(`lab tag ${tag} must be two lowercase letters`);
    // Short: interface names are limited to 15 characters.
    this.prefix = `${tag}${crypto.randomBytes(2).toString('hex')}`;
    live.add(this);
    hookSignals();
  }

  ns(name: string): string {
    const full = `${this.prefix}-${name}`;
    execFileSync('ip', ['netns', 'add', full]);
    this.namespaces.push(full);
    this.exec(full, ['ip', 'link', 'set', 'lo', 'up']);
    return full;
  }

  exec(ns: string, cmd: string[]): string {
    return execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** A shell snippet inside a namespace (for iptables rules with many words). */
  sh(ns: string, script: string): string {
    return this.exec(ns, ['sh', '-ec', script]);
  }

  cleanup(): void {
    for (const ns of this.namespaces.splice(0).reverse()) {
      // Kill anything still running in it, then delete it.
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
    live.delete(this);
  }
}
