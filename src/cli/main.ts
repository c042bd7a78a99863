// pilotctl: the command line for the Pilot daemon. Every command takes --json.
import { Command, CommanderError, type Option } from 'commander';
import type { IpcClient } from '../ipc/client.ts';
import type { NodeInfo } from '../ipc/api-types.ts';
import { CliClient } from './cli-client.ts';
import { configSocket, DEFAULT_REGISTRY, pilotHome, savedSocket } from '../daemon/config-file.ts';
import { VERSION } from '../daemon/version.ts';
import { PilotError } from '../util/errors.ts';
import { fail, ok, parseCount, parseDuration, type OutputOptions } from './output.ts';
import { addNodeOptions, type NodeFlags } from './node-options.ts';
import { registerGatewayCommands } from './commands/gateway.ts';
import { registerNetworkCommands } from './commands/network.ts';
import { registerLifecycleCommands } from './commands/lifecycle.ts';
import { registerStdioCommands } from './commands/stdio.ts';
import { registerUpdateCommand } from './commands/update.ts';
import { registerLogsCommand } from './commands/logs.ts';
import { registerStatusCommand } from './commands/status.ts';
import { registerConnectionCommands } from './commands/connections.ts';
import type { Action, Globals, RunWrapper } from './action.ts';

function globals(cmd: Command): Globals {
  return cmd.optsWithGlobals() as Globals;
}

/** The socket to talk to: --socket, PILOT_SOCKET, the saved config, then the private default of the home. */
function resolveSocket(g: Globals): string {
  if (g.socket) return g.socket;
  if (process.env.PILOT_SOCKET) return process.env.PILOT_SOCKET;
  const home = pilotHome(g.home);
  // Only the socket field is read (no schema: the schema library is not loaded for this); an unreadable config gives the default.
  return savedSocket(home) ?? configSocket(undefined, home);
}

type Register = (program: Command, run: RunWrapper) => void;

/**
 * Command modules that load the schemas (the IPC contract's and the config's, valibot), the
 * OS service writers and the like. `pilotctl info` and the other commands defined
 * in this file do not need them, so they are imported only when the command line
 * names none of this file's commands (and for help, context, unknown commands):
 * issue 17, a CLI call in well under 150 ms. A command added to one of these
 * modules needs no other change here.
 */
interface LazyCommands {
  services: Register;
  service: Register;
  config: Register;
}

async function loadLazyCommands(): Promise<LazyCommands> {
  const [services, service, config] = await Promise.all([import('./commands/services.ts'), import('./commands/service.ts'), import('./commands/config.ts')]);
  return { services: services.registerServiceCommands, service: service.registerDaemonServiceCommands, config: config.registerConfigCommands };
}

