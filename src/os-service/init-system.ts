// Which service manager this machine runs. systemd counts only when it is PID 1
// (the sd_booted() test: /run/systemd/system exists); containers and WSL
// often have systemctl installed without a running systemd.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export type InitSystem = 'systemd' | 'launchd' | 'none';

export function detectInitSystem(platform: NodeJS.Platform = process.platform): InitSystem {
  if (platform === 'darwin') return 'launchd';
  if (platform === 'linux' && fs.existsSync('/run/systemd/system')) return 'systemd';
  return 'none';
}

export interface CmdResult {
  ok: boolean;
  output: string;
}

/** Run a manager command (systemctl, launchctl); never throws. */
export function runManager(argv: string[]): CmdResult {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 15_000 });
  if (r.error) return { ok: false, output: r.error.message };
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}
