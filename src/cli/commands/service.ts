// pilotctl service install|uninstall|status: run the daemon under systemd (user
// or system unit) or launchd, so it survives logouts and reboots.
import type { Command } from 'commander';
import path from 'node:path';
import { loadConfig, pilotHome } from '../../daemon/config.ts';
import { installService, serviceStatus, uninstallService, type Kind, type ServiceOptions } from '../../os-service/service-manager.ts';
import { PilotError } from '../../util/errors.ts';
import { ok } from '../output.ts';
import type { Globals, RunWrapper } from '../action.ts';

interface Flags {
  system?: boolean;
  runAs?: string;
  launchd?: boolean;
  systemd?: boolean;
}

function options(g: Globals, f: Flags): ServiceOptions {
  if (f.launchd && f.systemd)
    throw new PilotError('BAD_ARGUMENT', '--launchd and --systemd exclude each other', 'pick one (default: launchd on macOS, systemd elsewhere)');
  const kind: Kind | undefined = f.launchd ? 'launchd' : f.systemd ? 'systemd' : undefined;
  return { home: path.resolve(pilotHome(g.home)), scope: f.system ? 'system' : 'user', ...(kind ? { kind } : {}), ...(f.runAs ? { runAs: f.runAs } : {}) };
}

function withFlags(c: Command): Command {
  return c
    .option('--system', 'system-wide unit in /etc/systemd/system (needs root; runs as --run-as)')
    .option('--run-as <user>', 'account a system unit runs as (default $SUDO_USER or you)')
    .option('--systemd', 'write a systemd unit (default on Linux)')
    .option('--launchd', 'write a launchd plist (default on macOS)');
}

export function registerDaemonServiceCommands(program: Command, run: RunWrapper): void {
  const svc = program.command('service').description('run the daemon under systemd or launchd');
  withFlags(svc.command('install').description('write the unit/plist and enable it (the daemon runs in the foreground, restarted on failure)')).action(
    run(async (g, out, _c, f: Flags) => {
      const o = options(g, f);
      let hasConfig = false;
      try {
        hasConfig = loadConfig(o.home) !== undefined;
      } catch {
        /* an invalid config is reported by the daemon itself */
      }
      const r = installService(o, hasConfig);
      ok(out, { ...r, home: o.home, hasConfig }, () =>
        [`Wrote ${r.path}`, r.message, ...(hasConfig ? [] : [`No config in ${o.home} yet: pilotctl init --registry HOST:PORT --email you@example.com`])].join(
          '\n',
        ),
      );
    }),
  );
  withFlags(svc.command('uninstall').description('disable and remove the unit/plist')).action(
    run(async (g, out, _c, f: Flags) => {
      const r = uninstallService(options(g, f));
      ok(out, r, () => r.message);
    }),
  );
  withFlags(svc.command('status').description('is the unit/plist installed, and what does the service manager say?')).action(
    run(async (g, out, client, f: Flags) => {
      const s = serviceStatus(options(g, f));
      // Whether a daemon answers on the socket, however it was started.
      const info = await client()
        .call('status')
        .catch(() => undefined);
      const daemon = info ? { running: true, pid: info.pid, address: info.address } : { running: false };
      ok(out, { ...s, daemon }, () =>
        [
          `Service:  ${s.kind} (${s.scope}) ${s.installed ? 'installed' : 'not installed'}: ${s.path}`,
          `Manager:  ${s.init === s.kind ? `${s.kind} running, unit ${s.state}` : `${s.kind} not running on this machine`}`,
          `Daemon:   ${info ? `running (pid ${info.pid}, ${info.address})` : 'not running'}`,
        ].join('\n'),
      );
    }),
  );
}