/** The command word: the first argument that is not a global option (or an option's value). */
function commandWord(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return argv[i + 1];
    if (a === '--socket' || a === '--home') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

let exitCode = 0;
/** The running command did something (spawned the daemon, ...): a BAD_ARGUMENT now is a failure, not a value error. */
let acted = false;

const run: RunWrapper = (action: Action) => {
  return async (...args) => {
    const cmd = args[args.length - 1] as Command;
    const g = globals(cmd);
    const out: OutputOptions = { json: Boolean(g.json) };
    let c: CliClient | undefined;
    const client = (): IpcClient => (c ??= new CliClient(resolveSocket(g)));
    try {
      await action(g, out, client, ...args.slice(0, -1));
    } catch (err) {
      exitCode = fail(out, err, acted || c?.sent === true);
    } finally {
      c?.close();
    }
  };
};

const fmtMs = (v: unknown): string => (typeof v === 'number' ? `${v.toFixed(3)} ms` : '-');

export function buildProgram(json = false, lazy?: LazyCommands): Command {
  const program = new Command('pilotctl')
    .description('Pilot: a userspace overlay network for AI agents')
    .option('--json', 'machine-readable output')
    .option('--socket <path>', 'daemon IPC socket (default $PILOT_SOCKET, else $XDG_RUNTIME_DIR/pilot/pilot.sock or ~/.pilot/pilot.sock)')
    .option('--home <dir>', 'state directory (default $PILOT_HOME or ~/.pilot)')
    // -V / --version as in most CLIs (node -v, git --version): the version alone, for scripts; with --json the object `version` prints
    .option('-V, --version', 'print the version and exit')
    .on('option:version', () => {
      ok({ json }, { version: VERSION, node: process.version }, () => VERSION);
      throw new CommanderError(0, 'commander.version', VERSION);
    })
    .addHelpText('after', '\nExit status: 0 done, 1 failed, 2 usage or value error (nothing was done), 130 interrupted (Ctrl-C).')
    .exitOverride()
    .configureOutput({
      writeErr: (s) => {
        if (!json) process.stderr.write(s);
      },
    });

  const daemon = program.command('daemon').description('start, stop or inspect the daemon');
  addNodeOptions(daemon.command('start').description('start the daemon in the background (first start: --registry and --email)'))
    .option('--join <token>', 'join a network with this token (from pilotctl network invite; also $PILOT_JOIN_TOKEN); a member already joins nothing')
    .action(
      run(async (g, out, _c, all: NodeFlags & { join?: string }) => {
        const { join, ...opts } = all;
        if (join !== undefined) (await import('../registry/membership.ts')).parseToken(join.trim(), Date.now()); // exit 2 before a daemon is spawned
        const progress = (t: string): void => {
          acted = true; // the daemon is spawned: what goes wrong now is a failure (exit 1)
          if (!out.json) process.stdout.write(t);
        };
        const { startDaemon } = await import('./daemon-control.ts'); // loads the config schema (valibot)
        const r = await startDaemon(
          {
            ...(g.home ? { home: g.home } : {}),
            ...((g.socket ?? process.env.PILOT_SOCKET) ? { socket: g.socket ?? process.env.PILOT_SOCKET } : {}),
            ...opts,
          },
          progress,
          join,
        );
        if (!out.json) process.stdout.write('\n');
        ok(
          out,
          r,
          () =>
            `Daemon running (pid ${r.pid})\n  Address:  ${r.address}\n  Registry: ${r.registry}${r.registryDefault ? ' (the default: no --registry given)' : ''}\n  Socket:   ${r.socket}\n  Logs:     ${r.log}${r.metrics ? `\n  Metrics:  ${r.metrics}` : ''}${r.joined ? `\n  Network:  ${r.joined.name} (${r.joined.net})${r.joined.tags.length ? ` tags ${r.joined.tags.join(',')}` : ''}${r.joined.already ? ', already a member' : ', joined'}` : ''}`,
        );
      }),
    );
  daemon
    .command('stop')
    .description('stop the daemon')
    .action(
      run(async (g, out) => {
        const { stopDaemon } = await import('./daemon-control.ts');
        const r = await stopDaemon(resolveSocket(g));
        ok(out, r, () => `Daemon stopped (pid ${r.pid})`);
      }),
    );
  daemon
    .command('status')
    .description('is the daemon running?')
    .action(
      run(async (_g, out, client) => {
        const info = await client().call('status');
        ok(
          out,
          { running: true, ...info },
          () =>
            `Daemon running (pid ${info.pid})\n  Address:  ${info.address}\n  Socket:   ${info.socket}\n  Registry: ${info.registry} (${info.registryOnline ? 'online' : 'unreachable'})\n  Uptime:   ${info.uptimeSec}s`,
        );
      }),
    );

  registerStatusCommand(program, run); // status: this node, registry, peers with path and RTT (tailscale status)
  program
    .command('info')
    .description("this node's address, hostname, keys and endpoints")
    .action(
      run(async (_g, out, client) => {
        const i = await client().call('info');
        ok(out, i, () =>
          [
            `Address:    ${i.address}`,
            `Hostname:   ${i.hostname ?? '-'}`,
            `Visibility: ${i.public ? 'public' : 'private'}`,
            `Public key: ${i.publicKey}`,
            `Observed:   ${i.observed ?? '-'}`,
            `Candidates: ${(i.candidates ?? []).map((c) => (c.kind === 'lan' ? c.endpoint : `${c.endpoint} (${c.kind})`)).join(' ') || '-'}${(i.excludedInterfaces ?? []).length ? ` (left out: ${(i.excludedInterfaces ?? []).map((x) => `${x.name}, ${x.reason}`).join('; ')})` : ''}`,
            `NAT:        ${i.nat ?? '-'} (uplink ${i.uplink ?? '-'})`,
            `Port map:   ${portmapLine(i.portmap)}`,
            `Registry:   ${i.registry}${i.registry === DEFAULT_REGISTRY ? ' [the default]' : ''} (${i.registryOnline ? 'online' : 'unreachable'})`,
            `Peers:      ${i.peers}`,
            `Version:    ${i.version}`,
          ].join('\n'),
        );
      }),
    );

  program
    .command('set-hostname <hostname>')
    .description('set this node hostname')
    .action(
      run(async (_g, out, client, hostname: string) => {
        const r = await client().call('set_hostname', { hostname });
        ok(out, r, () => `hostname set to ${hostname}`);
      }),
    );
  program
    .command('clear-hostname')
    .description('remove this node hostname')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('clear_hostname');
        ok(out, r, () => 'hostname cleared');
      }),
    );
  program
    .command('rotate-key')
    .description('replace this node key with a new one, signed by the old one (address, hostname, trust and networks stay)')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('rotate_key');
        ok(
          out,
          r,
          () =>
            `key rotated for ${r.address}${r.already ? ' (finished an earlier rotation)' : ''}\nPublic key: ${r.publicKey}\nOld key:    ${r.oldKey} (retired)`,
        );
      }),
    );
  program
    .command('set-public')
    .description('make this node findable and pingable by anyone')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('set_visibility', { public: true });
        ok(out, r, () => 'node is public');
      }),
    );
  program
    .command('set-private')
    .description('reveal this node only to trusted peers')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('set_visibility', { public: false });
        ok(out, r, () => 'node is private');
      }),
    );
  program
    .command('find [target]')
    .description('look a hostname (or address) up in the registry; or nodes by tag: --tag T [--network N] [--online]')
    .option('--tag <tag>', 'nodes with this tag: members of --network (credential or self tags), else public nodes (self tags)')
    .option('--network <net>', 'with --tag: search this network (id or name)')
    .option('--online', 'with --tag: online nodes only')
    .action(
      run(async (_g, out, client, target: string | undefined, o: { tag?: string; network?: string; online?: boolean }) => {
        if (o.tag !== undefined) {
          const f = await client().call('network_find', { tag: o.tag, ...(o.network ? { net: o.network } : {}), online: o.online === true });
          const { membersTable } = await import('./commands/network.ts');
          return ok(out, f, () => membersTable(f.nodes, `no nodes with tag ${f.tag}`));
        }
        if (target === undefined)
          throw new PilotError('BAD_ARGUMENT', 'find needs a target or --tag', 'e.g. pilotctl find agent-alpha, or pilotctl find --tag worker --network fleet');
        const r = await client().call('find', { target });
        ok(out, r, () => `${r.hostname ?? '-'}  ${r.address}  ${r.public ? 'public' : 'private'}  ${r.online ? 'online' : 'offline'}`);
      }),
    );
  program
    .command('peers')
    .description('peers with their path, RTT and bytes')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('peers');
        ok(out, r, () =>
          r.peers.length === 0
            ? 'no peers'
            : [
                'ADDRESS            HOSTNAME         PATH                                   RTT         MTU   SENT        RECEIVED',
                ...r.peers.map(
                  (p) =>
                    `${String(p.address).padEnd(18)} ${String(p.hostname ?? '-').padEnd(16)} ${`${p.path}${p.via ? ` via ${p.via}` : ''}`.padEnd(38)} ${fmtMs(p.rttMs).padEnd(11)} ${String(p.mtu ?? '-').padEnd(5)} ${String(p.bytesSent).padEnd(11)} ${p.bytesReceived}`,
                ),
              ].join('\n'),
        );
      }),
    );
  program
    .command('ping <target>')
    .description('echo probes over the encrypted tunnel (port 7)')
    .option('--count <n>', 'number of probes', '4')
    .option('--interval <d>', 'time between probes', '1s')
    .option('--timeout <d>', 'per-probe timeout', '3s')
    .action(
      run(async (_g, out, client, target: string, o: { count: string; interval: string; timeout: string }) => {
        const count = parseCount(o.count, 4);
        if (count < 1) throw new PilotError('BAD_ARGUMENT', '--count must be at least 1');
        const r = await client().call(
          'ping',
          { target, count, intervalMs: parseDuration(o.interval, 1000), timeoutMs: parseDuration(o.timeout, 3000) },
          (_e, p) => {
            if (!out.json)
              process.stdout.write(p.ok ? `reply from ${target}: seq=${p.seq} time=${fmtMs(p.rttMs)} path=${p.path}\n` : `timeout: seq=${p.seq}\n`);
          },
        );
        ok(
          out,
          r,
          () =>
            `--- ${target} (${r.target}) ping ---\n${r.sent} sent, ${r.received} received, ${r.lossPct}% loss, rtt min/avg/max = ${fmtMs(r.minMs)} / ${fmtMs(r.avgMs)} / ${fmtMs(r.maxMs)}, path ${r.path}`,
        );
        if (r.received === 0) exitCode = 1;
      }),
    );
  registerStdioCommands(program, run); // connect (default port 1000, stdio), recv, listen
  registerConnectionCommands(program, run); // connections, disconnect, traceroute, broadcast, lookup (upstream parity)
  program
    .command('send <target> <port>')
    .description('send one datagram to a virtual port')
    .requiredOption('--data <text>', 'payload')
    .action(
      run(async (_g, out, client, target: string, port: string, o: { data: string }) => {
        const r = await client().call('send', { target, port, data: o.data });
        ok(out, r, () => `sent ${r.bytes} bytes to ${r.target}:${r.port}`);
      }),
    );
  program
    .command('bench <target> [size_mb]')
    .description('measure stream throughput to a peer (its sink on port 9)')
    .action(
      run(async (_g, out, client, target: string, size: string | undefined) => {
        const sizeMb = size === undefined ? 10 : Number(size);
        if (!Number.isFinite(sizeMb) || sizeMb <= 0) throw new PilotError('BAD_ARGUMENT', `invalid size ${size}`, 'size in MiB, e.g. 10');
        const r = await client().call('bench', { target, sizeMb });
        ok(out, r, () => `${r.bytes} bytes in ${r.seconds} s = ${r.mbPerSec} MB/s`);
      }),
    );
  program
    .command('handshake <target> [reason]')
    .description('ask a node for mutual trust (nothing passes between untrusted nodes)')
    .action(
      run(async (_g, out, client, target: string, reason: string | undefined) => {
        const r = await client().call('handshake', { target, ...(reason ? { reason } : {}) });
        ok(out, r, () => (r.status === 'trusted' ? `trusted: ${target} (${r.peer})` : `trust request sent to ${target} (${r.peer}); waiting for approval`));
      }),
    );
  program
    .command('pending')
    .description('trust requests waiting for your answer (and yours waiting for others)')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('pending');
        ok(out, r, () =>
          [
            r.incoming.length === 0 ? 'no pending requests' : 'FROM               HOSTNAME         RECEIVED                  REASON',
            ...r.incoming.map(
              (p) =>
                `${String(p.from).padEnd(18)} ${String(p.hostname ?? '-').padEnd(16)} ${new Date(Number(p.created)).toISOString().padEnd(25)} ${p.reason ?? ''}`,
            ),
            ...(r.outgoing.length ? ['', `waiting on: ${r.outgoing.map((o) => `${o.to}${o.hostname ? ` (${o.hostname})` : ''}`).join(', ')}`] : []),
          ].join('\n'),
        );
      }),
    );
  program
    .command('approve <node>')
    .description('approve a pending trust request (node: address, id or hostname)')
    .action(
      run(async (_g, out, client, node: string) => {
        const r = await client().call('approve', { node });
        ok(out, r, () => `trusted: ${r.peer}`);
      }),
    );
  program
    .command('reject <node> [reason]')
    .description('reject a pending trust request')
    .action(
      run(async (_g, out, client, node: string, reason: string | undefined) => {
        const r = await client().call('reject', { node, ...(reason ? { reason } : {}) });
        ok(out, r, () => `rejected: ${r.peer}`);
      }),
    );
  program
    .command('trust')
    .description('trusted peers')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('trust');
        ok(out, r, () =>
          r.trusted.length === 0
            ? 'no trusted peers'
            : [
                'NODE ID     ADDRESS            HOSTNAME         SINCE                     MUTUAL',
                ...r.trusted.map(
                  (t) =>
                    `${String(parseInt(String(t.peer).split('.').slice(1).join(''), 16)).padEnd(11)} ${String(t.peer).padEnd(18)} ${String(t.hostname ?? '-').padEnd(16)} ${new Date(Number(t.since)).toISOString().padEnd(25)} ${t.mutual ? 'yes' : 'no'}`,
                ),
              ].join('\n'),
        );
      }),
    );
  program
    .command('untrust <node>')
    .description('revoke trust: the session closes and nothing more passes')
    .action(
      run(async (_g, out, client, node: string) => {
        const r = await client().call('untrust', { node });
        ok(out, r, () =>
          r.status === 'revoked-locally'
            ? `trust revoked here: ${r.peer} is cut off now.\nThe rendezvous did not answer; it is told on the next sync (every 20 s), until then the pair stays listed there.`
            : `trust revoked: ${r.peer}`,
        );
      }),
    );
  registerGatewayCommands(program, run); // gateway start|map|unmap|list|stop, expose
  registerNetworkCommands(program, run); // network …, set-tags, clear-tags (fleets)
  registerLifecycleCommands(program, run); // deregister (issue 18)
  lazy?.services(program, run); // send-message, inbox, send-file, received, publish, subscribe, task …, webhooks
  lazy?.service(program, run); // service install|uninstall|status (systemd/launchd)
  lazy?.config(program, run); // init, config [--set k=v]
  registerUpdateCommand(program, run); // update (npm registry check)
  registerLogsCommand(program, run); // logs [-f] [-n N] [--level L]
  program
    .command('version')
    .description('print the version')
    .action(
      run(async (_g, out) => {
        ok(out, { version: VERSION, node: process.version }, () => `pilotctl ${VERSION} (node ${process.version})`);
      }),
    );
  program
    .command('context')
    .description('machine-readable list of commands (for agents)')
    .action(
      run(async (_g, out) => {
        const commands = listCommands(program);
        ok(out, { commands }, () => JSON.stringify({ commands }, null, 2));
      }),
    );
  return program;
}

