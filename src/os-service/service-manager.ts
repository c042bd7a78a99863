// pilotctl service install|uninstall|status: write (or remove) the unit or
// plist, then let the service manager load it when one is running. Without a
// running manager the file is still written and the result says so.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PilotError } from '../util/errors.ts';
import { daemonArgv } from './daemon-command.ts';
import { detectInitSystem, runManager, type InitSystem } from './init-system.ts';
import { LAUNCHD_LABEL, launchdPlistPath, renderLaunchdPlist } from './launchd-plist.ts';
import { renderSystemdUnit, systemdUnitPath, UNIT_NAME, type Scope } from './systemd-unit.ts';

export type Kind = 'systemd' | 'launchd';

export interface ServiceOptions {
  /** $PILOT_HOME the daemon runs with (absolute). */
  home: string;
  scope: Scope;
  /** systemd or launchd; default from the platform (launchd on macOS). */
  kind?: Kind;
  /** Account a system unit runs as (default $SUDO_USER, else the current user). */
  runAs?: string;
  /** Whose ~/.config or ~/Library gets a user-scope file (default os.homedir()). */
  userHome?: string;
  /** Directory of system units (default /etc/systemd/system). */
  systemDir?: string;
  /** What the detected init system is (default: detect). */
  init?: InitSystem;
  /** The daemon command (default: this node, its flags, src/daemon/main.ts). */
  argv?: string[];
}

export interface ServiceResult {
  kind: Kind;
  scope: Scope;
  path: string;
  installed: boolean;
  /** A service manager is running and was asked to act. */
  managed: boolean;
  /** Manager commands run and their outcome. */
  steps: Array<{ cmd: string; ok: boolean; output: string }>;
  message: string;
}

function resolve(o: ServiceOptions): { kind: Kind; file: string; init: InitSystem } {
  const kind: Kind = o.kind ?? (process.platform === 'darwin' ? 'launchd' : 'systemd');
  if (kind === 'launchd' && o.scope === 'system') throw new PilotError('BAD_ARGUMENT', 'launchd agents are per user', 'drop --system on macOS');
  const file =
    kind === 'launchd'
      ? launchdPlistPath(o.userHome)
      : o.scope === 'system'
        ? path.join(o.systemDir ?? path.dirname(systemdUnitPath('system')), UNIT_NAME)
        : systemdUnitPath('user', o.userHome);
  return { kind, file, init: o.init ?? detectInitSystem() };
}

function systemctl(scope: Scope, ...args: string[]): string[] {
  return ['systemctl', ...(scope === 'user' ? ['--user'] : []), ...args];
}

function step(steps: ServiceResult['steps'], argv: string[]): boolean {
  const r = runManager(argv);
  steps.push({ cmd: argv.join(' '), ok: r.ok, output: r.output });
  return r.ok;
}

export function renderService(o: ServiceOptions): { kind: Kind; path: string; content: string } {
  const { kind, file } = resolve(o);
  const argv = o.argv ?? daemonArgv(o.home);
  const content =
    kind === 'launchd'
      ? renderLaunchdPlist({ argv, home: o.home })
      : renderSystemdUnit({
          argv,
          home: o.home,
          scope: o.scope,
          ...(o.scope === 'system' ? { user: o.runAs ?? process.env.SUDO_USER ?? os.userInfo().username } : {}),
        });
  return { kind, path: file, content };
}

export function installService(o: ServiceOptions, hasConfig: boolean): ServiceResult {
  const { init } = resolve(o);
  const { kind, path: file, content } = renderService(o);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content, { mode: 0o644 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EPERM')
      throw new PilotError(
        'PERMISSION_DENIED',
        `cannot write ${file}`,
        o.scope === 'system' ? 'a system unit needs root: sudo pilotctl service install --system' : 'check the permissions of that directory',
      );
    throw err;
  }
  const steps: ServiceResult['steps'] = [];
  const managed = init === kind;
  let message: string;
  if (!managed) {
    message = `${kind} is not running on this machine: wrote ${file} but did not load it; run the daemon with: pilotctl daemon start`;
  } else if (kind === 'systemd') {
    const verb = hasConfig ? ['enable', '--now'] : ['enable'];
    const good = step(steps, systemctl(o.scope, 'daemon-reload')) && step(steps, systemctl(o.scope, ...verb, UNIT_NAME));
    message = !good
      ? `wrote ${file}, but systemctl failed (see steps)`
      : hasConfig
        ? `enabled and started ${UNIT_NAME}`
        : `enabled ${UNIT_NAME}; it starts once there is a config: pilotctl init --registry H:P --email E, then ${systemctl(o.scope, 'start', UNIT_NAME).join(' ')}`;
  } else {
    const domain = `gui/${os.userInfo().uid}`;
    runManager(['launchctl', 'bootout', `${domain}/${LAUNCHD_LABEL}`]); // reinstall: drop the old one first
    const good = step(steps, ['launchctl', 'bootstrap', domain, file]);
    message = good ? `loaded ${LAUNCHD_LABEL}` : `wrote ${file}, but launchctl failed (see steps)`;
  }
  return { kind, scope: o.scope, path: file, installed: true, managed, steps, message };
}

export function uninstallService(o: ServiceOptions): ServiceResult {
  const { kind, file, init } = resolve(o);
  const steps: ServiceResult['steps'] = [];
  const managed = init === kind;
  const existed = fs.existsSync(file);
  if (managed && existed) {
    if (kind === 'systemd') step(steps, systemctl(o.scope, 'disable', '--now', UNIT_NAME));
    else step(steps, ['launchctl', 'bootout', `gui/${os.userInfo().uid}/${LAUNCHD_LABEL}`]);
  }
  fs.rmSync(file, { force: true });
  if (managed && existed && kind === 'systemd') step(steps, systemctl(o.scope, 'daemon-reload'));
  const message = existed ? `removed ${file}` : `nothing to remove: ${file} does not exist`;
  return { kind, scope: o.scope, path: file, installed: false, managed, steps, message };
}

export interface ServiceStatus {
  kind: Kind;
  scope: Scope;
  path: string;
  installed: boolean;
  init: InitSystem;
  /** What the manager says (systemctl is-active / launchctl print), null without one. */
  state: string | null;
}

export function serviceStatus(o: ServiceOptions): ServiceStatus {
  const { kind, file, init } = resolve(o);
  const installed = fs.existsSync(file);
  let state: string | null = null;
  if (init === kind) {
    if (kind === 'systemd') state = runManager(systemctl(o.scope, 'is-active', UNIT_NAME)).output || 'unknown';
    else state = runManager(['launchctl', 'print', `gui/${os.userInfo().uid}/${LAUNCHD_LABEL}`]).ok ? 'loaded' : 'not loaded';
  }
  return { kind, scope: o.scope, path: file, installed, init, state };
}
