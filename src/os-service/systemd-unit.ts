// systemd unit for the daemon: user scope (~/.config/systemd/user) or system
// scope (/etc/systemd/system, with User=). The daemon runs in the foreground
// and is restarted when it fails; a clean `pilotctl daemon stop` stays stopped.
import os from 'node:os';
import path from 'node:path';
import { DAEMON_ENV } from './daemon-command.ts';

export const UNIT_NAME = 'pilot-daemon.service';

export type Scope = 'user' | 'system';

export interface UnitOptions {
  argv: string[];
  home: string;
  scope: Scope;
  /** Account the system unit runs as (system scope only). */
  user?: string;
}

/** One ExecStart word: quoted when needed; `%` and `$` escaped (systemd expands both there). */
export function quoteWord(w: string, dollars = true): string {
  let esc = w.replace(/%/g, '%%');
  if (dollars) esc = esc.replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(esc) ? esc : `"${esc.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderSystemdUnit(o: UnitOptions): string {
  if (o.scope === 'system' && !o.user) throw new Error('a system unit needs the user to run as');
  return [
    '[Unit]',
    'Description=Pilot overlay network daemon',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    // --log-stdout: the unit says where the log goes, not only $JOURNAL_STREAM (which the daemon also reads).
    `ExecStart=${[...o.argv, ...(o.argv.includes('--log-stdout') ? [] : ['--log-stdout'])].map((w) => quoteWord(w)).join(' ')}`,
    `Environment=${quoteWord(`PILOT_HOME=${o.home}`, false)}`,
    // OpenSSL without AVX-512 (daemon-command.ts DAEMON_ENV): read once, at the process's start
    ...Object.entries(DAEMON_ENV).map(([k, v]) => `Environment=${quoteWord(`${k}=${v}`, false)}`),
    ...(o.scope === 'system' ? [`User=${o.user}`] : []),
    // The journal gets the daemon's log (not pilot.log): seeing $JOURNAL_STREAM name its stdout, the daemon
    // writes `<N>message` lines whose prefix journald turns into the level (journalctl -p warning).
    'StandardOutput=journal',
    'SyslogIdentifier=pilot-daemon',
    'Restart=on-failure',
    'RestartSec=2',
    '',
    '[Install]',
    `WantedBy=${o.scope === 'system' ? 'multi-user.target' : 'default.target'}`,
    '',
  ].join('\n');
}

export function systemdUnitPath(scope: Scope, homeDir = os.homedir()): string {
  return scope === 'system' ? path.join('/etc/systemd/system', UNIT_NAME) : path.join(homeDir, '.config', 'systemd', 'user', UNIT_NAME);
}