interface CommandInfo {
  name: string;
  description: string;
  args: string[];
  options: string[];
}

function listCommands(cmd: Command, prefix = ''): CommandInfo[] {
  const out: CommandInfo[] = [];
  for (const c of cmd.commands) {
    const name = `${prefix}${c.name()}`;
    if (c.commands.length > 0) out.push(...listCommands(c, `${name} `));
    else
      out.push({
        name,
        description: c.description(),
        args: c.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)),
        options: [...c.options.map((o: Option) => o.flags), '--json'],
      });
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  let program = buildProgram(json);
  const word = commandWord(argv);
  const own = word !== undefined && word !== 'context' && program.commands.some((c) => c.name() === word || c.aliases().includes(word));
  if (!own || argv.includes('--help') || argv.includes('-h')) program = buildProgram(json, await loadLazyCommands());
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      if (json)
        process.stderr.write(
          JSON.stringify({ status: 'error', code: 'USAGE', message: err.message.replace(/^error: /, ''), hint: 'see: pilotctl --help' }) + '\n',
        );
      return 2;
    }
    return fail({ json }, err);
  }
  return exitCode;
}

/** status/info: the gateway's port mapping in one line (src/nat/portmap). */
function portmapLine(p: NodeInfo['portmap']): string {
  if (!p?.enabled) return 'off';
  if (p.external) return `${p.external} (${p.protocol} via ${p.gateway}, ${p.expiresInSec ?? '?'} s left)`;
  return p.error ? `none: ${p.error.code} ${p.error.message}` : (p.state ?? 'none');
}
